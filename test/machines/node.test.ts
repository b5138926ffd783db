import test from 'ava';
import { createActor } from 'xstate';
import { nodeCapacity, nodeEventSchema, nodeMachine, type NodeContext } from '../../machines/node.js';
import { report } from '../helpers/fixtures.js';

function start(overrides: Parameters<typeof report>[0] = {}) {
  const actor = createActor(nodeMachine, {
    input: { nodeId: 'n1', report: report(overrides), atMs: 10_000, silenceTimeoutMs: 30_000, reservationsPerGpu: 2 },
  });
  actor.start();
  return actor;
}
const ctx = (actor: ReturnType<typeof start>): NodeContext => actor.getSnapshot().context;

test('first telemetry creates an online node whose silence deadline is 30 s after it was seen', (t) => {
  const actor = start();
  t.is(actor.getSnapshot().value, 'online');
  t.is(ctx(actor).lastSeenAtMs, 10_000);
  t.is(ctx(actor).silentAfterMs, 40_000);
  t.is(nodeCapacity(ctx(actor)), 8);
});

test('a node that announces draining starts in draining', (t) => {
  t.is(start({ draining: true }).getSnapshot().value, 'draining');
});

test('newer telemetry updates the twin and pushes the deadline', (t) => {
  const actor = start();
  actor.send({ type: 'telemetry', atMs: 20_000, report: report({ reportedAtMs: 2_000, gpuUtilization: 0.7, energySource: 'cogen' }) });
  t.is(ctx(actor).gpuUtilization, 0.7);
  t.is(ctx(actor).energySource, 'cogen');
  t.is(ctx(actor).silentAfterMs, 50_000);
});

test('duplicate and out-of-order telemetry is ignored (same snapshot)', (t) => {
  const actor = start();
  const before = actor.getSnapshot();
  actor.send({ type: 'telemetry', atMs: 20_000, report: report({ reportedAtMs: 1_000, gpuUtilization: 0.1 }) });
  actor.send({ type: 'telemetry', atMs: 21_000, report: report({ reportedAtMs: 500, gpuUtilization: 0.1 }) });
  t.is(actor.getSnapshot(), before);
});

test('a timeout before the deadline does nothing; at the deadline the node goes offline and drops its reservations', (t) => {
  const actor = start();
  actor.send({ type: 'reserve', atMs: 11_000, requestId: 'r1' });
  actor.send({ type: 'timeout', atMs: 39_999 });
  t.is(actor.getSnapshot().value, 'online');
  actor.send({ type: 'timeout', atMs: 40_000 });
  t.is(actor.getSnapshot().value, 'offline');
  t.deepEqual(ctx(actor).reservations, []);
});

test('telemetry after an outage brings the node back online', (t) => {
  const actor = start();
  actor.send({ type: 'timeout', atMs: 40_000 });
  actor.send({ type: 'telemetry', atMs: 90_000, report: report({ reportedAtMs: 9_000 }) });
  t.is(actor.getSnapshot().value, 'online');
  t.is(ctx(actor).silentAfterMs, 120_000);
});

test('reservations are bounded by capacity and never duplicated', (t) => {
  const actor = start({ gpuCount: 1 }); // capacity 2
  actor.send({ type: 'reserve', atMs: 11_000, requestId: 'r1' });
  actor.send({ type: 'reserve', atMs: 11_000, requestId: 'r1' });
  actor.send({ type: 'reserve', atMs: 11_000, requestId: 'r2' });
  actor.send({ type: 'reserve', atMs: 11_000, requestId: 'r3' });
  t.deepEqual(ctx(actor).reservations, ['r1', 'r2']);
  actor.send({ type: 'release', atMs: 12_000, requestId: 'r1' });
  actor.send({ type: 'release', atMs: 12_000, requestId: 'nope' });
  t.deepEqual(ctx(actor).reservations, ['r2']);
});

test('drain stops new reservations but keeps existing ones; resume reopens', (t) => {
  const actor = start();
  actor.send({ type: 'reserve', atMs: 11_000, requestId: 'r1' });
  actor.send({ type: 'drain', atMs: 12_000 });
  t.is(actor.getSnapshot().value, 'draining');
  actor.send({ type: 'reserve', atMs: 12_000, requestId: 'r2' });
  t.deepEqual(ctx(actor).reservations, ['r1']);
  actor.send({ type: 'release', atMs: 13_000, requestId: 'r1' });
  t.deepEqual(ctx(actor).reservations, []);
  actor.send({ type: 'resume', atMs: 14_000 });
  t.is(actor.getSnapshot().value, 'online');
});

test('a drained node that goes silent comes back draining', (t) => {
  const actor = start();
  actor.send({ type: 'drain', atMs: 12_000 });
  actor.send({ type: 'timeout', atMs: 40_000 });
  t.is(actor.getSnapshot().value, 'offline');
  actor.send({ type: 'telemetry', atMs: 50_000, report: report({ reportedAtMs: 5_000 }) });
  t.is(actor.getSnapshot().value, 'draining');
});

test('a node that drained itself returns to routing when its reports stop saying so; an operator drain holds until resume', (t) => {
  const actor = start({ draining: true });
  t.is(actor.getSnapshot().value, 'draining');
  actor.send({ type: 'telemetry', atMs: 20_000, report: report({ reportedAtMs: 2_000, draining: false }) });
  t.is(actor.getSnapshot().value, 'online');
  actor.send({ type: 'drain', atMs: 21_000 });
  actor.send({ type: 'telemetry', atMs: 30_000, report: report({ reportedAtMs: 3_000, draining: false }) });
  t.is(actor.getSnapshot().value, 'draining', 'operator drain outlives the node\'s own reports');
  actor.send({ type: 'telemetry', atMs: 31_000, report: report({ reportedAtMs: 3_100, draining: true }) });
  actor.send({ type: 'resume', atMs: 32_000 });
  t.is(actor.getSnapshot().value, 'draining', 'the node still says it drains');
  actor.send({ type: 'telemetry', atMs: 33_000, report: report({ reportedAtMs: 3_300, draining: false }) });
  t.is(actor.getSnapshot().value, 'online');
});

test('an offline node takes no reservation', (t) => {
  const actor = start();
  actor.send({ type: 'timeout', atMs: 40_000 });
  const before = actor.getSnapshot();
  actor.send({ type: 'reserve', atMs: 41_000, requestId: 'r1' });
  t.is(actor.getSnapshot(), before);
});

test('the event schema refuses wrong types, missing fields, unknown events and extra keys', (t) => {
  t.true(nodeEventSchema.safeParse({ type: 'timeout', atMs: 5 }).success);
  t.false(nodeEventSchema.safeParse({ type: 'timeout', atMs: '5' }).success);
  t.false(nodeEventSchema.safeParse({ type: 'timeout' }).success);
  t.false(nodeEventSchema.safeParse({ type: 'explode', atMs: 5 }).success);
  t.false(nodeEventSchema.safeParse({ type: 'timeout', atMs: 5, extra: 1 }).success);
  t.false(nodeEventSchema.safeParse({ type: 'telemetry', atMs: 5, report: { ...report(), energySource: 'nuclear' } }).success);
});
