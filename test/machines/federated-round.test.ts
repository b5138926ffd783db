import test, { type ExecutionContext } from 'ava';
import { createActor } from 'xstate';
import {
  federatedRoundContextSchema,
  federatedRoundEventSchema,
  federatedRoundInputSchema,
  federatedRoundMachine,
  type FederatedRoundEvent,
  type FederatedRoundFailureReason,
  type FederatedRoundInput,
} from '../../machines/federated-round.js';

const TIMEOUT_MS = 60_000;
const CONFIGURED_AT_MS = 1_000;
const ROUND1_DEADLINE_MS = CONFIGURED_AT_MS + TIMEOUT_MS;

// Deliberately unsorted: the machine must sort. Most tests wait for every
// participant ("all"); the quorum rule has its own tests below.
const baseInput: FederatedRoundInput = {
  jobId: 'fed-1',
  totalRounds: 2,
  participants: ['node-c', 'node-a', 'node-b'],
  minParticipants: 2,
  aggregateWhen: 'all',
  roundTimeoutMs: TIMEOUT_MS,
  createdAtMs: 0,
};

const partitionsFor = (ids: string[]) => ids.map((nodeId) => ({ nodeId, datasetShardUri: `s3://shards/${nodeId}` }));

const configure: FederatedRoundEvent = {
  type: 'configure',
  atMs: CONFIGURED_AT_MS,
  partitions: partitionsFor(['node-b', 'node-c', 'node-a']),
};

const update = (nodeId: string, round: number, atMs: number): FederatedRoundEvent => ({
  type: 'update.received',
  nodeId,
  round,
  atMs,
});

function start(input: Partial<FederatedRoundInput> = {}) {
  return createActor(federatedRoundMachine, { input: { ...baseInput, ...input } }).start();
}

function startWith(events: FederatedRoundEvent[], input: Partial<FederatedRoundInput> = {}) {
  const actor = start(input);
  for (const event of events) actor.send(event);
  return actor;
}

/** Context must stay plain JSON and match its own schema, or snapshots break. */
function assertSerialisable(t: ExecutionContext, context: unknown) {
  t.deepEqual(JSON.parse(JSON.stringify(context)), context);
  t.true(federatedRoundContextSchema.safeParse(context).success);
}

// Prefixes that walk the job to each non-final state.
const toTraining: FederatedRoundEvent[] = [configure];
const toAggregating: FederatedRoundEvent[] = [
  ...toTraining,
  update('node-a', 1, 2_000),
  update('node-b', 1, 3_000),
  update('node-c', 1, 4_000),
];
const toCheckpointing: FederatedRoundEvent[] = [...toAggregating, { type: 'aggregated', atMs: 5_000 }];
const toRound2: FederatedRoundEvent[] = [
  ...toCheckpointing,
  { type: 'checkpoint.published', atMs: 6_000, checkpointUri: 's3://ckpt/fed-1/1' },
];

// ---------------------------------------------------------------------------
// configuring

test('starts configuring with sorted participants and no round', (t) => {
  const { value, status, context } = start().getSnapshot();
  t.is(value, 'configuring');
  t.is(status, 'active');
  t.deepEqual(context.participants, ['node-a', 'node-b', 'node-c']);
  t.is(context.round, 0);
  t.is(context.roundDeadlineAtMs, null);
  t.deepEqual(context.answered, []);
  assertSerialisable(t, context);
});

test('configure -> training round 1 with a deadline and sorted partitions', (t) => {
  const { value, context } = startWith(toTraining).getSnapshot();
  t.is(value, 'training');
  t.is(context.round, 1);
  t.is(context.configuredAtMs, CONFIGURED_AT_MS);
  t.is(context.roundStartedAtMs, CONFIGURED_AT_MS);
  t.is(context.roundDeadlineAtMs, ROUND1_DEADLINE_MS);
  t.deepEqual(
    context.partitions.map((p) => p.nodeId),
    ['node-a', 'node-b', 'node-c'],
  );
  assertSerialisable(t, context);
});

const badPartitions: Array<[string, string[]]> = [
  ['a participant has no shard', ['node-a', 'node-b']],
  ['a shard for a stranger', ['node-a', 'node-b', 'node-c', 'node-x']],
  ['two shards for one node', ['node-a', 'node-b', 'node-c', 'node-c']],
];

for (const [name, ids] of badPartitions) {
  test(`configure fails when ${name}`, (t) => {
    const actor = startWith([{ type: 'configure', atMs: CONFIGURED_AT_MS, partitions: partitionsFor(ids) }]);
    const { value, status, context } = actor.getSnapshot();
    t.is(value, 'failed');
    t.is(status, 'done');
    t.is(context.failureReason, 'invalid-partitions');
    t.is(context.failedAtMs, CONFIGURED_AT_MS);
  });
}

test('configuring: a drop above quorum is recorded and its shard is tolerated but not kept', (t) => {
  const actor = startWith([{ type: 'participant.dropped', atMs: 500, nodeId: 'node-c' }, configure]);
  const { value, context } = actor.getSnapshot();
  t.is(value, 'training');
  t.deepEqual(context.participants, ['node-a', 'node-b']);
  t.deepEqual(context.dropped, ['node-c']);
  t.deepEqual(
    context.partitions.map((p) => p.nodeId),
    ['node-a', 'node-b'],
  );
});

test('configuring: a drop below quorum fails the job as quorum-lost', (t) => {
  const actor = startWith([
    { type: 'participant.dropped', atMs: 500, nodeId: 'node-c' },
    { type: 'participant.dropped', atMs: 600, nodeId: 'node-a' },
  ]);
  const { value, context } = actor.getSnapshot();
  t.is(value, 'failed');
  t.is(context.failureReason, 'quorum-lost');
  t.is(context.failedAtMs, 600);
  t.deepEqual(context.participants, ['node-b']);
  t.deepEqual(context.dropped, ['node-a', 'node-c']);
});

test('configuring: dropping an unknown or already dropped node is ignored', (t) => {
  const actor = startWith([
    { type: 'participant.dropped', atMs: 500, nodeId: 'node-x' },
    { type: 'participant.dropped', atMs: 500, nodeId: 'node-c' },
    { type: 'participant.dropped', atMs: 600, nodeId: 'node-c' },
  ]);
  t.is(actor.getSnapshot().value, 'configuring');
  t.deepEqual(actor.getSnapshot().context.dropped, ['node-c']);
});

test('configuring ignores updates and deadlines', (t) => {
  const actor = startWith([update('node-a', 1, 100), { type: 'deadline', atMs: 10 ** 9 }]);
  t.is(actor.getSnapshot().value, 'configuring');
  t.deepEqual(actor.getSnapshot().context.answered, []);
});

// ---------------------------------------------------------------------------
// training

test('updates are recorded as a sorted set; all answered -> aggregating with no stragglers', (t) => {
  const actor = startWith([...toTraining, update('node-c', 1, 2_000), update('node-a', 1, 2_500)]);
  t.is(actor.getSnapshot().value, 'training');
  t.deepEqual(actor.getSnapshot().context.answered, ['node-a', 'node-c']);
  actor.send(update('node-b', 1, 3_000));
  const { value, context } = actor.getSnapshot();
  t.is(value, 'aggregating');
  t.deepEqual(context.answered, ['node-a', 'node-b', 'node-c']);
  t.deepEqual(context.stragglers, []);
  t.is(context.roundClosedAtMs, 3_000);
  t.is(context.roundDeadlineAtMs, null);
  assertSerialisable(t, context);
});

const ignoredUpdates: Array<[string, FederatedRoundEvent[]]> = [
  ['from a non-participant', [update('node-x', 1, 2_000)]],
  ['for a past round', [update('node-a', 0, 2_000)]],
  ['for a future round', [update('node-a', 2, 2_000)]],
  ['duplicated', [update('node-a', 1, 2_000), update('node-a', 1, 2_100)]],
  ['from a dropped node', [{ type: 'participant.dropped', atMs: 1_500, nodeId: 'node-c' }, update('node-c', 1, 2_000)]],
];

for (const [name, events] of ignoredUpdates) {
  test(`an update ${name} is ignored`, (t) => {
    const actor = startWith([...toTraining, ...events]);
    t.is(actor.getSnapshot().value, 'training');
    const expected = name === 'duplicated' ? ['node-a'] : [];
    t.deepEqual(actor.getSnapshot().context.answered, expected);
  });
}

test('closes by all when every participant answered, and says so', (t) => {
  const { value, context } = startWith(toAggregating).getSnapshot();
  t.is(value, 'aggregating');
  t.is(context.roundClosedBy, 'all');
});

test('aggregateWhen quorum: the round closes as soon as minParticipants answered; the rest are stragglers; a late update is not counted', (t) => {
  const actor = startWith([...toTraining, update('node-c', 1, 2_000)], { aggregateWhen: 'quorum' });
  t.is(actor.getSnapshot().value, 'training', 'one answer is below the quorum of two');
  actor.send(update('node-a', 1, 2_500));
  const closed = actor.getSnapshot();
  t.is(closed.value, 'aggregating');
  t.is(closed.context.roundClosedBy, 'quorum');
  t.is(closed.context.roundClosedAtMs, 2_500);
  t.deepEqual(closed.context.answered, ['node-a', 'node-c']);
  t.deepEqual(closed.context.stragglers, ['node-b']);
  t.is(closed.context.roundDeadlineAtMs, null);
  assertSerialisable(t, closed.context);
  // node-b answers after the close: the round is unchanged.
  actor.send(update('node-b', 1, 2_600));
  t.is(actor.getSnapshot(), closed);
  // And in round 2 the quorum rule applies again, from a fresh answered set.
  actor.send({ type: 'aggregated', atMs: 3_000 });
  actor.send({ type: 'checkpoint.published', atMs: 3_100, checkpointUri: 's3://ckpt/fed-1/1' });
  t.is(actor.getSnapshot().context.roundClosedBy, null);
  actor.send(update('node-b', 2, 3_200));
  actor.send(update('node-c', 2, 3_300));
  t.is(actor.getSnapshot().value, 'aggregating');
  t.deepEqual(actor.getSnapshot().context.stragglers, ['node-a']);
});

test('aggregateWhen all: quorum answered is not enough before the deadline; the deadline closes it with the stragglers named', (t) => {
  const actor = startWith([...toTraining, update('node-c', 1, 2_000), update('node-a', 1, 2_500)], { aggregateWhen: 'all' });
  t.is(actor.getSnapshot().value, 'training');
  actor.send({ type: 'deadline', atMs: ROUND1_DEADLINE_MS });
  const { value, context } = actor.getSnapshot();
  t.is(value, 'aggregating');
  t.is(context.roundClosedBy, 'deadline');
  t.deepEqual(context.stragglers, ['node-b']);
});

test('aggregateWhen defaults to quorum, the issue\'s rule', (t) => {
  const { aggregateWhen: _omit, ...input } = baseInput;
  const actor = createActor(federatedRoundMachine, { input }).start();
  t.is(actor.getSnapshot().context.aggregateWhen, 'quorum');
  for (const event of [...toTraining, update('node-a', 1, 2_000), update('node-b', 1, 2_000)]) actor.send(event);
  t.is(actor.getSnapshot().value, 'aggregating');
});

test('aggregateWhen quorum: everyone answering at once closes by all; a drop that leaves the answers at quorum closes by quorum', (t) => {
  const everyone = startWith([...toTraining, update('node-a', 1, 2_000)], { aggregateWhen: 'quorum', minParticipants: 3 });
  everyone.send(update('node-b', 1, 2_100));
  t.is(everyone.getSnapshot().value, 'training');
  everyone.send(update('node-c', 1, 2_200));
  t.is(everyone.getSnapshot().context.roundClosedBy, 'all');

  const five = ['n1', 'n2', 'n3', 'n4', 'n5'];
  const actor = startWith(
    [{ type: 'configure', atMs: CONFIGURED_AT_MS, partitions: partitionsFor(five) }, update('n1', 1, 2_000), update('n2', 1, 2_000)],
    { participants: five, minParticipants: 3, aggregateWhen: 'quorum' },
  );
  actor.send({ type: 'participant.dropped', atMs: 2_100, nodeId: 'n5' });
  t.is(actor.getSnapshot().value, 'training');
  actor.send(update('n3', 1, 2_200));
  t.is(actor.getSnapshot().value, 'aggregating');
  t.is(actor.getSnapshot().context.roundClosedBy, 'quorum');
  t.deepEqual(actor.getSnapshot().context.stragglers, ['n4']);
});

test('a deadline before roundDeadlineAtMs is ignored', (t) => {
  const actor = startWith([...toTraining, update('node-a', 1, 2_000), update('node-b', 1, 2_000)]);
  actor.send({ type: 'deadline', atMs: ROUND1_DEADLINE_MS - 1 });
  t.is(actor.getSnapshot().value, 'training');
  t.is(actor.getSnapshot().context.roundDeadlineAtMs, ROUND1_DEADLINE_MS);
});

test('deadline with quorum -> aggregating, non-answering participants recorded as stragglers', (t) => {
  const actor = startWith([
    ...toTraining,
    update('node-a', 1, 2_000),
    update('node-b', 1, 2_000),
    { type: 'deadline', atMs: ROUND1_DEADLINE_MS },
  ]);
  const { value, context } = actor.getSnapshot();
  t.is(value, 'aggregating');
  t.deepEqual(context.stragglers, ['node-c']);
  t.deepEqual(context.answered, ['node-a', 'node-b']);
  t.is(context.roundClosedAtMs, ROUND1_DEADLINE_MS);
  t.is(context.roundDeadlineAtMs, null);
  assertSerialisable(t, context);
});

test('deadline without quorum -> failed as quorum-not-reached', (t) => {
  const actor = startWith([...toTraining, update('node-a', 1, 2_000), { type: 'deadline', atMs: ROUND1_DEADLINE_MS + 5 }]);
  const { value, status, context } = actor.getSnapshot();
  t.is(value, 'failed');
  t.is(status, 'done');
  t.is(context.failureReason, 'quorum-not-reached');
  t.is(context.failedAtMs, ROUND1_DEADLINE_MS + 5);
  t.is(context.roundDeadlineAtMs, null);
  assertSerialisable(t, context);
});

test('training: a drop that leaves quorum intact is recorded', (t) => {
  const actor = startWith([...toTraining, { type: 'participant.dropped', atMs: 1_500, nodeId: 'node-b' }]);
  const { value, context } = actor.getSnapshot();
  t.is(value, 'training');
  t.deepEqual(context.participants, ['node-a', 'node-c']);
  t.deepEqual(context.dropped, ['node-b']);
});

test('training: a drop below minParticipants -> failed as quorum-lost', (t) => {
  const actor = startWith([
    ...toTraining,
    { type: 'participant.dropped', atMs: 1_500, nodeId: 'node-b' },
    { type: 'participant.dropped', atMs: 1_600, nodeId: 'node-a' },
  ]);
  const { value, context } = actor.getSnapshot();
  t.is(value, 'failed');
  t.is(context.failureReason, 'quorum-lost');
  t.is(context.failedAtMs, 1_600);
  t.is(context.roundDeadlineAtMs, null);
});

test('training: dropping the last missing participant closes the round', (t) => {
  const actor = startWith([
    ...toTraining,
    update('node-a', 1, 2_000),
    update('node-b', 1, 2_000),
    { type: 'participant.dropped', atMs: 2_500, nodeId: 'node-c' },
  ]);
  const { value, context } = actor.getSnapshot();
  t.is(value, 'aggregating');
  t.deepEqual(context.stragglers, []);
  t.is(context.roundClosedAtMs, 2_500);
});

test('training: a node that answered and then dropped keeps its answer', (t) => {
  const actor = startWith([
    ...toTraining,
    update('node-a', 1, 2_000),
    { type: 'participant.dropped', atMs: 2_500, nodeId: 'node-a' },
    update('node-b', 1, 3_000),
    { type: 'deadline', atMs: ROUND1_DEADLINE_MS },
  ]);
  const { value, context } = actor.getSnapshot();
  t.is(value, 'aggregating');
  t.deepEqual(context.answered, ['node-a', 'node-b']);
  t.deepEqual(context.stragglers, ['node-c']);
});

test('training: dropping an unknown node is ignored', (t) => {
  const actor = startWith([...toTraining, { type: 'participant.dropped', atMs: 1_500, nodeId: 'node-x' }]);
  t.is(actor.getSnapshot().value, 'training');
  t.deepEqual(actor.getSnapshot().context.dropped, []);
});

// ---------------------------------------------------------------------------
// aggregating, checkpointing, next round, done

test('aggregating -> checkpointing on aggregated', (t) => {
  const { value, context } = startWith(toCheckpointing).getSnapshot();
  t.is(value, 'checkpointing');
  t.is(context.aggregatedAtMs, 5_000);
});

test('checkpoint.published before the last round -> training round+1 with a fresh deadline', (t) => {
  const { value, context } = startWith(toRound2).getSnapshot();
  t.is(value, 'training');
  t.is(context.round, 2);
  t.is(context.roundStartedAtMs, 6_000);
  t.is(context.roundDeadlineAtMs, 6_000 + TIMEOUT_MS);
  t.deepEqual(context.answered, []);
  t.deepEqual(context.stragglers, []);
  t.is(context.lastCheckpointUri, 's3://ckpt/fed-1/1');
  t.is(context.roundsCompleted, 1);
  assertSerialisable(t, context);
});

test('round 2: last round updates and the old deadline are ignored', (t) => {
  const actor = startWith([...toRound2, update('node-a', 1, 6_500), { type: 'deadline', atMs: ROUND1_DEADLINE_MS }]);
  t.is(actor.getSnapshot().value, 'training');
  t.deepEqual(actor.getSnapshot().context.answered, []);
  actor.send(update('node-a', 2, 7_000));
  t.deepEqual(actor.getSnapshot().context.answered, ['node-a']);
});

test('full run: after totalRounds the job is done', (t) => {
  const actor = startWith([
    ...toRound2,
    update('node-b', 2, 7_000),
    update('node-c', 2, 7_000),
    { type: 'deadline', atMs: 6_000 + TIMEOUT_MS },
  ]);
  t.is(actor.getSnapshot().value, 'aggregating');
  t.deepEqual(actor.getSnapshot().context.stragglers, ['node-a']);
  actor.send({ type: 'aggregated', atMs: 70_000 });
  actor.send({ type: 'checkpoint.published', atMs: 71_000, checkpointUri: 's3://ckpt/fed-1/2' });
  const { value, status, context } = actor.getSnapshot();
  t.is(value, 'done');
  t.is(status, 'done');
  t.is(context.round, 2);
  t.is(context.roundsCompleted, 2);
  t.is(context.lastCheckpointUri, 's3://ckpt/fed-1/2');
  t.is(context.completedAtMs, 71_000);
  t.is(context.failureReason, null);
  assertSerialisable(t, context);
});

test('a single-round job is done after its first checkpoint', (t) => {
  const actor = startWith(toRound2, { totalRounds: 1 });
  t.is(actor.getSnapshot().value, 'done');
  t.is(actor.getSnapshot().context.roundsCompleted, 1);
});

test('drops during aggregating are recorded, and quorum is checked before the next round', (t) => {
  const actor = startWith([
    ...toAggregating,
    { type: 'participant.dropped', atMs: 4_500, nodeId: 'node-a' },
    { type: 'participant.dropped', atMs: 4_600, nodeId: 'node-b' },
  ]);
  t.is(actor.getSnapshot().value, 'aggregating');
  t.deepEqual(actor.getSnapshot().context.participants, ['node-c']);
  actor.send({ type: 'aggregated', atMs: 5_000 });
  actor.send({ type: 'checkpoint.published', atMs: 6_000, checkpointUri: 's3://ckpt/fed-1/1' });
  const { value, context } = actor.getSnapshot();
  t.is(value, 'failed');
  t.is(context.failureReason, 'quorum-lost');
  t.is(context.lastCheckpointUri, 's3://ckpt/fed-1/1', 'the checkpoint that did publish is kept');
  t.is(context.roundsCompleted, 1);
});

test('drops during checkpointing of the last round do not stop it finishing', (t) => {
  const actor = startWith(
    [
      ...toCheckpointing,
      { type: 'participant.dropped', atMs: 5_500, nodeId: 'node-a' },
      { type: 'participant.dropped', atMs: 5_600, nodeId: 'node-b' },
      { type: 'checkpoint.published', atMs: 6_000, checkpointUri: 's3://ckpt/fed-1/1' },
    ],
    { totalRounds: 1 },
  );
  t.is(actor.getSnapshot().value, 'done');
  t.deepEqual(actor.getSnapshot().context.dropped, ['node-a', 'node-b']);
});

test('aggregating and checkpointing ignore updates and deadlines', (t) => {
  const agg = startWith([...toAggregating, update('node-a', 1, 4_500), { type: 'deadline', atMs: 10 ** 9 }]);
  t.is(agg.getSnapshot().value, 'aggregating');
  const ckpt = startWith([...toCheckpointing, update('node-a', 2, 5_500), { type: 'deadline', atMs: 10 ** 9 }]);
  t.is(ckpt.getSnapshot().value, 'checkpointing');
  t.deepEqual(ckpt.getSnapshot().context.answered, ['node-a', 'node-b', 'node-c']);
});

// ---------------------------------------------------------------------------
// failure events

const failureCases: Array<{ name: string; prefix: FederatedRoundEvent[]; event: FederatedRoundEvent; reason: FederatedRoundFailureReason }> = [
  { name: 'aggregating + aggregation.failed', prefix: toAggregating, event: { type: 'aggregation.failed', atMs: 4_800, reason: 'NaN gradients' }, reason: 'aggregation-failed' },
  { name: 'checkpointing + checkpoint.failed', prefix: toCheckpointing, event: { type: 'checkpoint.failed', atMs: 5_800, reason: 'bucket unreachable' }, reason: 'checkpoint-failed' },
];

for (const c of failureCases) {
  test(`failure path: ${c.name} -> failed`, (t) => {
    const { value, status, context } = startWith([...c.prefix, c.event]).getSnapshot();
    t.is(value, 'failed');
    t.is(status, 'done');
    t.is(context.failureReason, c.reason);
    t.is(context.failureDetail, 'reason' in c.event ? c.event.reason ?? null : null);
    t.is(context.failedAtMs, c.event.atMs);
    assertSerialisable(t, context);
  });
}

test('failure events meant for other states are ignored', (t) => {
  t.is(startWith([...toTraining, { type: 'aggregation.failed', atMs: 2_000, reason: 'x' }]).getSnapshot().value, 'training');
  t.is(startWith([...toTraining, { type: 'checkpoint.failed', atMs: 2_000, reason: 'x' }]).getSnapshot().value, 'training');
  t.is(startWith([...toAggregating, { type: 'checkpoint.failed', atMs: 4_500, reason: 'x' }]).getSnapshot().value, 'aggregating');
  t.is(startWith([...toCheckpointing, { type: 'aggregation.failed', atMs: 5_500, reason: 'x' }]).getSnapshot().value, 'checkpointing');
  t.is(startWith([{ type: 'aggregated', atMs: 10 }]).getSnapshot().value, 'configuring');
  t.is(startWith([...toTraining, { type: 'checkpoint.published', atMs: 10, checkpointUri: 's3://x' }]).getSnapshot().value, 'training');
  t.is(startWith([...toTraining, configure]).getSnapshot().context.round, 1);
});

// ---------------------------------------------------------------------------
// cancel

const cancelPrefixes: Array<['configuring' | 'training' | 'aggregating' | 'checkpointing', FederatedRoundEvent[]]> = [
  ['configuring', []],
  ['training', toTraining],
  ['aggregating', toAggregating],
  ['checkpointing', toCheckpointing],
];

for (const [state, prefix] of cancelPrefixes) {
  test(`cancel from ${state} -> cancelled`, (t) => {
    const actor = startWith(prefix);
    t.is(actor.getSnapshot().value, state);
    actor.send({ type: 'cancel', atMs: 9_999, reason: 'operator request' });
    const { value, status, context } = actor.getSnapshot();
    t.is(value, 'cancelled');
    t.is(status, 'done');
    t.is(context.cancelledAtMs, 9_999);
    t.is(context.cancelReason, 'operator request');
    t.is(context.roundDeadlineAtMs, null);
    assertSerialisable(t, context);
  });
}

test('cancel without a reason records null', (t) => {
  const actor = startWith([{ type: 'cancel', atMs: 5 }]);
  t.is(actor.getSnapshot().value, 'cancelled');
  t.is(actor.getSnapshot().context.cancelReason, null);
});

test('final states ignore further events', (t) => {
  const finals: FederatedRoundEvent[][] = [
    [...toRound2.slice(0, -1), { type: 'checkpoint.published', atMs: 6_000, checkpointUri: 's3://x' }],
    [...toAggregating, { type: 'aggregation.failed', atMs: 4_800, reason: 'x' }],
    [{ type: 'cancel', atMs: 5 }],
  ];
  for (const events of finals) {
    const actor = startWith(events, { totalRounds: 1 });
    const before = actor.getSnapshot();
    t.is(before.status, 'done');
    actor.send({ type: 'cancel', atMs: 100_000 });
    actor.send(configure);
    t.is(actor.getSnapshot().value, before.value);
    t.deepEqual(actor.getSnapshot().context, before.context);
  }
});

// ---------------------------------------------------------------------------
// replay and persistence

test('same inputs give the same persisted snapshot, regardless of participant order in input', (t) => {
  const events: FederatedRoundEvent[] = [...toTraining, update('node-c', 1, 2_000), update('node-a', 1, 2_100)];
  const a = startWith(events).getPersistedSnapshot();
  const b = startWith(events, { participants: ['node-b', 'node-c', 'node-a'] }).getPersistedSnapshot();
  t.deepEqual(a, b);
});

test('the round deadline survives a persisted snapshot', (t) => {
  const actor = startWith([...toTraining, update('node-a', 1, 2_000), update('node-b', 1, 2_000)]);
  const persisted = JSON.parse(JSON.stringify(actor.getPersistedSnapshot())) as ReturnType<typeof actor.getPersistedSnapshot>;
  actor.stop();
  const restored = createActor(federatedRoundMachine, { snapshot: persisted, input: baseInput }).start();
  t.is(restored.getSnapshot().value, 'training');
  restored.send({ type: 'deadline', atMs: ROUND1_DEADLINE_MS });
  t.is(restored.getSnapshot().value, 'aggregating');
  t.deepEqual(restored.getSnapshot().context.stragglers, ['node-c']);
});

// ---------------------------------------------------------------------------
// schemas

test('input schema accepts a valid job and rejects bad ones', (t) => {
  t.true(federatedRoundInputSchema.safeParse(baseInput).success);
  const { jobId: _omit, ...missingJobId } = baseInput;
  const bad: unknown[] = [
    missingJobId,
    { ...baseInput, totalRounds: 0 },
    { ...baseInput, totalRounds: 1.5 },
    { ...baseInput, totalRounds: '2' },
    { ...baseInput, participants: [] },
    { ...baseInput, participants: 'node-a' },
    { ...baseInput, participants: ['node-a', 'node-a', 'node-b'] },
    { ...baseInput, participants: ['node-a', ''] },
    { ...baseInput, minParticipants: 0 },
    { ...baseInput, minParticipants: 4 },
    { ...baseInput, roundTimeoutMs: 0 },
    { ...baseInput, createdAtMs: -1 },
    { ...baseInput, aggregateWhen: 'most' },
    { ...baseInput, extra: true },
  ];
  for (const value of bad) t.false(federatedRoundInputSchema.safeParse(value).success, JSON.stringify(value));
});

test('event schema accepts every event the machine handles', (t) => {
  const good: FederatedRoundEvent[] = [
    configure,
    update('node-a', 1, 0),
    { type: 'participant.dropped', atMs: 1, nodeId: 'node-a' },
    { type: 'deadline', atMs: 1 },
    { type: 'aggregated', atMs: 1 },
    { type: 'aggregation.failed', atMs: 1, reason: 'x' },
    { type: 'checkpoint.published', atMs: 1, checkpointUri: 's3://x' },
    { type: 'checkpoint.failed', atMs: 1, reason: 'x' },
    { type: 'cancel', atMs: 1 },
    { type: 'cancel', atMs: 1, reason: 'x' },
  ];
  for (const event of good) t.deepEqual(federatedRoundEventSchema.parse(event), event);
});

test('event schema rejects wrong types, missing fields, unknown types and extra keys', (t) => {
  const bad: unknown[] = [
    // wrong types
    { type: 'update.received', atMs: 1, nodeId: 'node-a', round: '1' },
    { type: 'update.received', atMs: 1, nodeId: 'node-a', round: 0 },
    { type: 'update.received', atMs: 1, nodeId: 'node-a', round: 1.5 },
    { type: 'update.received', atMs: 1, nodeId: 7, round: 1 },
    { type: 'update.received', atMs: -1, nodeId: 'node-a', round: 1 },
    { type: 'deadline', atMs: '1' },
    { type: 'deadline', atMs: 0.5 },
    { type: 'configure', atMs: 1, partitions: 'all' },
    { type: 'configure', atMs: 1, partitions: [] },
    { type: 'configure', atMs: 1, partitions: [{ nodeId: 'node-a' }] },
    { type: 'checkpoint.published', atMs: 1, checkpointUri: '' },
    // missing fields
    { type: 'update.received', atMs: 1, nodeId: 'node-a' },
    { type: 'update.received', nodeId: 'node-a', round: 1 },
    { type: 'participant.dropped', atMs: 1 },
    { type: 'checkpoint.published', atMs: 1 },
    { type: 'aggregation.failed', atMs: 1 },
    { type: 'configure', atMs: 1 },
    // unknown type
    { type: 'update.sent', atMs: 1, nodeId: 'node-a', round: 1 },
    { atMs: 1 },
    // extra keys
    { type: 'update.received', atMs: 1, nodeId: 'node-a', round: 1, gradient: [1, 2] },
    { type: 'aggregated', atMs: 1, extra: true },
    { type: 'configure', atMs: 1, partitions: [{ nodeId: 'node-a', datasetShardUri: 's3://x', size: 1 }] },
    // not an object
    null,
    42,
  ];
  for (const value of bad) t.false(federatedRoundEventSchema.safeParse(value).success, JSON.stringify(value));
});
