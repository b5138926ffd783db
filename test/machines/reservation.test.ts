import test from 'ava';
import { createActor } from 'xstate';
import { reservationEventSchema, reservationMachine, type ReservationContext } from '../../machines/reservation.js';

function start(maxAttempts = 3) {
  const actor = createActor(reservationMachine, {
    input: {
      requestId: 'r1',
      modelId: 'llama-3-70b',
      contextWindow: 4096,
      priority: 'normal',
      requesterGeozone: 'CAISO',
      triedGeozones: [],
      receivedAtMs: 1_000,
      reservationTtlMs: 30_000,
      maxAttempts,
    },
  });
  actor.start();
  return actor;
}
const ctx = (actor: ReturnType<typeof start>): ReservationContext => actor.getSnapshot().context;
const reserve = (actor: ReturnType<typeof start>, nodeId: string, atMs: number) => {
  actor.send({ type: 'route.reserved', atMs, nodeId, candidates: 3, reason: 'best' });
  actor.send({ type: 'dispatch', atMs });
};

test('route.reserved with dispatch goes straight to dispatched, as reserve then dispatch does', (t) => {
  const merged = start();
  merged.send({ type: 'route.reserved', atMs: 5_000, nodeId: 'n1', candidates: 3, reason: 'best', dispatch: true });
  const twoSteps = start();
  reserve(twoSteps, 'n1', 5_000);
  t.is(merged.getSnapshot().value, 'dispatched');
  t.deepEqual(ctx(merged), ctx(twoSteps));
});

test('reserved expires exactly 30 s after the reservation was made', (t) => {
  const actor = start();
  reserve(actor, 'n1', 5_000);
  t.is(actor.getSnapshot().value, 'dispatched');
  t.is(ctx(actor).expiresAtMs, 35_000);
  actor.send({ type: 'expire', atMs: 34_999 });
  t.is(actor.getSnapshot().value, 'dispatched');
  actor.send({ type: 'expire', atMs: 35_000 });
  t.is(actor.getSnapshot().value, 'expired');
  t.is(actor.getSnapshot().status, 'done');
  t.is(ctx(actor).endedAtMs, 35_000);
});

test('a completed result from the holder completes it; from another node it is ignored', (t) => {
  const actor = start();
  reserve(actor, 'n1', 5_000);
  const before = actor.getSnapshot();
  actor.send({ type: 'result', atMs: 6_000, nodeId: 'n2', status: 'completed', latencyMs: 10 });
  t.is(actor.getSnapshot(), before);
  actor.send({ type: 'result', atMs: 6_000, nodeId: 'n1', status: 'completed', latencyMs: 900 });
  t.is(actor.getSnapshot().value, 'completed');
  t.is(ctx(actor).latencyMs, 900);
  t.is(ctx(actor).expiresAtMs, null);
});

test('a failed result fails it', (t) => {
  const actor = start();
  reserve(actor, 'n1', 5_000);
  actor.send({ type: 'result', atMs: 6_000, nodeId: 'n1', status: 'failed', latencyMs: 5 });
  t.is(actor.getSnapshot().value, 'failed');
});

test('no candidate: rejected; forwarded hands it to another geozone', (t) => {
  const a = start();
  a.send({ type: 'route.rejected', atMs: 1_000, candidates: 0, reason: 'none' });
  t.is(a.getSnapshot().value, 'rejected');
  const b = start();
  b.send({ type: 'route.forwarded', atMs: 1_000, toGeozone: 'ERCOT', candidates: 0, reason: 'none here' });
  t.is(b.getSnapshot().value, 'forwarding');
  t.is(b.getSnapshot().context.forwardedTo, 'ERCOT');
  b.send({ type: 'cancel', atMs: 1_100 });
  t.is(b.getSnapshot().value, 'forwarding', 'the other shard owns it now');
  b.send({ type: 'forward.accepted', atMs: 1_200 });
  t.is(b.getSnapshot().value, 'forwarded');
  t.is(b.getSnapshot().status, 'done');
});

test('the holder dying sends it back to routing with a fresh expiry on the next node', (t) => {
  const actor = start();
  reserve(actor, 'n1', 5_000);
  actor.send({ type: 'node.lost', atMs: 20_000, nodeId: 'n2' });
  t.is(actor.getSnapshot().value, 'dispatched');
  actor.send({ type: 'node.lost', atMs: 20_000, nodeId: 'n1' });
  t.is(actor.getSnapshot().value, 'requested');
  t.deepEqual(ctx(actor).lostNodes, ['n1']);
  t.is(ctx(actor).expiresAtMs, null);
  reserve(actor, 'n3', 20_000);
  t.is(ctx(actor).expiresAtMs, 50_000);
  t.is(ctx(actor).attempts, 2);
});

test('re-routing is bounded: after maxAttempts node losses it fails', (t) => {
  const actor = start(2);
  reserve(actor, 'n1', 5_000);
  actor.send({ type: 'node.lost', atMs: 6_000, nodeId: 'n1' });
  reserve(actor, 'n2', 6_000);
  actor.send({ type: 'node.lost', atMs: 7_000, nodeId: 'n2' });
  t.is(actor.getSnapshot().value, 'failed');
  t.is(ctx(actor).reason, 'node-lost-attempts-exhausted');
});

test('a re-route that finds no node fails (it was placed once), not rejected', (t) => {
  const actor = start();
  reserve(actor, 'n1', 5_000);
  actor.send({ type: 'node.lost', atMs: 6_000, nodeId: 'n1' });
  actor.send({ type: 'route.rejected', atMs: 6_000, candidates: 0, reason: 'no other node' });
  t.is(actor.getSnapshot().value, 'failed');
});

test('cancel releases it from any open state', (t) => {
  for (const setupSteps of [(_a: ReturnType<typeof start>) => undefined, (a: ReturnType<typeof start>) => reserve(a, 'n1', 2_000)]) {
    const actor = start();
    setupSteps(actor);
    actor.send({ type: 'cancel', atMs: 3_000 });
    t.is(actor.getSnapshot().value, 'released');
  }
});

test('a final reservation ignores everything after', (t) => {
  const actor = start();
  reserve(actor, 'n1', 5_000);
  actor.send({ type: 'expire', atMs: 35_000 });
  const ended = actor.getSnapshot();
  actor.send({ type: 'result', atMs: 36_000, nodeId: 'n1', status: 'completed', latencyMs: 1 });
  t.is(actor.getSnapshot(), ended);
});

test('the event schema refuses bad events', (t) => {
  t.true(reservationEventSchema.safeParse({ type: 'expire', atMs: 1 }).success);
  t.false(reservationEventSchema.safeParse({ type: 'result', atMs: 1, nodeId: 'n', status: 'maybe', latencyMs: 1 }).success);
  t.false(reservationEventSchema.safeParse({ type: 'result', atMs: 1, nodeId: 'n', status: 'completed' }).success);
  t.false(reservationEventSchema.safeParse({ type: 'route.reserved', atMs: -1, nodeId: 'n', candidates: 1, reason: '' }).success);
  t.false(reservationEventSchema.safeParse({ type: 'cancel', atMs: 1, why: 'x' }).success);
});
