import { and, assign, setup } from 'xstate';
import { z } from 'zod';

/**
 * One inference request's reservation (the seed's Pattern 1, steps 3-6).
 *
 * requested → reserved (expires reservationTtlMs after it was made) → dispatched
 * (or straight to dispatched when route.reserved says `dispatch: true`)
 * → completed | failed | expired | released; or, when routing finds no node,
 * rejected, or forwarding to another geozone's shard until that shard
 * acknowledges it (then forwarded: the other shard owns the outcome). When the node dies
 * the reservation returns to `requested` and is re-routed, up to maxAttempts.
 *
 * The expiry is a deadline in context (`expiresAtMs`), fired by the runtime's timer
 * wheel (never an XState `after`, whose timer would not survive a snapshot).
 */

export const priorities = ['critical', 'normal', 'background'] as const;
export type Priority = (typeof priorities)[number];

export const reservationInputSchema = z.strictObject({
  requestId: z.string().min(1).max(128),
  modelId: z.string().min(1).max(128),
  contextWindow: z.number().int().positive(),
  priority: z.enum(priorities),
  requesterGeozone: z.string().min(1).max(32),
  requesterGeohash: z.string().min(1).max(12).optional(),
  /** Geozone shards that already tried this request (forwarding), home first. */
  triedGeozones: z.array(z.string()).max(64),
  receivedAtMs: z.number().int().nonnegative(),
  reservationTtlMs: z.number().int().positive(),
  maxAttempts: z.number().int().positive(),
});
export type ReservationInput = z.infer<typeof reservationInputSchema>;

const atMs = z.number().int().nonnegative();
const routeFacts = {
  /** How many nodes were eligible when the decision was made. */
  candidates: z.number().int().nonnegative(),
  reason: z.string().max(256),
};

export const reservationEventSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('route.reserved'),
    atMs,
    nodeId: z.string().min(1),
    ...routeFacts,
    /**
     * Dispatched in the same step as reserved (what the region does): one event and
     * one journal record instead of route.reserved then dispatch. Journals written
     * before it have the two events, which still replay.
     */
    dispatch: z.literal(true).optional(),
  }),
  z.strictObject({ type: z.literal('route.forwarded'), atMs, toGeozone: z.string().min(1), ...routeFacts }),
  z.strictObject({ type: z.literal('route.rejected'), atMs, ...routeFacts }),
  z.strictObject({ type: z.literal('dispatch'), atMs }),
  z.strictObject({
    type: z.literal('result'),
    atMs,
    nodeId: z.string().min(1),
    status: z.enum(['completed', 'failed']),
    latencyMs: z.number().nonnegative(),
  }),
  z.strictObject({ type: z.literal('expire'), atMs }),
  z.strictObject({ type: z.literal('node.lost'), atMs, nodeId: z.string().min(1) }),
  z.strictObject({ type: z.literal('cancel'), atMs }),
  z.strictObject({ type: z.literal('forward.accepted'), atMs }),
]);
export type ReservationEvent = z.infer<typeof reservationEventSchema>;

export interface ReservationContext extends ReservationInput {
  /** The node holding the reservation (null while requested or after it ended without one). */
  nodeId: string | null;
  reservedAtMs: number | null;
  /** Deadline: expired unless a result arrives before it. */
  expiresAtMs: number | null;
  /** Routing attempts so far (1 after the first reservation). */
  attempts: number;
  /** Nodes that died holding this reservation: never chosen again for it. */
  lostNodes: string[];
  /** Why it ended, or why the last routing decision went as it did. */
  reason: string | null;
  latencyMs: number | null;
  endedAtMs: number | null;
  /** While forwarding: the geozone it was handed to and when (for re-sending until acknowledged). */
  forwardedTo: string | null;
  forwardedAtMs: number | null;
}

export const terminalReservationStates = ['completed', 'failed', 'expired', 'released', 'rejected'] as const;

export const reservationMachine = setup({
  types: {
    context: {} as ReservationContext,
    events: {} as ReservationEvent,
    input: {} as ReservationInput,
  },
  guards: {
    fromHolder: ({ context, event }) => (event.type === 'result' || event.type === 'node.lost') && event.nodeId === context.nodeId,
    completedByHolder: ({ context, event }) => event.type === 'result' && event.nodeId === context.nodeId && event.status === 'completed',
    isDue: ({ context, event }) => event.type === 'expire' && context.expiresAtMs !== null && event.atMs >= context.expiresAtMs,
    canRetry: ({ context }) => context.attempts < context.maxAttempts,
    dispatchesNow: ({ event }) => event.type === 'route.reserved' && event.dispatch === true,
    /** A request that already held a node failed; one never placed was rejected. */
    wasPlaced: ({ context }) => context.attempts > 0,
  },
  actions: {
    reserve: assign(({ context, event }) => {
      if (event.type !== 'route.reserved') return {};
      return {
        nodeId: event.nodeId,
        reservedAtMs: event.atMs,
        expiresAtMs: event.atMs + context.reservationTtlMs,
        attempts: context.attempts + 1,
        reason: event.reason,
      };
    }),
    end: assign(({ event }) => ({
      expiresAtMs: null,
      endedAtMs: event.atMs,
      reason: 'reason' in event ? event.reason : event.type === 'result' ? `result-${event.status}` : event.type,
      latencyMs: event.type === 'result' ? event.latencyMs : null,
    })),
    loseNode: assign(({ context, event }) => ({
      lostNodes: event.type === 'node.lost' ? [...context.lostNodes, event.nodeId] : context.lostNodes,
      nodeId: null,
      reservedAtMs: null,
      expiresAtMs: null,
      reason: 'node-lost',
    })),
    handOver: assign(({ event }) => ({
      forwardedTo: event.type === 'route.forwarded' ? event.toGeozone : null,
      forwardedAtMs: event.atMs,
      reason: event.type === 'route.forwarded' ? event.reason : null,
    })),
    endAttemptsExhausted: assign(({ event }) => ({
      nodeId: null,
      expiresAtMs: null,
      endedAtMs: event.atMs,
      reason: 'node-lost-attempts-exhausted',
    })),
  },
}).createMachine({
  id: 'reservation',
  context: ({ input }) => ({
    ...input,
    nodeId: null,
    reservedAtMs: null,
    expiresAtMs: null,
    attempts: 0,
    lostNodes: [],
    reason: null,
    latencyMs: null,
    endedAtMs: null,
    forwardedTo: null,
    forwardedAtMs: null,
  }),
  initial: 'requested',
  states: {
    requested: {
      on: {
        'route.reserved': [
          { guard: 'dispatchesNow', target: 'dispatched', actions: 'reserve' },
          { target: 'reserved', actions: 'reserve' },
        ],
        'route.forwarded': { target: 'forwarding', actions: 'handOver' },
        'route.rejected': [
          { guard: 'wasPlaced', target: 'failed', actions: 'end' },
          { target: 'rejected', actions: 'end' },
        ],
        cancel: { target: 'released', actions: 'end' },
      },
    },
    // Held on a node; the dispatch command is released once this is durable.
    reserved: {
      on: {
        dispatch: { target: 'dispatched' },
        expire: { guard: 'isDue', target: 'expired', actions: 'end' },
        'node.lost': [
          { guard: and(['fromHolder', 'canRetry']), target: 'requested', actions: 'loseNode' },
          { guard: 'fromHolder', target: 'failed', actions: ['loseNode', 'endAttemptsExhausted'] },
        ],
        cancel: { target: 'released', actions: 'end' },
      },
    },
    dispatched: {
      on: {
        result: [
          { guard: 'completedByHolder', target: 'completed', actions: 'end' },
          { guard: 'fromHolder', target: 'failed', actions: 'end' },
        ],
        expire: { guard: 'isDue', target: 'expired', actions: 'end' },
        'node.lost': [
          { guard: and(['fromHolder', 'canRetry']), target: 'requested', actions: 'loseNode' },
          { guard: 'fromHolder', target: 'failed', actions: ['loseNode', 'endAttemptsExhausted'] },
        ],
        cancel: { target: 'released', actions: 'end' },
      },
    },
    completed: { type: 'final' },
    failed: { type: 'final' },
    expired: { type: 'final' },
    released: { type: 'final' },
    rejected: { type: 'final' },
    // Handed to another geozone's shard, re-sent until that shard acknowledges it.
    forwarding: {
      on: { 'forward.accepted': { target: 'forwarded', actions: 'end' } },
    },
    // The other shard has it and continues under the same request id.
    forwarded: { type: 'final' },
  },
});
