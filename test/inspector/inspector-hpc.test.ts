import { join } from 'node:path';
import { browserTest, screenshotPath } from '../helpers/browser.js';
import { tempDir } from '../helpers/fixtures.js';
import { arcnetSync } from '../helpers/live-region.js';
import { eventually, jobBody, makeDataset, startEmbeddedCentral } from '../central/helpers.js';

/**
 * The inspector of `arcnet central`, in real headless Chromium: an HPC job
 * mid-transfer is an hpc-job actor live on its diagram and in the actor list,
 * its history shows the journaled transfer events, and time travel into the
 * transfer shows the state hash `arcnet replay --until-offset` prints there.
 */

const JOB = 'insp-hpc-1';

browserTest('the central inspector shows an hpc-job actor live (diagram, list, history) and in time travel, matching arcnet replay', async (t, browser) => {
  const { dir, cleanup } = tempDir('arcnet-inspector-hpc-');
  // 64 MiB at 1 MiB/s: the job stays in `transferring` for about a minute while the page is looked at.
  const central = await startEmbeddedCentral(dir, { bytesPerSec: 1024 * 1024 });
  try {
    const { origin } = central;
    const dataset = join(dir, 'dataset.bin');
    makeDataset(dataset, 64 * 1024 * 1024);
    const posted = await fetch(`${origin}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: jobBody(JOB, dataset, join(dir, 'ckpt.json')) });
    t.is(posted.status, 202, await posted.text());
    await eventually('progress journaled', async () => {
      const job = (await (await fetch(`${origin}/v1/jobs/${JOB}`)).json()) as { 'bytes-transferred'?: number };
      return (job['bytes-transferred'] ?? 0) > 0 || undefined;
    });

    const page = await browser.newPage({ viewport: { width: 1400, height: 1200 } });
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`${origin}/inspector`);

    await page.click('[data-testid=machine-tab-hpcJob]');
    await page.waitForSelector('[data-testid="state-hpcJob-transferring"] .count:text-matches("^1 actor")');

    await page.selectOption('[data-testid=actor-kind]', 'hpc-job');
    await page.waitForSelector('[data-testid=actor-total]:text-is("(1)")');
    const cells = page.locator('[data-testid=actor-row]').first().locator('span');
    const row = await cells.allTextContents();
    t.is(row[1], 'hpc-job');
    t.is(row[2], 'transferring');
    t.true(row[0]?.includes(JOB), row[0]);
    await page.locator('[data-testid=actor-row]').first().click();
    await page.waitForSelector('[data-testid=history-row]');
    t.is(await page.textContent('[data-testid=actor-state-label]'), 'transferring');
    t.regex((await page.locator('[data-testid="state-hpcJob-transferring"]').getAttribute('class')) ?? '', /\bhighlight\b/);
    const context = JSON.parse((await page.textContent('[data-testid=actor-context]')) ?? '{}') as { jobId?: string };
    t.is(context.jobId, JOB);
    const history = await page.locator('[data-testid=history-row]').allTextContents();
    t.true(history.some((r) => r.includes('transfer.started')), `history shows the transfer starting: ${history.join(' | ')}`);
    await page.screenshot({ path: screenshotPath('hpc-job-live'), fullPage: true });

    // Time travel to the last event in the history: the page and arcnet replay agree on the hash there.
    const last = page.locator('[data-testid=history-row]').last();
    const offset = Number(await last.locator('td').first().textContent());
    t.true(Number.isInteger(offset), String(offset));
    await page.selectOption('[data-testid=tt-geozone]', 'CENTRAL');
    await page.fill('[data-testid=tt-offset]', String(offset));
    await page.press('[data-testid=tt-offset]', 'Enter');
    const replayed = arcnetSync('replay', '--journal', join(dir, 'data'), '--json', '--until-offset', String(offset), '--geozone', 'CENTRAL');
    t.is(replayed.status, 0, replayed.stderr);
    const line = JSON.parse(replayed.stdout) as { stateHash: string; counts?: Record<string, Record<string, Record<string, number>>> };
    t.is(line.counts?.['CENTRAL']?.['hpc-job']?.['transferring'], 1, replayed.stdout);
    let shown = '';
    for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
      shown = (await page.textContent('[data-testid=tt-hash]')) ?? '';
      if (shown === line.stateHash) break;
    }
    t.is(shown, line.stateHash, `time travel to offset ${offset}: the page's hash against arcnet replay's`);
    await page.screenshot({ path: screenshotPath('hpc-job-time-travel'), fullPage: true });
    t.deepEqual(errors, []);
  } finally {
    await central.process.stop('test');
    cleanup();
  }
});
