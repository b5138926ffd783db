import { assign, setup } from 'xstate';
import { z } from 'zod';

/**
 * The digital twin of one compute node (a Ganglion). Telemetry upserts it; a
 * node that sends no telemetry for `silenceTimeoutMs` goes offline. The timeout
 * is a deadline in context (`silentAfterMs`), fired by the runtime's timer wheel:
 * XState `after` timers would be lost across persisted snapshots.
 *
 * Units: levels and utilisation are fractions in 0..1; times are logical ms.
 */

export const energySources = ['cogen', 'grid', 'battery'] as const;
export type EnergySource = (typeof energySources)[number];

/** The facts a telemetry report carries, already validated at the edge. */
export const nodeReportSchema = z.strictObject({
  nodeName: z.string().max(128).optional(),
  geohash: z.string().min(1).max(12),
  geozone: z.string().min(1).max(32),
  energySource: z.enum(energySources),
  batteryLevel: z.number().min(0).max(1),
  gpuUtilization: z.number().min(0).max(1),
  gpuCount: z.number().int().min(1).max(64),
  modelsLoaded: z.array(z.string().min(1).max(128)).max(64),
  /** The node's own clock reading of the report (ms since epoch): orders reports, never trusted as "now". */
  reportedAtMs: z.number().int().nonnegative(),
  /** The node announces it is draining (finishing work, taking none). */
  draining: z.boolean(),
});
export type NodeReport = z.infer<typeof nodeReportSchema>;

export const nodeInputSchema = z.strictObject({
  nodeId: z.string().min(1).max(128),
  report: nodeReportSchema,
  atMs: z.number().int().nonnegative(),
  silenceTimeoutMs: z.number().int().positive(),
  reservationsPerGpu: z.number().int().positive(),
});
export type NodeInput = z.infer<typeof nodeInputSchema>;

export const nodeEventSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('telemetry'), atMs: z.number().int().nonnegative(), report: nodeReportSchema }),
  z.strictObject({ type: z.literal('timeout'), atMs: z.number().int().nonnegative() }),
  z.strictObject({ type: z.literal('reserve'), atMs: z.number().int().nonnegative(), requestId: z.string().min(1) }),
  z.strictObject({ type: z.literal('release'), atMs: z.number().int().nonnegative(), requestId: z.string().min(1) }),
  z.strictObject({ type: z.literal('drain'), atMs: z.number().int().nonnegative() }),
  z.strictObject({ type: z.literal('resume'), atMs: z.number().int().nonnegative() }),
]);
export type NodeEvent = z.infer<typeof nodeEventSchema>;

export interface NodeContext extends NodeReport {
  nodeId: string;
  /** Logical time of the last accepted telemetry. */
  lastSeenAtMs: number;
  /** Deadline: offline if no telemetry arrives before it (lastSeenAtMs + silenceTimeoutMs). */
  silentAfterMs: number;
  silenceTimeoutMs: number;
  reservationsPerGpu: number;
  /** Request ids of the reservations this node holds, oldest first. */
  reservations: string[];
  /** An operator asked this node to drain; it stays draining across an outage until resumed. */
  drainRequested: boolean;
}

/** How many reservations a node may hold at once. */
export function nodeCapacity(context: Pick<NodeContext, 'gpuCount' | 'reservationsPerGpu'>): number {
  return context.gpuCount * context.reservationsPerGpu;
}

function fromReport(report: NodeReport, atMs: number, silenceTimeoutMs: number) {
  return { ...report, lastSeenAtMs: atMs, silentAfterMs: atMs + silenceTimeoutMs };
}

export const nodeMachine = setup({
  types: {
    context: {} as NodeContext,
    events: {} as NodeEvent,
    input: {} as NodeInput,
  },
  guards: {
    // Duplicate and out-of-order reports carry a reportedAt no newer than the last one.
    isStale: ({ context, event }) => event.type === 'telemetry' && event.report.reportedAtMs <= context.reportedAtMs,
    // Draining when an operator asked for it, or when the node itself says so in its latest report.
    shouldDrain: ({ context, event }) => context.drainRequested || (event.type === 'telemetry' ? event.report.draining : context.draining),
    isDue: ({ context, event }) => event.type === 'timeout' && event.atMs >= context.silentAfterMs,
    hasRoom: ({ context, event }) =>
      event.type === 'reserve' && context.reservations.length < nodeCapacity(context) && !context.reservations.includes(event.requestId),
    holds: ({ context, event }) => event.type === 'release' && context.reservations.includes(event.requestId),
  },
  actions: {
    applyReport: assign(({ context, event }) => {
      if (event.type !== 'telemetry') return {};
      return fromReport(event.report, event.atMs, context.silenceTimeoutMs);
    }),
    markDrainRequested: assign({ drainRequested: true }),
    clearDrainRequested: assign({ drainRequested: false }),
    addReservation: assign({
      reservations: ({ context, event }) => (event.type === 'reserve' ? [...context.reservations, event.requestId] : context.reservations),
    }),
    removeReservation: assign({
      reservations: ({ context, event }) =>
        event.type === 'release' ? context.reservations.filter((id) => id !== event.requestId) : context.reservations,
    }),
    // Going offline drops every reservation: the region fails or re-routes them in the same step.
    dropReservations: assign({ reservations: () => [] }),
  },
}).createMachine({
  id: 'node',
  context: ({ input }) => ({
    nodeId: input.nodeId,
    ...fromReport(input.report, input.atMs, input.silenceTimeoutMs),
    silenceTimeoutMs: input.silenceTimeoutMs,
    reservationsPerGpu: input.reservationsPerGpu,
    reservations: [],
    drainRequested: false,
  }),
  initial: 'starting',
  states: {
    // A transient state so the first report decides between online and draining.
    starting: {
      always: [{ guard: 'shouldDrain', target: 'draining' }, { target: 'online' }],
    },
    online: {
      on: {
        telemetry: [{ guard: 'isStale' }, { guard: 'shouldDrain', target: 'draining', actions: 'applyReport' }, { actions: 'applyReport' }],
        timeout: { guard: 'isDue', target: 'offline', actions: 'dropReservations' },
        reserve: { guard: 'hasRoom', actions: 'addReservation' },
        release: { guard: 'holds', actions: 'removeReservation' },
        drain: { target: 'draining', actions: 'markDrainRequested' },
      },
    },
    // Finishes the work it holds and takes no new reservation.
    draining: {
      on: {
        telemetry: [{ guard: 'isStale' }, { guard: 'shouldDrain', actions: 'applyReport' }, { target: 'online', actions: 'applyReport' }],
        timeout: { guard: 'isDue', target: 'offline', actions: 'dropReservations' },
        release: { guard: 'holds', actions: 'removeReservation' },
        resume: [
          { guard: ({ context }) => context.draining, actions: 'clearDrainRequested' },
          { target: 'online', actions: 'clearDrainRequested' },
        ],
      },
    },
    offline: {
      on: {
        telemetry: [{ guard: 'isStale' }, { guard: 'shouldDrain', target: 'draining', actions: 'applyReport' }, { target: 'online', actions: 'applyReport' }],
        drain: { actions: 'markDrainRequested' },
        resume: { actions: 'clearDrainRequested' },
      },
    },
  },
});

export const nodeStatuses = ['online', 'draining', 'offline'] as const;
export type NodeStatus = (typeof nodeStatuses)[number];
