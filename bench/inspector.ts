import Fastify from 'fastify';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';
import { createRegion } from '../actors/region.js';
import type { RegionEffect, RegionInput } from '../actors/region-io.js';
import { installGuard } from '../adapters/http/guard-hook.js';
import { LmdbStore } from '../adapters/lmdb/lmdb-store.js';
import { registerInspector } from '../inspector/register.js';
import { liveInspectorSource } from '../inspector/source.js';
import { monotonicNowMs, realScheduler, WallClock } from '../runtime/clock.js';
import { benchModels, fleetTelemetry } from './fleet-fixture.js';
import { figure, percentile, type Figure } from './measure.js';

const NODES = 10_000;
const PHASE_MS = 8_000;
const MAX_OUTSTANDING = 1024;
const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

/**
 * The inspector against a live region of 10,000 nodes under closed-loop
 * inference traffic (requests routed, journaled, dispatched and answered):
 * time to the first diagram and the cost of each live counts update in
 * Chromium (the page's own Performance marks), and the region's throughput
 * with and without the page connected and polling, in the same run.
 */
export async function inspectorBench(dataDir: string): Promise<Figure[]> {
  if (!existsSync(CHROMIUM)) throw new Error(`inspector bench needs Chromium at ${CHROMIUM}`);
  const store = new LmdbStore(join(dataDir, 'region'));
  const clock = new WallClock();
  let outstanding = 0;
  let completed = 0;
  let answers: RegionInput[] = [];
  const region = createRegion({
    geozones: ['CAISO'],
    store,
    clock,
    scheduler: realScheduler,
    deliverForwards: true,
    onEffects: (effects: readonly RegionEffect[]) => {
      for (const effect of effects) {
        if (effect.type === 'dispatch') answers.push({ type: 'result', requestId: effect.requestId, nodeId: effect.nodeId, latencyMs: 1, status: 'completed' });
        else if (effect.type === 'decision' && effect.outcome !== 'reserved') outstanding--;
      }
    },
  });
  const supervisor = region.supervisor;
  supervisor.recover();
  for (const input of fleetTelemetry(NODES, 'CAISO', clock.nowMs())) supervisor.submit(input);
  await supervisor.whenIdle();

  const source = liveInspectorSource(region, store, { path: store.path });
  const app = Fastify({ logger: false });
  registerInspector(app, { source, routes: installGuard(app, undefined) });
  const address = await app.listen({ host: '127.0.0.1', port: 0 });

  let sent = 0;
  // The fleet reports every 10 s, as real agents do: silent for 30 s, a node would go offline mid-run.
  let reportedAtMs = monotonicNowMs();
  /** Closed-loop traffic for `ms`: requests answered per second. */
  const traffic = async (ms: number): Promise<number> => {
    const start = monotonicNowMs();
    const doneBefore = completed;
    while (monotonicNowMs() - start < ms) {
      if (monotonicNowMs() - reportedAtMs >= 10_000) {
        reportedAtMs = monotonicNowMs();
        for (const input of fleetTelemetry(NODES, 'CAISO', clock.nowMs())) supervisor.submit(input);
      }
      const batch = answers;
      answers = [];
      for (const answer of batch) {
        supervisor.submit(answer);
        outstanding--;
        completed++;
      }
      for (let i = 0; i < 256 && outstanding < MAX_OUTSTANDING; i++) {
        const requestId = `req-${sent++}`;
        outstanding++;
        supervisor.submit({
          type: 'inference',
          request: { requestId, modelId: benchModels[sent % benchModels.length] as string, contextWindow: 4096, priority: 'normal', requesterGeozone: 'CAISO' },
          triedGeozones: [],
        });
      }
      await nextTurn();
    }
    return ((completed - doneBefore) / (monotonicNowMs() - start)) * 1000;
  };

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    await traffic(1_500); // warm-up
    const withoutBefore = await traffic(PHASE_MS);

    const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
    await page.goto(`${address}/inspector`);
    await page.waitForSelector('[data-testid="state-node-online"] .count:not(:empty)');
    // The page keeps polling counts (once a second), the list and the map while the traffic runs.
    const withPage = await traffic(PHASE_MS);
    const marks = await page.evaluate<{ firstDiagramMs: number; updates: number[] }>(
      "({ firstDiagramMs: performance.getEntriesByName('first-diagram')[0]?.startTime ?? NaN, updates: performance.getEntriesByName('counts-update').map((e) => e.duration) })",
    );
    const listed = (await page.textContent('[data-testid=actor-total]')) ?? '';
    await page.close();
    // Each "with" phase is compared with the "without" phases on either side of it, so that the
    // machine's drift (other work, the journal growing) does not pass for inspector cost.
    const withoutBetween = await traffic(PHASE_MS);

    // The same API calls at the page's cadence (counts each second, list and map every 5 s), with
    // no browser: what the inspector costs the region itself, apart from Chromium's own CPU on
    // a machine the two share.
    let polling = true;
    const poll = async (path: string, everyMs: number): Promise<void> => {
      while (polling) {
        await (await fetch(`${address}/inspector/api/${path}`)).arrayBuffer();
        await sleep(everyMs);
      }
    };
    const pollers = [poll('counts', 1_000), poll('actors?offset=0&limit=100', 5_000), poll('map', 5_000)];
    const withApiOnly = await traffic(PHASE_MS);
    polling = false;
    await Promise.all(pollers);
    const withoutAfter = await traffic(PHASE_MS);
    const aroundPage = (withoutBefore + withoutBetween) / 2;
    const aroundApi = (withoutBetween + withoutAfter) / 2;

    const base = { nodes: NODES, phaseMs: PHASE_MS, listed };
    return [
      figure({
        bench: 'inspector',
        metric: 'time to first diagram',
        unit: 'ms',
        value: marks.firstDiagramMs,
        baseline: { what: 'navigation start', value: 1 },
        goal: 'first diagram well under a second at 10,000 nodes',
        extra: base,
      }),
      figure({
        bench: 'inspector',
        metric: 'live update frame time p99',
        unit: 'ms',
        value: percentile(marks.updates, 99),
        baseline: { what: 'update p50', value: percentile(marks.updates, 50) },
        goal: 'each live counts update well under a 16 ms frame',
        extra: { ...base, updates: marks.updates.length },
      }),
      figure({
        bench: 'inspector',
        metric: 'region throughput with the inspector open',
        unit: 'requests/s',
        value: withPage,
        baseline: { what: 'same region, no inspector connected (mean of the phases just before and after)', value: aroundPage },
        goal: 'ratio close to 1: the inspector does not slow the runtime measurably',
        extra: { ...base, withoutBefore: Math.round(withoutBefore), withoutAfter: Math.round(withoutBetween), note: 'Chromium runs on the same 2 cores as the region' },
      }),
      figure({
        bench: 'inspector',
        metric: 'region throughput under the inspector API alone',
        unit: 'requests/s',
        value: withApiOnly,
        baseline: { what: 'same region, no inspector connected (mean of the phases just before and after)', value: aroundApi },
        goal: 'ratio close to 1: the inspector does not slow the runtime measurably',
        extra: { ...base, withoutBefore: Math.round(withoutBetween), withoutAfter: Math.round(withoutAfter), what: "the page's API calls at its cadence, no browser" },
      }),
    ];
  } finally {
    await browser.close();
    await app.close();
    await source.close();
    await supervisor.whenIdle();
    await store.close();
  }
}
