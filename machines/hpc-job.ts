// HPC training job: the seed's "classified HPC" path (Pattern 3, step 3).
// A job waits for the Data Mover (pending), moves its dataset over Globus
// (transferring), sits in the Frontier/Lux queue once ingress at
// ornl.bridge.ingress accepted it (queued), runs, and ends completed, failed or
// cancelled.
//
// Pure: time arrives as `atMs` on events, deadlines are absolute logical ms in
// context, and the shard's timer wheel fires them as `deadline` events
// (XState `after` timers do not survive a persisted snapshot).
import { assertEvent, assign, setup } from 'xstate';
import { z } from 'zod';

/** Seed rule thresholds (Pattern 3, step 2). Strictly greater-than: exactly 1e18 FLOPS or 100 GB stays federated. */
export const HPC_FLOPS_THRESHOLD = 1e18;
export const HPC_DATASET_THRESHOLD_GB = 100;
/** A transfer that makes no forward progress for this long is failed as stalled. */
export const DEFAULT_TRANSFER_STALL_TIMEOUT_MS = 10 * 60 * 1000;
/** Upper bound on the stall timeout, so a typo cannot park a job forever. */
export const MAX_TRANSFER_STALL_TIMEOUT_MS = 7 * 24 * 60 * 60 * 1000;

const idSchema = z.string().min(1).max(256);
const uriSchema = z.string().min(1).max(2048);
const reasonSchema = z.string().min(1).max(1024);
/** Logical time in ms, stamped by the shard's Clock port; never read from the wall clock here. */
const atMsSchema = z.number().int().nonnegative();
const stallTimeoutMsSchema = z.number().int().positive().max(MAX_TRANSFER_STALL_TIMEOUT_MS);

export const urgencySchema = z.enum(['critical', 'normal', 'background']);
export type Urgency = z.infer<typeof urgencySchema>;

// ---------------------------------------------------------------------------
// Bridge classifier (Pattern 3, step 2)

export type TrainingTarget = 'hpc' | 'federated';
/** Stable rule names, so a journaled decision can be grepped and explained later. */
export type ClassificationReason =
  | 'estimatedFlops > 1e18'
  | 'datasetSizeGb > 100'
  | 'urgency = critical'
  | 'no HPC rule matched';

export interface TrainingJobShape {
  estimatedFlops: number;
  datasetSizeGb: number;
  urgency: Urgency;
}

/** Seed rules in seed order; the first that matches names the reason. */
export function classifyTrainingJob(job: TrainingJobShape): { target: TrainingTarget; reason: ClassificationReason } {
  if (job.estimatedFlops > HPC_FLOPS_THRESHOLD) return { target: 'hpc', reason: 'estimatedFlops > 1e18' };
  if (job.datasetSizeGb > HPC_DATASET_THRESHOLD_GB) return { target: 'hpc', reason: 'datasetSizeGb > 100' };
  if (job.urgency === 'critical') return { target: 'hpc', reason: 'urgency = critical' };
  return { target: 'federated', reason: 'no HPC rule matched' };
}

// ---------------------------------------------------------------------------
// Input, events, context

export const hpcJobInputSchema = z.strictObject({
  jobId: idSchema,
  datasetUri: uriSchema,
  datasetSizeGb: z.number().nonnegative(),
  estimatedFlops: z.number().nonnegative(),
  checkpointUri: uriSchema.optional(),
  urgency: urgencySchema,
  /** The node the dataset comes from, when the submitter named it (console display). */
  sourceNodeId: idSchema.optional(),
  submittedAtMs: atMsSchema,
  /** Defaults to DEFAULT_TRANSFER_STALL_TIMEOUT_MS. */
  transferStallTimeoutMs: stallTimeoutMsSchema.optional(),
});
export type HpcJobInput = z.infer<typeof hpcJobInputSchema>;

export const hpcJobEventSchema = z.discriminatedUnion('type', [
  // Data Mover initiated the Globus transfer.
  z.strictObject({ type: z.literal('transfer.started'), atMs: atMsSchema, transferId: idSchema.optional() }),
  // progress is a 0..1 fraction of the dataset moved.
  z.strictObject({
    type: z.literal('transfer.progress'),
    atMs: atMsSchema,
    bytesTransferred: z.number().int().nonnegative(),
    progress: z.number().min(0).max(1),
  }),
  z.strictObject({ type: z.literal('transfer.completed'), atMs: atMsSchema }),
  z.strictObject({ type: z.literal('transfer.failed'), atMs: atMsSchema, reason: reasonSchema }),
  // The batch queue took the job (its id is known before it starts, so a restart can find it again).
  z.strictObject({ type: z.literal('queue.submitted'), atMs: atMsSchema, schedulerJobId: idSchema }),
  z.strictObject({ type: z.literal('queue.rejected'), atMs: atMsSchema, reason: reasonSchema }),
  z.strictObject({ type: z.literal('job.started'), atMs: atMsSchema, schedulerJobId: idSchema.optional() }),
  z.strictObject({ type: z.literal('job.completed'), atMs: atMsSchema, checkpointUri: uriSchema.optional() }),
  z.strictObject({ type: z.literal('job.failed'), atMs: atMsSchema, reason: reasonSchema }),
  // Fired by the shard's timer wheel for transferDeadlineAtMs.
  z.strictObject({ type: z.literal('deadline'), atMs: atMsSchema }),
  z.strictObject({ type: z.literal('cancel'), atMs: atMsSchema, reason: reasonSchema.optional() }),
]);
export type HpcJobEvent = z.infer<typeof hpcJobEventSchema>;

export const hpcJobFailureReasonSchema = z.enum([
  'transfer-not-started',
  'transfer-failed',
  'transfer-stalled',
  'queue-rejected',
  'job-failed',
]);
export type HpcJobFailureReason = z.infer<typeof hpcJobFailureReasonSchema>;

/** Context as stored in snapshots: plain JSON, `null` for "not yet". */
export const hpcJobContextSchema = z.strictObject({
  jobId: idSchema,
  datasetUri: uriSchema,
  datasetSizeGb: z.number().nonnegative(),
  estimatedFlops: z.number().nonnegative(),
  checkpointUri: uriSchema.nullable(),
  urgency: urgencySchema,
  sourceNodeId: idSchema.nullable(),
  transferStallTimeoutMs: stallTimeoutMsSchema,
  submittedAtMs: atMsSchema,
  transferId: idSchema.nullable(),
  transferStartedAtMs: atMsSchema.nullable(),
  lastProgressAtMs: atMsSchema.nullable(),
  bytesTransferred: z.number().int().nonnegative(),
  /** 0..1 fraction of the dataset moved; never decreases. */
  progress: z.number().min(0).max(1),
  /** Absolute logical ms; null once no transfer is outstanding. */
  transferDeadlineAtMs: atMsSchema.nullable(),
  /** Also the moment the job entered the HPC queue. */
  transferCompletedAtMs: atMsSchema.nullable(),
  schedulerJobId: idSchema.nullable(),
  jobStartedAtMs: atMsSchema.nullable(),
  completedAtMs: atMsSchema.nullable(),
  failedAtMs: atMsSchema.nullable(),
  failureReason: hpcJobFailureReasonSchema.nullable(),
  /** What the outside party said, when it said anything. */
  failureDetail: reasonSchema.nullable(),
  cancelledAtMs: atMsSchema.nullable(),
  cancelReason: reasonSchema.nullable(),
});
export type HpcJobContext = z.infer<typeof hpcJobContextSchema>;

function initialContext(input: HpcJobInput): HpcJobContext {
  const transferStallTimeoutMs = input.transferStallTimeoutMs ?? DEFAULT_TRANSFER_STALL_TIMEOUT_MS;
  return {
    jobId: input.jobId,
    datasetUri: input.datasetUri,
    datasetSizeGb: input.datasetSizeGb,
    estimatedFlops: input.estimatedFlops,
    checkpointUri: input.checkpointUri ?? null,
    urgency: input.urgency,
    sourceNodeId: input.sourceNodeId ?? null,
    transferStallTimeoutMs,
    submittedAtMs: input.submittedAtMs,
    transferId: null,
    transferStartedAtMs: null,
    lastProgressAtMs: null,
    bytesTransferred: 0,
    progress: 0,
    // The Data Mover gets one stall window to start the transfer, so a job it
    // never picks up does not wait in pending forever.
    transferDeadlineAtMs: input.submittedAtMs + transferStallTimeoutMs,
    transferCompletedAtMs: null,
    schedulerJobId: null,
    jobStartedAtMs: null,
    completedAtMs: null,
    failedAtMs: null,
    failureReason: null,
    failureDetail: null,
    cancelledAtMs: null,
    cancelReason: null,
  };
}

// ---------------------------------------------------------------------------
// Machine

export const hpcJobMachine = setup({
  types: {
    input: {} as HpcJobInput,
    context: {} as HpcJobContext,
    events: {} as HpcJobEvent,
  },
  guards: {
    // Strictly more bytes, progress not lower, time not earlier: anything else
    // is a stale or reordered report, and a report without new bytes must not
    // postpone the stall deadline.
    isForwardProgress: ({ context, event }) =>
      event.type === 'transfer.progress' &&
      event.bytesTransferred > context.bytesTransferred &&
      event.progress >= context.progress &&
      event.atMs >= (context.lastProgressAtMs ?? context.transferStartedAtMs ?? context.submittedAtMs),
    // The timer wheel may fire a deadline that a later progress report already
    // moved, so compare against the current one.
    transferDeadlinePassed: ({ context, event }) =>
      event.type === 'deadline' && context.transferDeadlineAtMs !== null && event.atMs >= context.transferDeadlineAtMs,
  },
  actions: {
    recordTransferStarted: assign(({ context, event }) => {
      assertEvent(event, 'transfer.started');
      return {
        transferId: event.transferId ?? null,
        transferStartedAtMs: event.atMs,
        transferDeadlineAtMs: event.atMs + context.transferStallTimeoutMs,
      };
    }),
    recordProgress: assign(({ context, event }) => {
      assertEvent(event, 'transfer.progress');
      return {
        bytesTransferred: event.bytesTransferred,
        progress: event.progress,
        lastProgressAtMs: event.atMs,
        transferDeadlineAtMs: event.atMs + context.transferStallTimeoutMs,
      };
    }),
    recordTransferCompleted: assign(({ event }) => {
      assertEvent(event, 'transfer.completed');
      return { progress: 1, transferCompletedAtMs: event.atMs, transferDeadlineAtMs: null };
    }),
    recordQueueSubmitted: assign(({ event }) => {
      assertEvent(event, 'queue.submitted');
      return { schedulerJobId: event.schedulerJobId };
    }),
    recordJobStarted: assign(({ context, event }) => {
      assertEvent(event, 'job.started');
      return { schedulerJobId: event.schedulerJobId ?? context.schedulerJobId, jobStartedAtMs: event.atMs };
    }),
    recordJobCompleted: assign(({ context, event }) => {
      assertEvent(event, 'job.completed');
      return { completedAtMs: event.atMs, checkpointUri: event.checkpointUri ?? context.checkpointUri };
    }),
    // One failure action for every path; the reason code comes from the
    // transition, the free-text detail from the event when it has one.
    fail: assign(({ event }, params: { reason: HpcJobFailureReason }) => ({
      failedAtMs: event.atMs,
      failureReason: params.reason,
      failureDetail: 'reason' in event && event.reason !== undefined ? event.reason : null,
      transferDeadlineAtMs: null,
    })),
    recordCancel: assign(({ event }) => {
      assertEvent(event, 'cancel');
      return { cancelledAtMs: event.atMs, cancelReason: event.reason ?? null, transferDeadlineAtMs: null };
    }),
  },
}).createMachine({
  id: 'hpcJob',
  initial: 'pending',
  context: ({ input }) => initialContext(input),
  // Final states stop the actor, so this only ever fires from a non-final state.
  on: {
    cancel: { target: '.cancelled', actions: 'recordCancel' },
  },
  states: {
    // Published to arc.bridge.pending; waiting for the Data Mover.
    pending: {
      on: {
        'transfer.started': { target: 'transferring', actions: 'recordTransferStarted' },
        'transfer.failed': { target: 'failed', actions: { type: 'fail', params: { reason: 'transfer-failed' } } },
        deadline: {
          guard: 'transferDeadlinePassed',
          target: 'failed',
          actions: { type: 'fail', params: { reason: 'transfer-not-started' } },
        },
      },
    },
    transferring: {
      on: {
        'transfer.progress': { guard: 'isForwardProgress', actions: 'recordProgress' },
        'transfer.completed': { target: 'queued', actions: 'recordTransferCompleted' },
        'transfer.failed': { target: 'failed', actions: { type: 'fail', params: { reason: 'transfer-failed' } } },
        deadline: {
          guard: 'transferDeadlinePassed',
          target: 'failed',
          actions: { type: 'fail', params: { reason: 'transfer-stalled' } },
        },
      },
    },
    // Accepted at ornl.bridge.ingress and submitted to the Frontier/Lux queue.
    // No deadline: HPC queue waits are measured in hours and are not a fault.
    queued: {
      on: {
        'queue.submitted': { actions: 'recordQueueSubmitted' },
        'job.started': { target: 'running', actions: 'recordJobStarted' },
        'queue.rejected': { target: 'failed', actions: { type: 'fail', params: { reason: 'queue-rejected' } } },
      },
    },
    running: {
      on: {
        'job.completed': { target: 'completed', actions: 'recordJobCompleted' },
        'job.failed': { target: 'failed', actions: { type: 'fail', params: { reason: 'job-failed' } } },
      },
    },
    completed: { type: 'final' },
    failed: { type: 'final' },
    cancelled: { type: 'final' },
  },
});
