import { createRegion, type Region } from '../../actors/region.js';
import type { RegionEffect } from '../../actors/region-io.js';
import { limits } from '../../actors/wire.js';
import type { RequestGuard } from '../../adapters/http/access.js';
import { buildHttpApi } from '../../adapters/http/http-api.js';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import { RegionMetrics } from '../../adapters/metrics/prometheus.js';
import { createRegionApi, regionMetricsSource } from '../../app/region-api.js';
import { registerInspector } from '../../inspector/register.js';
import { liveInspectorSource, type InspectorSource } from '../../inspector/source.js';
import { realScheduler, WallClock } from '../../runtime/clock.js';
import { tempDir } from './fixtures.js';

/** Wire-format bodies as node agents and requesters send them. */
export const telemetryBody = (nodeId: string, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({
    'node-id': nodeId,
    geozone: 'CAISO',
    geohash: '9q9hvu',
    'energy-source': 'cogen',
    'battery-level': 0.9,
    'gpu-utilization': 0.3,
    'models-loaded': ['llama-3-70b'],
    timestamp: new Date().toISOString(),
    ...extra,
  });

export const inferenceBody = (requestId: string, modelId = 'llama-3-70b', geozone = 'CAISO'): string =>
  JSON.stringify({ 'request-id': requestId, 'model-id': modelId, 'context-window': 4096, priority: 'normal', 'requester-geozone': geozone });

export const jsonHeaders = { 'content-type': 'application/json' };

export interface HttpRegion {
  readonly app: ReturnType<typeof buildHttpApi>;
  readonly region: Region;
  readonly store: LmdbStore;
  /** Every effect the region released, in order. */
  readonly effects: RegionEffect[];
}

/** A live region (wall clock, LMDB in a temp folder) behind the HTTP API, for one test. */
export async function withHttpRegion(
  run: (ctx: HttpRegion) => Promise<void>,
  options: {
    geozones?: readonly string[];
    guard?: RequestGuard;
    /** Mount the inspector (live, with time travel over the region's LMDB store), as the region does. */
    inspector?: boolean;
    /** Serve and document the console WebSocket path (a hub must be attached to app.server for upgrades). */
    consolePath?: string;
    agentPath?: string;
  } = {},
): Promise<void> {
  const { dir, cleanup } = tempDir();
  const metrics = new RegionMetrics();
  const lmdb = new LmdbStore(dir);
  const store = metrics.timeAppends(lmdb);
  const effects: RegionEffect[] = [];
  let onEffects: (effects: readonly RegionEffect[]) => void = () => undefined;
  const region = createRegion({
    geozones: options.geozones ?? ['CAISO'],
    store,
    clock: new WallClock(),
    scheduler: realScheduler,
    deliverForwards: true,
    onEffects: (e) => {
      effects.push(...e);
      onEffects(e);
    },
  });
  region.supervisor.recover();
  const wiring = createRegionApi(region, { decisionTimeoutMs: 5_000, ready: () => true, metrics, store });
  metrics.readFrom(regionMetricsSource(region, () => 0));
  onEffects = wiring.onEffects;
  const inspector: InspectorSource | undefined = options.inspector === true ? liveInspectorSource(region, lmdb, { path: lmdb.path }) : undefined;
  const app = buildHttpApi(wiring.api, {
    bodyLimitBytes: limits.maxMessageBytes,
    guard: options.guard,
    consolePath: options.consolePath,
    agentPath: options.agentPath,
    ...(inspector === undefined ? {} : { extraRoutes: (routes, guarded) => registerInspector(routes, { source: inspector, routes: guarded, consolePath: options.consolePath ?? null }) }),
  });
  try {
    await run({ app, region, store: lmdb, effects });
  } finally {
    await app.close();
    await inspector?.close();
    // Shard-to-shard messages (forwards and their acknowledgements) may still be on their way: the store closes after them.
    await region.supervisor.whenIdle();
    await store.close();
    cleanup();
  }
}
