// Federated training job (seed Pattern 3, step 4): partition the dataset across
// nodes, then per round collect updates, aggregate gradients and publish a
// checkpoint, until totalRounds are done.
//
// Pure: time arrives as `atMs` on events, the round deadline is absolute
// logical ms in context, and the shard's timer wheel fires it as a `deadline`
// event (XState `after` timers do not survive a persisted snapshot).
// Node-id lists are kept sorted so snapshots and state hashes are canonical.
import { assertEvent, assign, setup } from 'xstate';
import { z } from 'zod';

/** Limits, so one job cannot grow a snapshot without bound. */
export const MAX_PARTICIPANTS = 10_000;
export const MAX_TOTAL_ROUNDS = 100_000;
export const MAX_ROUND_TIMEOUT_MS = 7 * 24 * 60 * 60 * 1000;

const idSchema = z.string().min(1).max(256);
const uriSchema = z.string().min(1).max(2048);
const reasonSchema = z.string().min(1).max(1024);
/** Logical time in ms, stamped by the shard's Clock port; never read from the wall clock here. */
const atMsSchema = z.number().int().nonnegative();
const roundTimeoutMsSchema = z.number().int().positive().max(MAX_ROUND_TIMEOUT_MS);
const partitionSchema = z.strictObject({ nodeId: idSchema, datasetShardUri: uriSchema });
export type Partition = z.infer<typeof partitionSchema>;

/**
 * When a round closes before its deadline: `quorum` as soon as minParticipants
 * answered (the rest are stragglers, named, and their later updates are not
 * counted); `all` only when every active participant answered. Either way the
 * deadline closes a round that has its quorum.
 */
export const AGGREGATE_WHEN = ['quorum', 'all'] as const;
export const aggregateWhenSchema = z.enum(AGGREGATE_WHEN);
export type AggregateWhen = z.infer<typeof aggregateWhenSchema>;
/** The seed's rule: aggregate once min-participants answered, or at the deadline. */
export const DEFAULT_AGGREGATE_WHEN: AggregateWhen = 'quorum';
/**
 * What a job journaled before `aggregate-when` existed did: its rounds closed when every participant
 * answered (or at the deadline). Replay gives such a journal that rule, so its hashes stay what they were.
 */
export const LEGACY_AGGREGATE_WHEN: AggregateWhen = 'all';

/** Why a round stopped collecting updates. */
export const roundClosedBySchema = z.enum(['quorum', 'all', 'deadline']);
export type RoundClosedBy = z.infer<typeof roundClosedBySchema>;

// ---------------------------------------------------------------------------
// Input, events, context

export const federatedRoundInputSchema = z
  .strictObject({
    jobId: idSchema,
    totalRounds: z.number().int().min(1).max(MAX_TOTAL_ROUNDS),
    /** Node ids taking part. */
    participants: z.array(idSchema).min(1).max(MAX_PARTICIPANTS),
    /** Quorum: fewest answering participants that still make a usable round. */
    minParticipants: z.number().int().min(1),
    /** Absent: DEFAULT_AGGREGATE_WHEN. */
    aggregateWhen: aggregateWhenSchema.optional(),
    roundTimeoutMs: roundTimeoutMsSchema,
    createdAtMs: atMsSchema,
  })
  .refine((i) => new Set(i.participants).size === i.participants.length, {
    message: 'participants must be unique',
    path: ['participants'],
  })
  .refine((i) => i.minParticipants <= i.participants.length, {
    message: 'minParticipants must not exceed the number of participants',
    path: ['minParticipants'],
  });
export type FederatedRoundInput = z.infer<typeof federatedRoundInputSchema>;

export const federatedRoundEventSchema = z.discriminatedUnion('type', [
  // Dataset partitioned: one shard per participant.
  z.strictObject({
    type: z.literal('configure'),
    atMs: atMsSchema,
    partitions: z.array(partitionSchema).min(1).max(MAX_PARTICIPANTS),
  }),
  // A participant's gradient update for a round (rounds are 1-based).
  z.strictObject({
    type: z.literal('update.received'),
    atMs: atMsSchema,
    nodeId: idSchema,
    round: z.number().int().min(1),
  }),
  z.strictObject({ type: z.literal('participant.dropped'), atMs: atMsSchema, nodeId: idSchema }),
  // Fired by the shard's timer wheel for roundDeadlineAtMs.
  z.strictObject({ type: z.literal('deadline'), atMs: atMsSchema }),
  z.strictObject({ type: z.literal('aggregated'), atMs: atMsSchema }),
  z.strictObject({ type: z.literal('aggregation.failed'), atMs: atMsSchema, reason: reasonSchema }),
  z.strictObject({ type: z.literal('checkpoint.published'), atMs: atMsSchema, checkpointUri: uriSchema }),
  z.strictObject({ type: z.literal('checkpoint.failed'), atMs: atMsSchema, reason: reasonSchema }),
  z.strictObject({ type: z.literal('cancel'), atMs: atMsSchema, reason: reasonSchema.optional() }),
]);
export type FederatedRoundEvent = z.infer<typeof federatedRoundEventSchema>;

export const federatedRoundFailureReasonSchema = z.enum([
  'invalid-partitions',
  'quorum-lost',
  'quorum-not-reached',
  'aggregation-failed',
  'checkpoint-failed',
]);
export type FederatedRoundFailureReason = z.infer<typeof federatedRoundFailureReasonSchema>;

/** Context as stored in snapshots: plain JSON, sorted id lists, `null` for "not yet". */
export const federatedRoundContextSchema = z.strictObject({
  jobId: idSchema,
  totalRounds: z.number().int().min(1),
  minParticipants: z.number().int().min(1),
  aggregateWhen: aggregateWhenSchema,
  roundTimeoutMs: roundTimeoutMsSchema,
  createdAtMs: atMsSchema,
  /** Still-active participants, sorted. */
  participants: z.array(idSchema),
  /** Participants that dropped out, sorted. */
  dropped: z.array(idSchema),
  /** Sorted by nodeId; only active participants at configure time. */
  partitions: z.array(partitionSchema),
  configuredAtMs: atMsSchema.nullable(),
  /** 1-based; 0 until configured. */
  round: z.number().int().nonnegative(),
  roundStartedAtMs: atMsSchema.nullable(),
  /** Absolute logical ms; null while no round is collecting updates. */
  roundDeadlineAtMs: atMsSchema.nullable(),
  /** Nodes whose update for the current round arrived, sorted. */
  answered: z.array(idSchema),
  /** Active nodes that had not answered when the current round closed, sorted. */
  stragglers: z.array(idSchema),
  roundClosedAtMs: atMsSchema.nullable(),
  /** What closed the current round; null while it collects updates. */
  roundClosedBy: roundClosedBySchema.nullable(),
  aggregatedAtMs: atMsSchema.nullable(),
  lastCheckpointUri: uriSchema.nullable(),
  roundsCompleted: z.number().int().nonnegative(),
  completedAtMs: atMsSchema.nullable(),
  failedAtMs: atMsSchema.nullable(),
  failureReason: federatedRoundFailureReasonSchema.nullable(),
  /** What the outside party said, when it said anything. */
  failureDetail: reasonSchema.nullable(),
  cancelledAtMs: atMsSchema.nullable(),
  cancelReason: reasonSchema.nullable(),
});
export type FederatedRoundContext = z.infer<typeof federatedRoundContextSchema>;

// ---------------------------------------------------------------------------
// Helpers (pure, return new arrays so snapshots are never mutated in place)

/** Code-unit order: the same on every machine, unlike localeCompare. */
function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function insertSorted(ids: readonly string[], id: string): string[] {
  return [...ids, id].sort(compareIds);
}

function initialContext(input: FederatedRoundInput): FederatedRoundContext {
  return {
    jobId: input.jobId,
    totalRounds: input.totalRounds,
    minParticipants: input.minParticipants,
    aggregateWhen: input.aggregateWhen ?? DEFAULT_AGGREGATE_WHEN,
    roundTimeoutMs: input.roundTimeoutMs,
    createdAtMs: input.createdAtMs,
    participants: [...new Set(input.participants)].sort(compareIds),
    dropped: [],
    partitions: [],
    configuredAtMs: null,
    round: 0,
    roundStartedAtMs: null,
    roundDeadlineAtMs: null,
    answered: [],
    stragglers: [],
    roundClosedAtMs: null,
    roundClosedBy: null,
    aggregatedAtMs: null,
    lastCheckpointUri: null,
    roundsCompleted: 0,
    completedAtMs: null,
    failedAtMs: null,
    failureReason: null,
    failureDetail: null,
    cancelledAtMs: null,
    cancelReason: null,
  };
}

/** Fields that open round `round` at `atMs`. */
function openRound(context: FederatedRoundContext, round: number, atMs: number): Partial<FederatedRoundContext> {
  return {
    round,
    roundStartedAtMs: atMs,
    roundDeadlineAtMs: atMs + context.roundTimeoutMs,
    answered: [],
    stragglers: [],
    roundClosedAtMs: null,
    roundClosedBy: null,
    aggregatedAtMs: null,
  };
}

// ---------------------------------------------------------------------------
// Machine

export const federatedRoundMachine = setup({
  types: {
    input: {} as FederatedRoundInput,
    context: {} as FederatedRoundContext,
    events: {} as FederatedRoundEvent,
  },
  guards: {
    // Every active participant gets exactly one shard; shards for nodes that
    // dropped meanwhile are tolerated (the partitioner may have raced the
    // drop), shards for strangers are not.
    partitionsMatchParticipants: ({ context, event }) => {
      if (event.type !== 'configure') return false;
      const ids = event.partitions.map((p) => p.nodeId);
      if (new Set(ids).size !== ids.length) return false;
      const known = new Set([...context.participants, ...context.dropped]);
      return ids.every((id) => known.has(id)) && context.participants.every((id) => ids.includes(id));
    },
    // Unknown or dropped node, another round's update, or a repeat: ignore.
    isNewUpdateForThisRound: ({ context, event }) =>
      event.type === 'update.received' &&
      event.round === context.round &&
      context.participants.includes(event.nodeId) &&
      !context.answered.includes(event.nodeId),
    isActiveParticipant: ({ context, event }) =>
      event.type === 'participant.dropped' && context.participants.includes(event.nodeId),
    dropLosesQuorum: ({ context, event }) =>
      event.type === 'participant.dropped' &&
      context.participants.includes(event.nodeId) &&
      context.participants.length - 1 < context.minParticipants,
    quorumLost: ({ context }) => context.participants.length < context.minParticipants,
    allAnswered: ({ context }) => context.participants.every((id) => context.answered.includes(id)),
    // Answers of nodes that dropped after answering count: their updates are in.
    closesAtQuorum: ({ context }) => context.aggregateWhen === 'quorum' && context.answered.length >= context.minParticipants,
    // The timer wheel may deliver a deadline early or for an older round;
    // only the current deadline counts.
    roundDeadlinePassed: ({ context, event }) =>
      event.type === 'deadline' && context.roundDeadlineAtMs !== null && event.atMs >= context.roundDeadlineAtMs,
    roundDeadlinePassedWithQuorum: ({ context, event }) =>
      event.type === 'deadline' &&
      context.roundDeadlineAtMs !== null &&
      event.atMs >= context.roundDeadlineAtMs &&
      context.answered.length >= context.minParticipants,
    isLastRound: ({ context }) => context.round >= context.totalRounds,
  },
  actions: {
    recordConfigured: assign(({ context, event }) => {
      assertEvent(event, 'configure');
      const partitions = event.partitions
        .filter((p) => context.participants.includes(p.nodeId))
        .sort((a, b) => compareIds(a.nodeId, b.nodeId));
      return { partitions, configuredAtMs: event.atMs, ...openRound(context, 1, event.atMs) };
    }),
    recordUpdate: assign(({ context, event }) => {
      assertEvent(event, 'update.received');
      return { answered: insertSorted(context.answered, event.nodeId) };
    }),
    // A node that answered and then dropped keeps its answer: its gradient
    // for this round already arrived.
    recordDrop: assign(({ context, event }) => {
      assertEvent(event, 'participant.dropped');
      return {
        participants: context.participants.filter((id) => id !== event.nodeId),
        dropped: insertSorted(context.dropped, event.nodeId),
      };
    }),
    closeRound: assign(({ context, event }, params: { by: RoundClosedBy }) => ({
      stragglers: context.participants.filter((id) => !context.answered.includes(id)),
      roundDeadlineAtMs: null,
      roundClosedAtMs: event.atMs,
      roundClosedBy: params.by,
    })),
    recordAggregated: assign(({ event }) => {
      assertEvent(event, 'aggregated');
      return { aggregatedAtMs: event.atMs };
    }),
    recordCheckpoint: assign(({ context, event }) => {
      assertEvent(event, 'checkpoint.published');
      return { lastCheckpointUri: event.checkpointUri, roundsCompleted: context.roundsCompleted + 1 };
    }),
    startNextRound: assign(({ context, event }) => openRound(context, context.round + 1, event.atMs)),
    recordDone: assign(({ event }) => ({ completedAtMs: event.atMs })),
    // One failure action for every path; the reason code comes from the
    // transition, the free-text detail from the event when it has one.
    fail: assign(({ event }, params: { reason: FederatedRoundFailureReason }) => ({
      failedAtMs: event.atMs,
      failureReason: params.reason,
      failureDetail: 'reason' in event && event.reason !== undefined ? event.reason : null,
      roundDeadlineAtMs: null,
    })),
    recordCancel: assign(({ event }) => {
      assertEvent(event, 'cancel');
      return { cancelledAtMs: event.atMs, cancelReason: event.reason ?? null, roundDeadlineAtMs: null };
    }),
  },
}).createMachine({
  id: 'federatedRound',
  initial: 'configuring',
  context: ({ input }) => initialContext(input),
  // Final states stop the actor, so this only ever fires from a non-final state.
  on: {
    cancel: { target: '.cancelled', actions: 'recordCancel' },
  },
  states: {
    // Published to arc.scheduler.training; waiting for the dataset partitions.
    // (No `always` here: in the initial state it would also see xstate.init,
    // which carries no atMs.)
    configuring: {
      on: {
        configure: [
          { guard: 'partitionsMatchParticipants', target: 'training', actions: 'recordConfigured' },
          { target: 'failed', actions: { type: 'fail', params: { reason: 'invalid-partitions' } } },
        ],
        'participant.dropped': [
          {
            guard: 'dropLosesQuorum',
            target: 'failed',
            actions: ['recordDrop', { type: 'fail', params: { reason: 'quorum-lost' } }],
          },
          { guard: 'isActiveParticipant', actions: 'recordDrop' },
        ],
      },
    },
    // Collecting updates for `round` until it may close (aggregateWhen: quorum
    // or all answered) or roundDeadlineAtMs passes.
    training: {
      // Checked after every event handled here; quorum first, so a drop that
      // both completes and breaks the round fails it. All before quorum, so a
      // round everyone answered says so whatever the rule.
      always: [
        { guard: 'quorumLost', target: 'failed', actions: { type: 'fail', params: { reason: 'quorum-lost' } } },
        { guard: 'allAnswered', target: 'aggregating', actions: { type: 'closeRound', params: { by: 'all' } } },
        { guard: 'closesAtQuorum', target: 'aggregating', actions: { type: 'closeRound', params: { by: 'quorum' } } },
      ],
      on: {
        'update.received': { guard: 'isNewUpdateForThisRound', actions: 'recordUpdate' },
        'participant.dropped': { guard: 'isActiveParticipant', actions: 'recordDrop' },
        deadline: [
          { guard: 'roundDeadlinePassedWithQuorum', target: 'aggregating', actions: { type: 'closeRound', params: { by: 'deadline' } } },
          {
            guard: 'roundDeadlinePassed',
            target: 'failed',
            actions: { type: 'fail', params: { reason: 'quorum-not-reached' } },
          },
        ],
      },
    },
    // Drops are recorded but do not fail the job here: this round's updates
    // are already in; quorum is checked before the next round opens.
    aggregating: {
      on: {
        aggregated: { target: 'checkpointing', actions: 'recordAggregated' },
        'aggregation.failed': {
          target: 'failed',
          actions: { type: 'fail', params: { reason: 'aggregation-failed' } },
        },
        'participant.dropped': { guard: 'isActiveParticipant', actions: 'recordDrop' },
      },
    },
    checkpointing: {
      on: {
        'checkpoint.published': [
          { guard: 'isLastRound', target: 'done', actions: ['recordCheckpoint', 'recordDone'] },
          {
            guard: 'quorumLost',
            target: 'failed',
            actions: ['recordCheckpoint', { type: 'fail', params: { reason: 'quorum-lost' } }],
          },
          { target: 'training', actions: ['recordCheckpoint', 'startNextRound'] },
        ],
        'checkpoint.failed': {
          target: 'failed',
          actions: { type: 'fail', params: { reason: 'checkpoint-failed' } },
        },
        'participant.dropped': { guard: 'isActiveParticipant', actions: 'recordDrop' },
      },
    },
    done: { type: 'final' },
    failed: { type: 'final' },
    cancelled: { type: 'final' },
  },
});
