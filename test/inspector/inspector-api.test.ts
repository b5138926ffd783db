import test from 'ava';
import Fastify, { type FastifyInstance } from 'fastify';
import { createRegion, type Region } from '../../actors/region.js';
import type { RegionInput } from '../../actors/region-io.js';
import { installGuard } from '../../adapters/http/guard-hook.js';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import { ApiKeyStore, createKey, type Role } from '../../adapters/security/api-keys.js';
import { createKeyGuard } from '../../adapters/security/key-guard.js';
import { RateLimiter } from '../../adapters/security/rate-limiter.js';
import { TicketBook } from '../../adapters/security/tickets.js';
import { fleetTelemetry } from '../../bench/fleet-fixture.js';
import { actorsMessageSchema, LiveActorCounts } from '../../inspector/live-counts.js';
import { stateAt } from '../../inspector/point-in-time.js';
import { registerInspector } from '../../inspector/register.js';
import { liveInspectorSource, type InspectorSource } from '../../inspector/source.js';
import { realScheduler, WallClock } from '../../runtime/clock.js';
import { tempDir } from '../helpers/fixtures.js';

/** A live two-geozone region (wall clock, LMDB) with the inspector mounted behind API keys. */
interface Live {
  readonly app: FastifyInstance;
  readonly region: Region;
  readonly store: LmdbStore;
  readonly auth: (name: 'caiso' | 'all') => Record<string, string>;
}

async function withLiveInspector(run: (live: Live) => Promise<void>, withStore = true): Promise<void> {
  const { dir, cleanup } = tempDir('arcnet-inspector-api-');
  const store = new LmdbStore(dir);
  const region = createRegion({ geozones: ['CAISO', 'ERCOT'], store, clock: new WallClock(), scheduler: realScheduler, deliverForwards: true, onEffects: () => undefined });
  region.supervisor.recover();
  const keys: Record<string, string> = {};
  const stored = (
    [
      ['caiso', 'viewer', ['CAISO']],
      ['all', 'viewer', ['*']],
    ] as [string, Role, string[]][]
  ).map(([name, role, geozones]) => {
    const made = createKey({ role, geozones, label: name });
    keys[name] = made.key;
    return made.stored;
  });
  const guard = createKeyGuard({ keys: new ApiKeyStore(stored), limiter: new RateLimiter({ ratePerSec: 1_000, burst: 1_000 }), tickets: new TicketBook(), nowMs: () => Date.now(), onRefused: () => undefined });
  const app = Fastify();
  const routes = installGuard(app, guard);
  const source: InspectorSource = liveInspectorSource(region, store, withStore ? { path: store.path } : { unavailable: "time travel needs the region's LMDB journal, and this region runs without one" });
  registerInspector(app, { source, routes });
  try {
    for (const geozone of ['CAISO', 'ERCOT']) for (const input of fleetTelemetry(20, geozone, Date.now())) region.supervisor.submit(input);
    await region.supervisor.whenIdle();
    await run({ app, region, store, auth: (name) => ({ authorization: `Bearer ${keys[name] ?? ''}` }) });
  } finally {
    await app.close();
    await source.close();
    await region.supervisor.whenIdle();
    await store.close();
    cleanup();
  }
}

const inference = (requestId: string, geozone: string): RegionInput => ({
  type: 'inference',
  request: { requestId, modelId: 'llama-3-8b', contextWindow: 4096, priority: 'normal', requesterGeozone: geozone },
  triedGeozones: [],
});

test('the page is public and locked down; every API route wants a key', async (t) => {
  await withLiveInspector(async ({ app, auth }) => {
    const page = await app.inject({ method: 'GET', url: '/inspector' });
    t.is(page.statusCode, 200);
    t.regex(page.headers['content-type'] as string, /text\/html/);
    t.regex(page.headers['content-security-policy'] as string, /default-src 'none'.*script-src 'self'/);
    t.is((await app.inject({ method: 'GET', url: '/inspector/assets/app.js' })).statusCode, 200);
    t.is((await app.inject({ method: 'GET', url: '/inspector/assets/geohash.js' })).statusCode, 200);
    t.is((await app.inject({ method: 'GET', url: '/inspector/assets/elk.bundled.js' })).statusCode, 200);
    t.is((await app.inject({ method: 'GET', url: '/inspector/assets/..%2Fregister.js' })).statusCode, 404);
    for (const path of ['info', 'machines', 'counts', 'actors', 'actor?id=node/CAISO-00000', 'history?id=node/CAISO-00000', 'map', 'range', 'at?time=0']) {
      const refused = await app.inject({ method: 'GET', url: `/inspector/api/${path}` });
      t.is(refused.statusCode, 401, path);
      t.is(refused.json<{ code: string }>().code, 'ARC_ERR_UNAUTHENTICATED');
    }
    const info = await app.inject({ method: 'GET', url: '/inspector/api/info', headers: auth('all') });
    t.like(info.json(), { mode: 'live', geozones: ['CAISO', 'ERCOT'], timeTravel: true });
  });
});

test('a key scoped to CAISO sees only CAISO: counts, list, actors, history, map and time travel', async (t) => {
  await withLiveInspector(async ({ app, auth, region, store }) => {
    const get = (url: string, who: 'caiso' | 'all' = 'caiso') => app.inject({ method: 'GET', url: `/inspector/api/${url}`, headers: auth(who) });
    t.deepEqual((await get('counts')).json<{ geozones: { geozone: string; counts: unknown }[] }>().geozones.map((g) => [g.geozone, g.counts]), [['CAISO', { node: { online: 20 } }]]);
    const list = (await get('actors?limit=500')).json<{ total: number; rows: { id: string; geozone: string }[] }>();
    t.is(list.total, 20);
    t.true(list.rows.every((row) => row.geozone === 'CAISO'));
    t.deepEqual(list.rows.map((r) => r.id), [...list.rows.map((r) => r.id)].sort());
    t.is((await get('actors?q=ERCOT')).json<{ total: number }>().total, 0);
    t.is((await get('actors?q=ERCOT', 'all')).json<{ total: number }>().total, 20);
    t.is((await get('actor?id=node/ERCOT-00001')).statusCode, 404);
    t.is((await get('actor?id=node/ERCOT-00001', 'all')).json<{ geozone: string }>().geozone, 'ERCOT');
    t.is((await get('history?id=node/ERCOT-00001')).statusCode, 404);
    const history = (await get('history?id=node/CAISO-00001')).json<{ entries: { event: string; state: string }[] }>();
    t.deepEqual(history.entries.map((e) => [e.event, e.state]), [['@spawn', 'online']]);
    t.deepEqual((await get('map')).json<{ geozones: { geozone: string }[] }>().geozones.map((g) => g.geozone), ['CAISO']);
    t.is((await get('at?geozone=ERCOT&offset=3')).statusCode, 404);
    t.is((await get('actors?limit=100000')).statusCode, 400);

    // Time travel on the live region (replayed by the worker beside the live writer).
    const scoped = (await get('at?geozone=CAISO&offset=9')).json<{ stateHash: string | null; shards: { geozone: string; counts: unknown }[] }>();
    t.is(scoped.stateHash, null, 'the whole-region hash is for keys that see every geozone');
    await region.supervisor.whenIdle();
    const expected = stateAt(store, { geozone: 'CAISO', offset: 9 });
    t.deepEqual(scoped.shards.map((s) => [s.geozone, s.counts]), [['CAISO', expected.shards.find((s) => s.geozone === 'CAISO')?.counts]]);
    const whole = (await get('at?geozone=CAISO&offset=9', 'all')).json<{ stateHash: string }>();
    t.is(whole.stateHash, expected.stateHash);
  });
});

test('the live region keeps going while the inspector answers, and time travel sees its newest records', async (t) => {
  await withLiveInspector(async ({ app, auth, region }) => {
    const telemetryEnd = region.supervisor.shard('CAISO').lastDurableOffset;
    const first = (await app.inject({ method: 'GET', url: `/inspector/api/at?geozone=CAISO&offset=${telemetryEnd}`, headers: auth('all') })).json<{ shards: { counts: unknown }[] }>();
    t.deepEqual(first.shards[0]?.counts, { node: { online: 20 } });
    for (let i = 0; i < 5; i++) region.supervisor.submit(inference(`r-${i}`, 'CAISO'));
    await region.supervisor.whenIdle();
    const last = region.supervisor.shard('CAISO').lastDurableOffset;
    const later = await app.inject({ method: 'GET', url: `/inspector/api/at?geozone=CAISO&offset=${last}`, headers: auth('all') });
    t.is(later.statusCode, 200, later.body);
    const reservations = later.json<{ shards: { counts: { reservation?: Record<string, number> } }[] }>().shards[0]?.counts.reservation ?? {};
    t.is(Object.values(reservations).reduce((a, b) => a + b, 0), 5);
  });
});

test('without an LMDB store, time travel answers 501 with a coded error and the rest still works', async (t) => {
  await withLiveInspector(async ({ app, auth }) => {
    const info = (await app.inject({ method: 'GET', url: '/inspector/api/info', headers: auth('all') })).json<{ timeTravel: boolean }>();
    t.false(info.timeTravel);
    const at = await app.inject({ method: 'GET', url: '/inspector/api/at?time=0', headers: auth('all') });
    t.is(at.statusCode, 501);
    t.is(at.json<{ code: string }>().code, 'ARC_ERR_NO_JOURNAL');
    t.is((await app.inject({ method: 'GET', url: '/inspector/api/counts', headers: auth('all') })).statusCode, 200);
  }, false);
});

test('actors messages: counts per geozone by kind and state, and request rates from the counter deltas', async (t) => {
  await withLiveInspector(async ({ region }) => {
    const live = new LiveActorCounts(region);
    const first = live.tick(1_000_000);
    t.deepEqual(first.map((m) => [m.geozone, m.counts, m.rates]), [
      ['CAISO', { node: { online: 20 } }, { routed: 0, rejected: 0, expired: 0 }],
      ['ERCOT', { node: { online: 20 } }, { routed: 0, rejected: 0, expired: 0 }],
    ]);
    for (let i = 0; i < 4; i++) region.supervisor.submit(inference(`c-${i}`, 'CAISO'));
    region.supervisor.submit({
      type: 'inference',
      request: { requestId: 'nobody-has-it', modelId: 'no-such-model', contextWindow: 4096, priority: 'normal', requesterGeozone: 'ERCOT' },
      triedGeozones: [],
    });
    await region.supervisor.whenIdle();
    const second = live.tick(1_002_000);
    for (const message of second) t.true(actorsMessageSchema.safeParse(message).success);
    const caiso = second.find((m) => m.geozone === 'CAISO');
    t.is(caiso?.rates.routed, 2, '4 reservations over 2 s');
    t.is(Object.values(caiso?.counts['reservation'] ?? {}).reduce((a, b) => a + b, 0), 4);
    t.is(caiso?.timestamp, new Date(1_002_000).toISOString());
    const rejectedSomewhere = second.reduce((sum, m) => sum + m.rates.rejected, 0);
    t.is(rejectedSomewhere, 0.5, 'one rejection over 2 s');
  });
});
