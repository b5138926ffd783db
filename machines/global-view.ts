// The orchestrator's view of one geozone, fed by that region's RegionalSummary v1
// (arc.summary.regional, every 60 s). It keeps the latest summary and a short
// window of recent ones (what the alert detectors compare against), and goes
// `silent` when no summary came for `silentPeriods` summary periods.
//
// Pure: time arrives as `atMs` (the orchestrator shard's logical time), and the
// silence deadline is data in context, fired by the shard's timer wheel.
import { assertEvent, assign, setup } from 'xstate';
import { z } from 'zod';

const atMsSchema = z.number().int().nonnegative();
const count = z.number().int().nonnegative();

export const viewSummarySchema = z.strictObject({
  /** When the region says it summed (its own clock; shown, never used for deadlines). */
  reportedAtMs: atMsSchema,
  /** When the orchestrator took it in (logical time: deadlines and detectors use this). */
  receivedAtMs: atMsSchema,
  totalNodes: count,
  activeNodes: count,
  avgGpuUtil: z.number().min(0).max(1),
  energyBreakdown: z.strictObject({ cogen: count, grid: count, battery: count }),
  openReservations: count,
});
export type ViewSummary = z.infer<typeof viewSummarySchema>;

export const globalViewInputSchema = z.strictObject({
  geozone: z.string().min(1).max(32),
  summaryEveryMs: z.number().int().positive(),
  silentPeriods: z.number().int().positive(),
  /** Summaries kept for the detectors (the window "recent level" is measured over). */
  recentWindow: z.number().int().min(1).max(1000),
  summary: viewSummarySchema,
});
export type GlobalViewInput = z.infer<typeof globalViewInputSchema>;

export const globalViewEventSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('summary'), atMs: atMsSchema, summary: viewSummarySchema }),
  z.strictObject({ type: z.literal('deadline'), atMs: atMsSchema }),
]);
export type GlobalViewEvent = z.infer<typeof globalViewEventSchema>;

export interface GlobalViewContext {
  readonly geozone: string;
  readonly summaryEveryMs: number;
  readonly silentPeriods: number;
  readonly recentWindow: number;
  readonly latest: ViewSummary;
  /** The last `recentWindow` summaries before `latest`, oldest first. */
  readonly recent: readonly ViewSummary[];
  readonly summaries: number;
  /** Absolute logical ms after which the region counts as silent; null while silent. */
  readonly silentAfterMs: number | null;
  readonly silentSinceMs: number | null;
}

export const globalViewMachine = setup({
  types: {
    input: {} as GlobalViewInput,
    context: {} as GlobalViewContext,
    events: {} as GlobalViewEvent,
  },
  guards: {
    silenceDue: ({ context, event }) => event.type === 'deadline' && context.silentAfterMs !== null && event.atMs >= context.silentAfterMs,
  },
  actions: {
    takeSummary: assign(({ context, event }) => {
      assertEvent(event, 'summary');
      const recent = [...context.recent, context.latest].slice(-context.recentWindow);
      return {
        latest: event.summary,
        recent,
        summaries: context.summaries + 1,
        silentAfterMs: event.atMs + context.silentPeriods * context.summaryEveryMs,
        silentSinceMs: null,
      };
    }),
    goSilent: assign(({ event }) => ({ silentAfterMs: null, silentSinceMs: event.atMs })),
  },
}).createMachine({
  id: 'globalView',
  initial: 'reporting',
  context: ({ input }) => ({
    geozone: input.geozone,
    summaryEveryMs: input.summaryEveryMs,
    silentPeriods: input.silentPeriods,
    recentWindow: input.recentWindow,
    latest: input.summary,
    recent: [],
    summaries: 1,
    silentAfterMs: input.summary.receivedAtMs + input.silentPeriods * input.summaryEveryMs,
    silentSinceMs: null,
  }),
  states: {
    reporting: {
      on: {
        summary: { actions: 'takeSummary' },
        deadline: { guard: 'silenceDue', target: 'silent', actions: 'goSilent' },
      },
    },
    silent: {
      on: { summary: { target: 'reporting', actions: 'takeSummary' } },
    },
  },
});
