import test from 'ava';
import type { JournalEvent, JournalRecord } from '../../runtime/journal.js';
import { InvariantChecker, MAX_REPORTED_VIOLATIONS, type CheckerConfig, type InvariantReport } from '../../simulations/invariants.js';

const TTL_MS = 30_000;
const SILENCE_MS = 30_000;

interface NodeOptions {
  gpuCount?: number;
  reservationsPerGpu?: number;
  draining?: boolean;
}

function report(atMs: number, gpuCount: number, draining: boolean) {
  return {
    gpuCount,
    geozone: 'CAISO',
    energySource: 'grid',
    batteryLevel: 1,
    gpuUtilization: 0.1,
    modelsLoaded: ['llama'],
    reportedAtMs: atMs,
    draining,
    geohash: '9q8yy',
  };
}

/** Builds one shard's journal by hand; offsets are assigned in order. */
class ShardLog {
  readonly records: JournalRecord[] = [];

  push(atMs: number, actorId: string, kind: string, event: JournalEvent, state: string): this {
    this.records.push({ offset: this.records.length, atMs, actorId, kind, event, state });
    return this;
  }

  // ---- nodes
  node(atMs: number, nodeId: string, options: NodeOptions = {}): this {
    const { gpuCount = 1, reservationsPerGpu = 2, draining = false } = options;
    const input = { nodeId, report: report(atMs, gpuCount, draining), atMs, silenceTimeoutMs: SILENCE_MS, reservationsPerGpu };
    return this.push(atMs, `node/${nodeId}`, 'node', { type: '@spawn', input }, draining ? 'draining' : 'online');
  }

  telemetry(atMs: number, nodeId: string, state = 'online', gpuCount = 1): this {
    return this.push(atMs, `node/${nodeId}`, 'node', { type: 'telemetry', atMs, report: report(atMs, gpuCount, state === 'draining') }, state);
  }

  timeout(atMs: number, nodeId: string): this {
    return this.push(atMs, `node/${nodeId}`, 'node', { type: 'timeout', atMs }, 'offline');
  }

  drain(atMs: number, nodeId: string): this {
    return this.push(atMs, `node/${nodeId}`, 'node', { type: 'drain', atMs }, 'draining');
  }

  // ---- reservations
  request(atMs: number, requestId: string, triedGeozones: string[] = []): this {
    const input = {
      requestId,
      modelId: 'llama',
      contextWindow: 4096,
      priority: 'normal',
      requesterGeozone: 'CAISO',
      triedGeozones,
      receivedAtMs: atMs,
      reservationTtlMs: TTL_MS,
      maxAttempts: 3,
    };
    return this.res(atMs, requestId, { type: '@spawn', input }, 'requested');
  }

  reserve(atMs: number, requestId: string, nodeId: string): this {
    return this.res(atMs, requestId, { type: 'route.reserved', atMs, nodeId, candidates: 1, reason: 'test' }, 'reserved');
  }

  dispatch(atMs: number, requestId: string): this {
    return this.res(atMs, requestId, { type: 'dispatch', atMs }, 'dispatched');
  }

  result(atMs: number, requestId: string, nodeId: string, status: 'completed' | 'failed' = 'completed'): this {
    return this.res(atMs, requestId, { type: 'result', atMs, nodeId, status, latencyMs: 42 }, status);
  }

  expire(atMs: number, requestId: string): this {
    return this.res(atMs, requestId, { type: 'expire', atMs }, 'expired');
  }

  lost(atMs: number, requestId: string, nodeId: string, state: 'requested' | 'failed' = 'requested'): this {
    return this.res(atMs, requestId, { type: 'node.lost', atMs, nodeId }, state);
  }

  forward(atMs: number, requestId: string, toGeozone: string): this {
    return this.res(atMs, requestId, { type: 'route.forwarded', atMs, toGeozone, candidates: 0, reason: 'no-candidate' }, 'forwarded');
  }

  reject(atMs: number, requestId: string): this {
    return this.res(atMs, requestId, { type: 'route.rejected', atMs, candidates: 0, reason: 'no-candidate' }, 'rejected');
  }

  note(atMs: number): this {
    return this.push(atMs, '@shard', '@shard', { type: 'summary', atMs }, '');
  }

  private res(atMs: number, requestId: string, event: JournalEvent, state: string): this {
    return this.push(atMs, `reservation/${requestId}`, 'reservation', event, state);
  }
}

function check(shards: Record<string, ShardLog>, config?: Partial<CheckerConfig>): InvariantReport {
  const checker = new InvariantChecker(config);
  for (const [shardId, log] of Object.entries(shards)) checker.checkShard(shardId, log.records);
  return checker.finish();
}

/** A clean region across two shards: every kind of record the checker knows, no violation. */
function cleanRegion(): Record<string, ShardLog> {
  const caiso = new ShardLog()
    .node(0, 'a', { gpuCount: 1, reservationsPerGpu: 2 })
    .node(0, 'b', { gpuCount: 2, reservationsPerGpu: 1 })
    // r1: reserved, dispatched, completed.
    .request(1_000, 'r1').reserve(1_000, 'r1', 'a').dispatch(1_000, 'r1')
    .result(2_000, 'r1', 'a')
    // r2 on a, which goes silent; r3 on b, which will expire.
    .request(5_000, 'r2').reserve(5_000, 'r2', 'a')
    .request(6_000, 'r3').reserve(6_000, 'r3', 'b')
    .telemetry(10_000, 'b', 'online', 2)
    .telemetry(20_000, 'b', 'online', 2)
    // a's silence deadline: offline, r2 moved to b in the same atMs.
    .timeout(30_000, 'a')
    .lost(30_000, 'r2', 'a').reserve(30_000, 'r2', 'b').dispatch(30_000, 'r2')
    .telemetry(30_000, 'b', 'online', 2)
    .expire(36_000, 'r3')
    .telemetry(40_000, 'b', 'online', 2)
    // r4 stays in flight to the end; r5 is handed to ERCOT.
    .request(45_000, 'r4').reserve(45_000, 'r4', 'b').dispatch(45_000, 'r4')
    .request(46_000, 'r5').forward(46_000, 'r5', 'ERCOT')
    .result(50_000, 'r2', 'b')
    .note(55_000);
  const ercot = new ShardLog()
    .node(40_000, 'c')
    .request(46_000, 'r5', ['CAISO']).reserve(46_000, 'r5', 'c').dispatch(46_000, 'r5')
    .result(47_000, 'r5', 'c');
  return { CAISO: caiso, ERCOT: ercot };
}

test('a clean region has no violations', (t) => {
  const result = check(cleanRegion());
  t.deepEqual(result.first, []);
  t.is(result.violations, 0);
  t.deepEqual(result.byRule, {});
  t.is(result.requests, 5);
  t.is(result.inFlight, 1);
  t.deepEqual(result.outcomes, { completed: 3, expired: 1 });
});

test('shards may be fed in any order and in chunks', (t) => {
  const { CAISO: caiso, ERCOT: ercot } = cleanRegion();
  const checker = new InvariantChecker();
  checker.checkShard('ERCOT', ercot!.records);
  checker.checkShard('CAISO', caiso!.records.slice(0, 10));
  checker.checkShard('CAISO', caiso!.records.slice(10));
  const result = checker.finish();
  t.is(result.violations, 0);
  t.is(result.inFlight, 1);
  t.is(checker.finish(), result, 'finish() is idempotent');
  t.throws(() => checker.checkShard('PJM', []), { message: /after finish/ });
});

test('node-over-capacity: a third reservation on a node that holds two', (t) => {
  const log = new ShardLog()
    .node(0, 'a', { gpuCount: 1, reservationsPerGpu: 2 })
    .request(1_000, 'r1').reserve(1_000, 'r1', 'a').dispatch(1_000, 'r1')
    .request(1_000, 'r2').reserve(1_000, 'r2', 'a').dispatch(1_000, 'r2')
    .request(1_000, 'r3').reserve(1_000, 'r3', 'a')
    // Freed capacity is reusable: r3 and r4 fit once r1 and r2 are done.
    .result(2_000, 'r1', 'a')
    .result(2_000, 'r2', 'a')
    .request(2_000, 'r4').reserve(2_000, 'r4', 'a');
  const result = check({ CAISO: log });
  t.deepEqual(result.byRule, { 'node-over-capacity': 1 });
  t.is(result.first[0]?.offset, 8);
  t.is(result.inFlight, 2);
});

test('node-over-capacity: capacity follows the gpuCount of later telemetry', (t) => {
  const log = new ShardLog()
    .node(0, 'a', { gpuCount: 2, reservationsPerGpu: 1 })
    .telemetry(500, 'a', 'online', 1)
    .request(1_000, 'r1').reserve(1_000, 'r1', 'a')
    .request(1_000, 'r2').reserve(1_000, 'r2', 'a');
  t.deepEqual(check({ CAISO: log }).byRule, { 'node-over-capacity': 1 });
});

test('dispatch-to-unavailable-node: draining, unknown and drained-before-dispatch nodes', (t) => {
  const log = new ShardLog()
    .node(0, 'drainer', { draining: true })
    .node(0, 'b')
    .request(1_000, 'r1').reserve(1_000, 'r1', 'drainer')
    .request(1_000, 'r2').reserve(1_000, 'r2', 'nowhere')
    .request(1_000, 'r3').reserve(1_000, 'r3', 'b')
    .drain(1_000, 'b')
    .dispatch(1_000, 'r3');
  const result = check({ CAISO: log });
  t.deepEqual(result.byRule, { 'dispatch-to-unavailable-node': 3 });
  t.deepEqual(result.first.map((v) => v.offset), [3, 5, 9]);
  t.is(result.inFlight, 3);
});

test('dispatch-to-unavailable-node: reserving on a node that already went offline', (t) => {
  const log = new ShardLog()
    .node(0, 'a')
    .timeout(30_000, 'a')
    .request(31_000, 'r1').reserve(31_000, 'r1', 'a').lost(31_000, 'r1', 'a', 'failed');
  t.deepEqual(check({ CAISO: log }).byRule, { 'dispatch-to-unavailable-node': 1 });
});

test('terminal-outcomes-not-one: forwarded but never spawned in another shard', (t) => {
  const log = new ShardLog().node(0, 'a').request(1_000, 'r1').forward(1_000, 'r1', 'ERCOT');
  const result = check({ CAISO: log });
  t.deepEqual(result.byRule, { 'terminal-outcomes-not-one': 1 });
  t.like(result.first[0], { shard: 'CAISO', offset: 2 });
  t.is(result.inFlight, 0);
});

test('terminal-outcomes-not-one: duplicate outcomes across two shards', (t) => {
  const caiso = new ShardLog().node(0, 'a').request(1_000, 'r1').reserve(1_000, 'r1', 'a').dispatch(1_000, 'r1').result(2_000, 'r1', 'a');
  const ercot = new ShardLog().node(0, 'c').request(1_000, 'r1', ['CAISO']).reject(1_000, 'r1');
  const result = check({ CAISO: caiso, ERCOT: ercot });
  t.deepEqual(result.byRule, { 'terminal-outcomes-not-one': 1 });
  t.like(result.first[0], { shard: 'ERCOT', offset: 2 });
  t.deepEqual(result.outcomes, { completed: 1, rejected: 1 });
  t.is(result.requests, 1);
});

test('terminal-outcomes-not-one: in flight in one shard while another already ended it', (t) => {
  const caiso = new ShardLog().node(0, 'a').request(1_000, 'r1').reserve(1_000, 'r1', 'a').dispatch(1_000, 'r1');
  const ercot = new ShardLog().node(0, 'c').request(1_000, 'r1', ['CAISO']).reject(1_000, 'r1');
  const result = check({ CAISO: caiso, ERCOT: ercot });
  t.deepEqual(result.byRule, { 'terminal-outcomes-not-one': 1 });
  t.is(result.inFlight, 1);
});

test('expiry-not-exact: expiring late or early', (t) => {
  const log = new ShardLog()
    .node(0, 'a')
    .request(1_000, 'late').reserve(1_000, 'late', 'a')
    .request(2_000, 'early').reserve(2_000, 'early', 'a')
    .telemetry(20_000, 'a')
    .expire(31_001, 'late')
    .expire(31_999, 'early');
  const result = check({ CAISO: log });
  t.deepEqual(result.byRule, { 'expiry-not-exact': 2 });
  t.deepEqual(result.outcomes, { expired: 2 });
});

test('expiry-missed: touched after the deadline, and still open at the end', (t) => {
  const log = new ShardLog()
    .node(0, 'a')
    .request(1_000, 'touched').reserve(1_000, 'touched', 'a').dispatch(1_000, 'touched')
    .request(2_000, 'forgotten').reserve(2_000, 'forgotten', 'a')
    .telemetry(20_000, 'a')
    .result(31_500, 'touched', 'a')
    .telemetry(39_000, 'a');
  const result = check({ CAISO: log });
  // 'forgotten' is overdue, so not in flight: it also ends with no outcome.
  t.deepEqual(result.byRule, { 'expiry-missed': 2, 'terminal-outcomes-not-one': 1 });
  t.deepEqual(
    result.first.filter((v) => v.rule === 'expiry-missed').map((v) => v.offset),
    [7, 8],
  );
  t.is(result.inFlight, 0);
});

test('expiry-missed: time passes the deadline with the reservation left open', (t) => {
  const log = new ShardLog()
    .node(0, 'a')
    .request(1_000, 'r1').reserve(1_000, 'r1', 'a')
    .telemetry(20_000, 'a')
    .note(31_001)
    .note(32_000)
    .expire(32_000, 'r1');
  t.deepEqual(check({ CAISO: log }).byRule, { 'expiry-missed': 1, 'expiry-not-exact': 1 });
});

test('timeout-not-exact: going offline late, and early relative to the last telemetry', (t) => {
  const log = new ShardLog()
    .node(0, 'late')
    .node(0, 'early')
    .telemetry(10_000, 'early')
    .timeout(30_000, 'early')
    .timeout(30_001, 'late');
  const result = check({ CAISO: log });
  t.deepEqual(result.byRule, { 'timeout-not-exact': 2 });
  t.deepEqual(result.first.map((v) => v.offset), [3, 4]);
});

test('timeout-missed: telemetry after the deadline, and still online at the end', (t) => {
  const log = new ShardLog()
    .node(0, 'chatty')
    .node(0, 'silent')
    .telemetry(30_000, 'chatty') // exactly on the deadline: fine
    .telemetry(60_001, 'chatty') // should have gone offline at 60_000
    .timeout(30_000, 'silent')
    .node(61_000, 'late')
    .note(91_001);
  const result = check({ CAISO: log });
  // Once at chatty's late telemetry; at the end chatty (60_001) and late (61_000) are both overdue.
  t.deepEqual(result.byRule, { 'timeout-missed': 3 });
  t.deepEqual(result.first.map((v) => v.offset), [3, 6, 6]);
});

test('timeout-missed: a draining node must time out too; an offline node need not', (t) => {
  const log = new ShardLog()
    .node(0, 'drainer', { draining: true })
    .node(0, 'gone')
    .timeout(30_000, 'gone')
    .note(30_001)
    .telemetry(70_000, 'gone');
  // drainer is overdue at the end; gone was offline when its telemetry came back.
  const result = check({ CAISO: log });
  t.deepEqual(result.byRule, { 'timeout-missed': 1 });
  t.true(result.first[0]?.detail.includes('drainer'));
});

test('reservation-open-after-timeout: not moved before time advances, or by the end', (t) => {
  const caiso = new ShardLog()
    .node(0, 'a')
    .node(0, 'b')
    .request(1_000, 'r1').reserve(1_000, 'r1', 'a').dispatch(1_000, 'r1')
    .telemetry(20_000, 'b')
    .timeout(30_000, 'a')
    .telemetry(30_500, 'b');
  const ercot = new ShardLog()
    .node(0, 'c')
    .request(1_000, 'r2').reserve(1_000, 'r2', 'c')
    .timeout(30_000, 'c');
  const result = check({ CAISO: caiso, ERCOT: ercot });
  t.deepEqual(result.byRule, { 'reservation-open-after-timeout': 2 });
  t.deepEqual(
    result.first.map((v) => [v.shard, v.offset]),
    [
      ['CAISO', 6],
      ['ERCOT', 3],
    ],
  );
  // Both are still open and not overdue, so in flight.
  t.is(result.inFlight, 2);
});

test('reservation-open-after-timeout: a failed or expired reservation counts as moved', (t) => {
  const log = new ShardLog()
    .node(0, 'a', { gpuCount: 2 })
    .request(0, 'r2').reserve(0, 'r2', 'a')
    .request(1_000, 'r1').reserve(1_000, 'r1', 'a')
    .timeout(30_000, 'a')
    .expire(30_000, 'r2')
    .lost(30_000, 'r1', 'a', 'failed')
    .note(30_001);
  const result = check({ CAISO: log });
  t.is(result.violations, 0);
  t.deepEqual(result.outcomes, { expired: 1, failed: 1 });
});

test('request-stuck-unrouted: left requested after spawn, and after node.lost at the end', (t) => {
  const log = new ShardLog()
    .node(0, 'a')
    .node(0, 'b')
    .request(1_000, 'r1')
    .note(2_000)
    .request(3_000, 'r2').reserve(3_000, 'r2', 'a')
    .telemetry(10_000, 'b')
    .timeout(30_000, 'a')
    .lost(30_000, 'r2', 'a');
  const result = check({ CAISO: log });
  // Both also end with no outcome and not in flight.
  t.deepEqual(result.byRule, { 'request-stuck-unrouted': 2, 'terminal-outcomes-not-one': 2 });
  t.deepEqual(
    result.first.filter((v) => v.rule === 'request-stuck-unrouted').map((v) => v.offset),
    [2, 8],
  );
});

test('the report keeps only the first violations but counts all of them', (t) => {
  const log = new ShardLog().node(0, 'a', { gpuCount: 1, reservationsPerGpu: 1 });
  for (let i = 0; i < 30; i += 1) log.request(1_000, `r${i}`).reserve(1_000, `r${i}`, 'a');
  const result = check({ CAISO: log });
  t.is(result.byRule['node-over-capacity'], 29);
  t.is(result.violations, 29);
  t.is(result.first.length, MAX_REPORTED_VIOLATIONS);
});

test('a long clean journal is checked in linear time with no violations', (t) => {
  const log = new ShardLog();
  const nodes = 50;
  for (let n = 0; n < nodes; n += 1) log.node(0, `n${n}`, { gpuCount: 4, reservationsPerGpu: 2 });
  let requests = 0;
  for (let atMs = 1_000; atMs <= 600_000; atMs += 1_000) {
    if (atMs % 10_000 === 0) for (let n = 0; n < nodes; n += 1) log.telemetry(atMs, `n${n}`, 'online', 4);
    for (let k = 0; k < 20; k += 1) {
      const id = `q${requests}`;
      const nodeId = `n${requests % nodes}`;
      requests += 1;
      log.request(atMs, id).reserve(atMs, id, nodeId).dispatch(atMs, id);
      if (k % 4 !== 3) log.result(atMs + 500, id, nodeId);
    }
  }
  // Every fourth request never got a result: expire them exactly on time, in deadline order.
  const sorted = [...log.records].sort((a, b) => a.atMs - b.atMs || a.offset - b.offset);
  const withExpiries = new ShardLog();
  const expiries: { atMs: number; id: string }[] = [];
  let head = 0;
  for (const record of sorted) {
    while (head < expiries.length && expiries[head]!.atMs <= record.atMs) {
      const e = expiries[head]!;
      withExpiries.expire(e.atMs, e.id);
      head += 1;
    }
    withExpiries.push(record.atMs, record.actorId, record.kind, record.event, record.state);
    if (record.event.type === 'route.reserved') {
      const id = record.actorId.slice('reservation/'.length);
      if (Number(id.slice(1)) % 20 % 4 === 3) expiries.push({ atMs: record.atMs + TTL_MS, id });
    }
  }
  const result = check({ CAISO: withExpiries });
  t.deepEqual(result.first, []);
  t.is(result.requests, requests);
  t.true(withExpiries.records.length > 40_000);
  t.is((result.outcomes.completed ?? 0) + (result.outcomes.expired ?? 0) + result.inFlight, requests);
});
