import test from 'ava';
import { join } from 'node:path';
import WebSocket from 'ws';
import { tempDir } from '../helpers/fixtures.js';
import { arcnetSync, startLiveRegion, type LiveRegion } from '../helpers/live-region.js';
import { eventually } from './helpers.js';

/**
 * The "Done means", with real processes: `arcnet region` serving three geozones and
 * `arcnet central` reading their summaries (`--summaries-from`, what stands in for
 * arc.summary.regional when both run embedded). GET /v1/global shows every region; when the
 * region dies, each of its geozones raises the silence alert (a SystemEvent on the console feed,
 * with the rule and why), and the view says silent.
 */

type Json = Record<string, unknown>;
const GEOZONES = ['CAISO', 'ERCOT', 'PJM'];
const PERIOD_MS = 500;
/** Not the default 3: the --alerts flag reaches the detector. */
const SILENT_PERIODS = 4;

const kill9 = async (live: LiveRegion): Promise<void> => {
  const exited = new Promise((resolve) => live.child.once('exit', resolve));
  live.child.kill('SIGKILL');
  await exited;
};

const globalView = async (origin: string): Promise<Json[]> => ((await (await fetch(`${origin}/v1/global`)).json()) as { geozones: Json[] }).geozones;

test('GET /v1/global shows every region a live arcnet region serves; when that region dies, each geozone raises the silence alert', async (t) => {
  t.timeout(180_000, 'two processes on a loaded machine');
  const { dir, cleanup } = tempDir();
  const region = await startLiveRegion(['--data', join(dir, 'region'), '--geozones', GEOZONES.join(','), '--sim-nodes', '30', '--rate', '1', '--faults', 'off', '--progress', 'off']);
  let central: LiveRegion | undefined;
  try {
    central = await startLiveRegion(
      ['--data', join(dir, 'central'), '--hpc', 'local', '--hpc-dir', join(dir, 'hpc'), '--summaries-from', region.origin, '--summary-every', `${PERIOD_MS}ms`, '--alerts', `silent-periods=${SILENT_PERIODS}`],
      process.env,
      'central',
    );
    const origin = central.origin;
    const reporting = await eventually('every geozone of the region in the global view', async () => {
      const view = await globalView(origin);
      return GEOZONES.every((g) => view.some((v) => v['geozone'] === g && v['state'] === 'reporting' && ((v['latest'] as Json | undefined)?.['total-nodes'] as number) > 0)) ? view : undefined;
    });
    t.deepEqual(reporting.map((v) => v['geozone']), GEOZONES);

    const messages: Json[] = [];
    const socket = new WebSocket(`${origin.replace(/^http/, 'ws')}/telemetry`);
    socket.on('message', (data: Buffer) => messages.push(JSON.parse(data.toString()) as Json));
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    t.false(messages.some((m) => m['type'] === 'system' && (m['details'] as Json | undefined)?.['rule'] === 'region-silent'), 'no silence while the region reports');

    await kill9(region);
    const alerts = await eventually('a silence alert for each geozone', () => {
      const silent = messages.filter((m) => m['type'] === 'system' && (m['details'] as Json | undefined)?.['rule'] === 'region-silent' && m['severity'] === 'error');
      return Promise.resolve(GEOZONES.every((g) => silent.some((m) => (m['details'] as Json)['geozone'] === g)) ? silent : undefined);
    });
    socket.close();
    for (const alert of alerts) {
      const details = alert['details'] as Json;
      t.like(details, { periods: SILENT_PERIODS, summaryEveryMs: PERIOD_MS });
      t.true((details['silentForMs'] as number) >= SILENT_PERIODS * PERIOD_MS);
      t.regex(String(details['explanation']), /no summary since logical time \d+; 4 periods of 500 ms passed/);
    }
    t.deepEqual((await globalView(origin)).map((v) => v['state']), ['silent', 'silent', 'silent']);
    const line = await central.stop();
    t.like(line, { role: 'central' });
  } finally {
    if (region.child.exitCode === null) region.child.kill('SIGKILL');
    if (central !== undefined && central.child.exitCode === null) central.child.kill('SIGKILL');
    cleanup();
  }
});

test('--alerts refuses a threshold it does not know, or a value out of range, with a usage error naming what it takes', (t) => {
  const { dir, cleanup } = tempDir();
  try {
    for (const [value, says] of [
      ['silence=2', /use NAME=VALUE with NAME one of silent-periods, active-drop, gpu-high, gpu-high-periods, battery-shift, recent-window/],
      ['gpu-high=1.5', /--alerts gpu-high=1.5: use a number from 0 to 1/],
      ['silent-periods=2.5', /use a whole number from 1 to 1000/],
    ] as const) {
      const run = arcnetSync('central', '--data', join(dir, 'data'), '--hpc', 'local', '--port', 'off', '--alerts', value);
      t.is(run.status, 2, run.stderr);
      t.regex(run.stderr, says);
    }
  } finally {
    cleanup();
  }
});
