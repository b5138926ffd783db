import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { promtoolTest } from '../helpers/promtool.js';
import { tempDir } from '../helpers/fixtures.js';
import { eventually, jobBody, makeDataset, startEmbeddedCentral } from './helpers.js';

/**
 * The orchestrator's own /metrics: Prometheus text that promtool accepts, with the figures
 * operators chart for it (jobs by class and state, bytes staged, queue submissions, summaries
 * folded, alerts by detector), moving as a job goes through and a region goes silent.
 */

/** The value of one sample: the line of `family` whose labels include every one of `labels`. */
function sample(exposition: string, family: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of exposition.split('\n')) {
    const match = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== family) continue;
    const text = match[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => text.includes(`${k}="${v}"`))) return Number(match[3]);
  }
  return undefined;
}

function checkWithPromtool(t: ExecutionContext, promtool: string, exposition: string): void {
  const checked = spawnSync(promtool, ['check', 'metrics'], { input: exposition, encoding: 'utf8' });
  t.is(checked.status, 0, `promtool: ${checked.stdout}${checked.stderr}`);
  t.is(`${checked.stdout}${checked.stderr}`.trim(), '', 'no lint findings either');
}

const MIB = 1024 * 1024;

promtoolTest('arcnet central serves /metrics that promtool accepts, and its figures move as a job runs and a region goes silent', async (t, promtool) => {
  const { dir, cleanup } = tempDir();
  const central = await startEmbeddedCentral(dir, { config: { summaryEveryMs: 300 } });
  const scrape = async (): Promise<string> => {
    const reply = await fetch(`${central.origin}/metrics`);
    t.is(reply.status, 200);
    t.regex(reply.headers.get('content-type') ?? '', /^text\/plain/);
    return reply.text();
  };
  try {
    const before = await scrape();
    checkWithPromtool(t, promtool, before);
    for (const family of ['arcnet_central_jobs', 'arcnet_central_transferred_bytes_total', 'arcnet_central_queue_submissions_total', 'arcnet_central_summaries_folded_total', 'arcnet_central_alerts_total']) {
      t.regex(before, new RegExp(`^# TYPE ${family} (gauge|counter)$`, 'm'), family);
    }
    t.is(sample(before, 'arcnet_central_transferred_bytes_total'), 0);
    t.is(sample(before, 'arcnet_central_queue_submissions_total'), 0);
    t.is(sample(before, 'arcnet_central_jobs', { class: 'hpc' }), undefined, 'no job yet');

    // A region reports once, then goes silent; an HPC job runs to its end; a federated one is placed.
    central.process.publish({
      type: 'summary.in',
      summary: { geozoneId: 'PJM', atMs: central.process.clock.nowMs(), totalNodes: 5, activeNodes: 5, avgGpuUtil: 0.4, energyBreakdown: { cogen: 5, grid: 0, battery: 0 }, openReservations: 0 },
    } as const);
    const dataset = join(dir, 'dataset.bin');
    makeDataset(dataset, MIB);
    const posted = await fetch(`${central.origin}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: jobBody('metered', dataset, join(dir, 'ckpt', 'metered.json')) });
    t.is(posted.status, 202, await posted.text());
    const small = await fetch(`${central.origin}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: jobBody('small', dataset, join(dir, 'ckpt', 'small.json'), { 'estimated-flops': 1e12, 'min-participants': 50 }),
    });
    t.is(small.status, 202, await small.text());

    const after = await eventually('the job completed and the silence alert counted', async () => {
      const text = await scrape();
      return sample(text, 'arcnet_central_jobs', { class: 'hpc', state: 'completed' }) === 1 && (sample(text, 'arcnet_central_alerts_total', { rule: 'region-silent', severity: 'error' }) ?? 0) >= 1 ? text : undefined;
    });
    checkWithPromtool(t, promtool, after);
    t.is(sample(after, 'arcnet_central_transferred_bytes_total'), MIB);
    t.is(sample(after, 'arcnet_central_queue_submissions_total'), 1);
    t.is(sample(after, 'arcnet_central_summaries_folded_total'), 1);
    // Five nodes cannot host 50 participants: the federated job is journaled as not placed.
    t.is(sample(after, 'arcnet_central_jobs', { class: 'federated', state: 'unplaced' }), 1);
    t.is(sample(after, 'arcnet_central_alerts_total', { rule: 'region-silent', severity: 'error' }), 1);
  } finally {
    await central.process.stop('test');
    cleanup();
  }
});
