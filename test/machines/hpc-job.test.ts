import test from 'ava';
import { createActor } from 'xstate';
import {
  DEFAULT_TRANSFER_STALL_TIMEOUT_MS,
  classifyTrainingJob,
  hpcJobContextSchema,
  hpcJobEventSchema,
  hpcJobInputSchema,
  hpcJobMachine,
  type HpcJobEvent,
  type HpcJobFailureReason,
  type HpcJobInput,
} from '../../machines/hpc-job.js';

const SUBMITTED_AT_MS = 1_000;
const STALL_MS = DEFAULT_TRANSFER_STALL_TIMEOUT_MS;

const baseInput: HpcJobInput = {
  jobId: 'job-1',
  datasetUri: 'globus://arc-edge/datasets/job-1',
  datasetSizeGb: 250,
  estimatedFlops: 5e18,
  checkpointUri: 'globus://olcf/checkpoints/job-1',
  urgency: 'normal',
  submittedAtMs: SUBMITTED_AT_MS,
};

function start(input: Partial<HpcJobInput> = {}) {
  return createActor(hpcJobMachine, { input: { ...baseInput, ...input } }).start();
}

function startWith(events: HpcJobEvent[], input: Partial<HpcJobInput> = {}) {
  const actor = start(input);
  for (const event of events) actor.send(event);
  return actor;
}

// Reusable prefixes that walk the job to each non-final state.
const toTransferring: HpcJobEvent[] = [{ type: 'transfer.started', atMs: 2_000, transferId: 'globus-task-9' }];
const toQueued: HpcJobEvent[] = [...toTransferring, { type: 'transfer.completed', atMs: 50_000 }];
const toRunning: HpcJobEvent[] = [...toQueued, { type: 'job.started', atMs: 90_000, schedulerJobId: 'frontier-77' }];

/** Context must stay plain JSON and match its own schema, or snapshots break. */
function assertSerialisable(t: import('ava').ExecutionContext, context: unknown) {
  t.deepEqual(JSON.parse(JSON.stringify(context)), context);
  t.true(hpcJobContextSchema.safeParse(context).success);
}

// ---------------------------------------------------------------------------
// classifier

test('classifier: FLOPS over 1e18 goes to HPC', (t) => {
  t.deepEqual(classifyTrainingJob({ estimatedFlops: 1.0000001e18, datasetSizeGb: 1, urgency: 'normal' }), {
    target: 'hpc',
    reason: 'estimatedFlops > 1e18',
  });
});

test('classifier: dataset over 100 GB goes to HPC', (t) => {
  t.deepEqual(classifyTrainingJob({ estimatedFlops: 1e12, datasetSizeGb: 100.001, urgency: 'background' }), {
    target: 'hpc',
    reason: 'datasetSizeGb > 100',
  });
});

test('classifier: critical urgency goes to HPC', (t) => {
  t.deepEqual(classifyTrainingJob({ estimatedFlops: 1e12, datasetSizeGb: 1, urgency: 'critical' }), {
    target: 'hpc',
    reason: 'urgency = critical',
  });
});

test('classifier: otherwise federated', (t) => {
  for (const urgency of ['normal', 'background'] as const) {
    t.deepEqual(classifyTrainingJob({ estimatedFlops: 1e12, datasetSizeGb: 1, urgency }), {
      target: 'federated',
      reason: 'no HPC rule matched',
    });
  }
});

test('classifier: exactly 1e18 FLOPS and exactly 100 GB are not over the line', (t) => {
  t.is(classifyTrainingJob({ estimatedFlops: 1e18, datasetSizeGb: 1, urgency: 'normal' }).target, 'federated');
  t.is(classifyTrainingJob({ estimatedFlops: 1, datasetSizeGb: 100, urgency: 'normal' }).target, 'federated');
  t.deepEqual(classifyTrainingJob({ estimatedFlops: 1e18, datasetSizeGb: 100, urgency: 'background' }), {
    target: 'federated',
    reason: 'no HPC rule matched',
  });
});

test('classifier: the first matching rule in seed order names the reason', (t) => {
  t.is(classifyTrainingJob({ estimatedFlops: 2e18, datasetSizeGb: 500, urgency: 'critical' }).reason, 'estimatedFlops > 1e18');
  t.is(classifyTrainingJob({ estimatedFlops: 1, datasetSizeGb: 500, urgency: 'critical' }).reason, 'datasetSizeGb > 100');
});

// ---------------------------------------------------------------------------
// happy path

test('starts pending with a deadline for the Data Mover to start the transfer', (t) => {
  const actor = start();
  const { value, context, status } = actor.getSnapshot();
  t.is(value, 'pending');
  t.is(status, 'active');
  t.is(context.progress, 0);
  t.is(context.bytesTransferred, 0);
  t.is(context.transferStallTimeoutMs, STALL_MS);
  t.is(context.transferDeadlineAtMs, SUBMITTED_AT_MS + STALL_MS);
  t.is(context.checkpointUri, baseInput.checkpointUri ?? null);
  t.is(context.failureReason, null);
  assertSerialisable(t, context);
});

test('missing optional input fields become null / the default stall timeout', (t) => {
  const { checkpointUri: _omit, ...rest } = baseInput;
  const actor = createActor(hpcJobMachine, { input: rest }).start();
  const { context } = actor.getSnapshot();
  t.is(context.checkpointUri, null);
  t.is(context.transferStallTimeoutMs, STALL_MS);
  assertSerialisable(t, context);
});

test('a configured stall timeout is used for every deadline', (t) => {
  const actor = start({ transferStallTimeoutMs: 5_000 });
  t.is(actor.getSnapshot().context.transferDeadlineAtMs, SUBMITTED_AT_MS + 5_000);
  actor.send({ type: 'transfer.started', atMs: 2_000 });
  t.is(actor.getSnapshot().context.transferDeadlineAtMs, 7_000);
  actor.send({ type: 'transfer.progress', atMs: 3_000, bytesTransferred: 10, progress: 0.1 });
  t.is(actor.getSnapshot().context.transferDeadlineAtMs, 8_000);
});

test('pending -> transferring on transfer.started', (t) => {
  const actor = startWith(toTransferring);
  const { value, context } = actor.getSnapshot();
  t.is(value, 'transferring');
  t.is(context.transferStartedAtMs, 2_000);
  t.is(context.transferId, 'globus-task-9');
  t.is(context.transferDeadlineAtMs, 2_000 + STALL_MS);
  assertSerialisable(t, context);
});

test('transfer.started without a transfer id records null', (t) => {
  const actor = startWith([{ type: 'transfer.started', atMs: 2_000 }]);
  t.is(actor.getSnapshot().context.transferId, null);
});

test('forward progress is recorded and pushes the stall deadline out', (t) => {
  const actor = startWith([
    ...toTransferring,
    { type: 'transfer.progress', atMs: 10_000, bytesTransferred: 1_000, progress: 0.25 },
  ]);
  const { value, context } = actor.getSnapshot();
  t.is(value, 'transferring');
  t.is(context.bytesTransferred, 1_000);
  t.is(context.progress, 0.25);
  t.is(context.lastProgressAtMs, 10_000);
  t.is(context.transferDeadlineAtMs, 10_000 + STALL_MS);
});

test('full path: pending -> transferring -> queued -> running -> completed', (t) => {
  const actor = startWith([
    ...toTransferring,
    { type: 'transfer.progress', atMs: 10_000, bytesTransferred: 1_000, progress: 0.5 },
    { type: 'transfer.completed', atMs: 50_000 },
  ]);
  let snap = actor.getSnapshot();
  t.is(snap.value, 'queued');
  t.is(snap.context.progress, 1);
  t.is(snap.context.transferCompletedAtMs, 50_000);
  t.is(snap.context.transferDeadlineAtMs, null, 'no stall deadline once the data is across');
  assertSerialisable(t, snap.context);

  actor.send({ type: 'job.started', atMs: 90_000, schedulerJobId: 'frontier-77' });
  snap = actor.getSnapshot();
  t.is(snap.value, 'running');
  t.is(snap.context.jobStartedAtMs, 90_000);
  t.is(snap.context.schedulerJobId, 'frontier-77');

  actor.send({ type: 'job.completed', atMs: 500_000, checkpointUri: 'globus://olcf/checkpoints/job-1/final' });
  snap = actor.getSnapshot();
  t.is(snap.value, 'completed');
  t.is(snap.status, 'done');
  t.is(snap.context.completedAtMs, 500_000);
  t.is(snap.context.checkpointUri, 'globus://olcf/checkpoints/job-1/final');
  t.is(snap.context.failureReason, null);
  assertSerialisable(t, snap.context);
});

test('job.started without a scheduler id records null', (t) => {
  const actor = startWith([...toQueued, { type: 'job.started', atMs: 90_000 }]);
  t.is(actor.getSnapshot().value, 'running');
  t.is(actor.getSnapshot().context.schedulerJobId, null);
});

test('job.completed without a checkpoint keeps the submitted checkpoint uri', (t) => {
  const actor = startWith([...toRunning, { type: 'job.completed', atMs: 100_000 }]);
  t.is(actor.getSnapshot().status, 'done');
  t.is(actor.getSnapshot().context.checkpointUri, baseInput.checkpointUri ?? null);
});

// ---------------------------------------------------------------------------
// guards: progress never goes backwards

test('stale or out-of-order progress is ignored', (t) => {
  const actor = startWith([
    ...toTransferring,
    { type: 'transfer.progress', atMs: 10_000, bytesTransferred: 5_000, progress: 0.5 },
  ]);
  const before = actor.getSnapshot().context;
  const stale: HpcJobEvent[] = [
    { type: 'transfer.progress', atMs: 11_000, bytesTransferred: 4_000, progress: 0.4 }, // fewer bytes
    { type: 'transfer.progress', atMs: 11_000, bytesTransferred: 5_000, progress: 0.5 }, // no new bytes
    { type: 'transfer.progress', atMs: 11_000, bytesTransferred: 6_000, progress: 0.3 }, // progress went down
    { type: 'transfer.progress', atMs: 9_000, bytesTransferred: 6_000, progress: 0.6 }, // older than the last report
  ];
  for (const event of stale) {
    actor.send(event);
    t.deepEqual(actor.getSnapshot().context, before, JSON.stringify(event));
    t.is(actor.getSnapshot().value, 'transferring');
  }
});

test('a report of zero bytes is not progress', (t) => {
  const actor = startWith([...toTransferring, { type: 'transfer.progress', atMs: 3_000, bytesTransferred: 0, progress: 0 }]);
  t.is(actor.getSnapshot().context.lastProgressAtMs, null);
  t.is(actor.getSnapshot().context.transferDeadlineAtMs, 2_000 + STALL_MS);
});

test('progress reports without new bytes do not keep a stalled transfer alive', (t) => {
  const actor = startWith([
    ...toTransferring,
    { type: 'transfer.progress', atMs: 10_000, bytesTransferred: 5_000, progress: 0.5 },
    { type: 'transfer.progress', atMs: 10_000 + STALL_MS - 1, bytesTransferred: 5_000, progress: 0.5 },
    { type: 'deadline', atMs: 10_000 + STALL_MS },
  ]);
  t.is(actor.getSnapshot().value, 'failed');
  t.is(actor.getSnapshot().context.failureReason, 'transfer-stalled');
});

test('progress is ignored outside transferring', (t) => {
  const pending = startWith([{ type: 'transfer.progress', atMs: 3_000, bytesTransferred: 10, progress: 0.1 }]);
  t.is(pending.getSnapshot().value, 'pending');
  t.is(pending.getSnapshot().context.progress, 0);

  const queued = startWith([...toQueued, { type: 'transfer.progress', atMs: 60_000, bytesTransferred: 10, progress: 0.1 }]);
  t.is(queued.getSnapshot().value, 'queued');
  t.is(queued.getSnapshot().context.progress, 1);
});

// ---------------------------------------------------------------------------
// deadlines

test('transferring: a deadline before transferDeadlineAtMs is ignored', (t) => {
  const actor = startWith([...toTransferring, { type: 'deadline', atMs: 2_000 + STALL_MS - 1 }]);
  t.is(actor.getSnapshot().value, 'transferring');
  t.is(actor.getSnapshot().context.failedAtMs, null);
});

test('transferring: a deadline at transferDeadlineAtMs fails the job as transfer-stalled', (t) => {
  const actor = startWith([...toTransferring, { type: 'deadline', atMs: 2_000 + STALL_MS }]);
  const { value, status, context } = actor.getSnapshot();
  t.is(value, 'failed');
  t.is(status, 'done');
  t.is(context.failureReason, 'transfer-stalled');
  t.is(context.failureDetail, null);
  t.is(context.failedAtMs, 2_000 + STALL_MS);
  t.is(context.transferDeadlineAtMs, null);
  assertSerialisable(t, context);
});

test('transferring: a deadline after transferDeadlineAtMs also fails it', (t) => {
  const actor = startWith([...toTransferring, { type: 'deadline', atMs: 2_000 + STALL_MS + 123 }]);
  t.is(actor.getSnapshot().value, 'failed');
  t.is(actor.getSnapshot().context.failureReason, 'transfer-stalled');
});

test('transferring: the deadline moved by progress supersedes the old one', (t) => {
  const actor = startWith([
    ...toTransferring,
    { type: 'transfer.progress', atMs: 100_000, bytesTransferred: 1, progress: 0.01 },
    { type: 'deadline', atMs: 2_000 + STALL_MS }, // the timer armed at transfer.started
  ]);
  t.is(actor.getSnapshot().value, 'transferring');
  actor.send({ type: 'deadline', atMs: 100_000 + STALL_MS });
  t.is(actor.getSnapshot().value, 'failed');
  t.is(actor.getSnapshot().context.failureReason, 'transfer-stalled');
});

test('pending: an early deadline is ignored, a due one fails as transfer-not-started', (t) => {
  const actor = startWith([{ type: 'deadline', atMs: SUBMITTED_AT_MS + STALL_MS - 1 }]);
  t.is(actor.getSnapshot().value, 'pending');
  actor.send({ type: 'deadline', atMs: SUBMITTED_AT_MS + STALL_MS });
  const { value, context } = actor.getSnapshot();
  t.is(value, 'failed');
  t.is(context.failureReason, 'transfer-not-started');
  t.is(context.failedAtMs, SUBMITTED_AT_MS + STALL_MS);
});

test('queued and running have no deadline: deadline events are ignored', (t) => {
  const queued = startWith([...toQueued, { type: 'deadline', atMs: 10 ** 12 }]);
  t.is(queued.getSnapshot().value, 'queued');
  const running = startWith([...toRunning, { type: 'deadline', atMs: 10 ** 12 }]);
  t.is(running.getSnapshot().value, 'running');
});

// ---------------------------------------------------------------------------
// failure paths from every non-final state

const failureCases: Array<{ name: string; prefix: HpcJobEvent[]; event: HpcJobEvent; reason: HpcJobFailureReason }> = [
  { name: 'pending + transfer.failed', prefix: [], event: { type: 'transfer.failed', atMs: 1_500, reason: 'endpoint offline' }, reason: 'transfer-failed' },
  { name: 'transferring + transfer.failed', prefix: toTransferring, event: { type: 'transfer.failed', atMs: 3_000, reason: 'checksum mismatch' }, reason: 'transfer-failed' },
  { name: 'queued + queue.rejected', prefix: toQueued, event: { type: 'queue.rejected', atMs: 60_000, reason: 'allocation exhausted' }, reason: 'queue-rejected' },
  { name: 'running + job.failed', prefix: toRunning, event: { type: 'job.failed', atMs: 95_000, reason: 'node failure' }, reason: 'job-failed' },
];

for (const c of failureCases) {
  test(`failure path: ${c.name} -> failed`, (t) => {
    const actor = startWith([...c.prefix, c.event]);
    const { value, status, context } = actor.getSnapshot();
    t.is(value, 'failed');
    t.is(status, 'done');
    t.is(context.failureReason, c.reason);
    t.is(context.failureDetail, 'reason' in c.event ? c.event.reason ?? null : null);
    t.is(context.failedAtMs, c.event.atMs);
    assertSerialisable(t, context);
  });
}

test('failure events meant for other states are ignored', (t) => {
  t.is(startWith([{ type: 'queue.rejected', atMs: 1_500, reason: 'x' }]).getSnapshot().value, 'pending');
  t.is(startWith([{ type: 'job.failed', atMs: 1_500, reason: 'x' }]).getSnapshot().value, 'pending');
  t.is(startWith([...toQueued, { type: 'transfer.failed', atMs: 60_000, reason: 'x' }]).getSnapshot().value, 'queued');
  t.is(startWith([...toRunning, { type: 'queue.rejected', atMs: 95_000, reason: 'x' }]).getSnapshot().value, 'running');
});

test('out-of-order lifecycle events are ignored', (t) => {
  t.is(startWith([{ type: 'transfer.completed', atMs: 1_500 }]).getSnapshot().value, 'pending');
  t.is(startWith([{ type: 'job.started', atMs: 1_500 }]).getSnapshot().value, 'pending');
  t.is(startWith([...toTransferring, { type: 'job.completed', atMs: 3_000 }]).getSnapshot().value, 'transferring');
  t.is(startWith([...toQueued, { type: 'job.completed', atMs: 60_000 }]).getSnapshot().value, 'queued');
  t.is(startWith([...toRunning, { type: 'transfer.started', atMs: 95_000 }]).getSnapshot().value, 'running');
});

// ---------------------------------------------------------------------------
// cancel

const cancelPrefixes: Array<['pending' | 'transferring' | 'queued' | 'running', HpcJobEvent[]]> = [
  ['pending', []],
  ['transferring', toTransferring],
  ['queued', toQueued],
  ['running', toRunning],
];

for (const [state, prefix] of cancelPrefixes) {
  test(`cancel from ${state} -> cancelled`, (t) => {
    const actor = startWith(prefix);
    t.is(actor.getSnapshot().value, state);
    actor.send({ type: 'cancel', atMs: 99_999, reason: 'operator request' });
    const { value, status, context } = actor.getSnapshot();
    t.is(value, 'cancelled');
    t.is(status, 'done');
    t.is(context.cancelledAtMs, 99_999);
    t.is(context.cancelReason, 'operator request');
    t.is(context.transferDeadlineAtMs, null);
    assertSerialisable(t, context);
  });
}

test('cancel without a reason records null', (t) => {
  const actor = startWith([{ type: 'cancel', atMs: 1_500 }]);
  t.is(actor.getSnapshot().value, 'cancelled');
  t.is(actor.getSnapshot().context.cancelReason, null);
});

test('final states ignore further events', (t) => {
  const finals: HpcJobEvent[][] = [
    [...toRunning, { type: 'job.completed', atMs: 100_000 }],
    [{ type: 'transfer.failed', atMs: 1_500, reason: 'x' }],
    [{ type: 'cancel', atMs: 1_500 }],
  ];
  for (const events of finals) {
    const actor = startWith(events);
    const before = actor.getSnapshot();
    actor.send({ type: 'cancel', atMs: 200_000 });
    actor.send({ type: 'transfer.started', atMs: 200_000 });
    t.is(actor.getSnapshot().value, before.value);
    t.deepEqual(actor.getSnapshot().context, before.context);
  }
});

// ---------------------------------------------------------------------------
// replay and persistence

test('same inputs give the same persisted snapshot', (t) => {
  const events: HpcJobEvent[] = [
    ...toTransferring,
    { type: 'transfer.progress', atMs: 10_000, bytesTransferred: 1_000, progress: 0.3 },
    { type: 'transfer.progress', atMs: 9_000, bytesTransferred: 900, progress: 0.2 },
  ];
  t.deepEqual(startWith(events).getPersistedSnapshot(), startWith(events).getPersistedSnapshot());
});

test('the stall deadline survives a persisted snapshot', (t) => {
  const actor = startWith([
    ...toTransferring,
    { type: 'transfer.progress', atMs: 10_000, bytesTransferred: 1_000, progress: 0.3 },
  ]);
  const persisted = JSON.parse(JSON.stringify(actor.getPersistedSnapshot())) as ReturnType<typeof actor.getPersistedSnapshot>;
  actor.stop();
  const restored = createActor(hpcJobMachine, { snapshot: persisted, input: baseInput }).start();
  t.is(restored.getSnapshot().value, 'transferring');
  restored.send({ type: 'deadline', atMs: 10_000 + STALL_MS });
  t.is(restored.getSnapshot().value, 'failed');
  t.is(restored.getSnapshot().context.failureReason, 'transfer-stalled');
});

// ---------------------------------------------------------------------------
// schemas

test('input schema accepts a valid job and rejects bad ones', (t) => {
  t.true(hpcJobInputSchema.safeParse(baseInput).success);
  t.true(hpcJobInputSchema.safeParse({ ...baseInput, transferStallTimeoutMs: 60_000 }).success);
  const { checkpointUri: _omit, ...noCheckpoint } = baseInput;
  t.true(hpcJobInputSchema.safeParse(noCheckpoint).success);

  const { jobId: _jobId, ...missingJobId } = baseInput;
  const bad: unknown[] = [
    missingJobId,
    { ...baseInput, jobId: '' },
    { ...baseInput, datasetSizeGb: '250' },
    { ...baseInput, datasetSizeGb: -1 },
    { ...baseInput, estimatedFlops: Number.NaN },
    { ...baseInput, urgency: 'urgent' },
    { ...baseInput, submittedAtMs: 1.5 },
    { ...baseInput, submittedAtMs: -1 },
    { ...baseInput, transferStallTimeoutMs: 0 },
    { ...baseInput, extra: true },
  ];
  for (const value of bad) t.false(hpcJobInputSchema.safeParse(value).success, JSON.stringify(value));
});

test('event schema accepts every event the machine handles', (t) => {
  const good: HpcJobEvent[] = [
    { type: 'transfer.started', atMs: 0 },
    { type: 'transfer.started', atMs: 1, transferId: 't-1' },
    { type: 'transfer.progress', atMs: 1, bytesTransferred: 0, progress: 0 },
    { type: 'transfer.progress', atMs: 1, bytesTransferred: 10, progress: 1 },
    { type: 'transfer.completed', atMs: 1 },
    { type: 'transfer.failed', atMs: 1, reason: 'x' },
    { type: 'queue.rejected', atMs: 1, reason: 'x' },
    { type: 'job.started', atMs: 1 },
    { type: 'job.started', atMs: 1, schedulerJobId: 's-1' },
    { type: 'job.completed', atMs: 1 },
    { type: 'job.completed', atMs: 1, checkpointUri: 'globus://x' },
    { type: 'job.failed', atMs: 1, reason: 'x' },
    { type: 'deadline', atMs: 1 },
    { type: 'cancel', atMs: 1 },
    { type: 'cancel', atMs: 1, reason: 'x' },
  ];
  for (const event of good) t.deepEqual(hpcJobEventSchema.parse(event), event);
});

test('event schema rejects wrong types, missing fields, unknown types and extra keys', (t) => {
  const bad: unknown[] = [
    // wrong types
    { type: 'transfer.progress', atMs: '1', bytesTransferred: 1, progress: 0.5 },
    { type: 'transfer.progress', atMs: 1, bytesTransferred: '1', progress: 0.5 },
    { type: 'transfer.progress', atMs: 1, bytesTransferred: 1.5, progress: 0.5 },
    { type: 'transfer.progress', atMs: 1, bytesTransferred: 1, progress: 1.5 },
    { type: 'transfer.progress', atMs: 1, bytesTransferred: 1, progress: -0.1 },
    { type: 'deadline', atMs: -5 },
    { type: 'deadline', atMs: 1.25 },
    { type: 'transfer.failed', atMs: 1, reason: 42 },
    { type: 'transfer.failed', atMs: 1, reason: '' },
    { type: 42, atMs: 1 },
    // missing fields
    { type: 'transfer.progress', atMs: 1, progress: 0.5 },
    { type: 'transfer.progress', atMs: 1, bytesTransferred: 1 },
    { type: 'transfer.started' },
    { type: 'job.failed', atMs: 1 },
    { type: 'queue.rejected', atMs: 1 },
    { atMs: 1 },
    // unknown type
    { type: 'transfer.paused', atMs: 1 },
    { type: 'TRANSFER.STARTED', atMs: 1 },
    // extra keys
    { type: 'deadline', atMs: 1, extra: 1 },
    { type: 'transfer.completed', atMs: 1, bytesTransferred: 1 },
    { type: 'cancel', atMs: 1, reason: 'x', by: 'me' },
    // not an object
    null,
    'deadline',
  ];
  for (const value of bad) t.false(hpcJobEventSchema.safeParse(value).success, JSON.stringify(value));
});
