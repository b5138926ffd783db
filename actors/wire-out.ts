import { z } from 'zod';
import { energySources } from '../machines/node.js';
import { priorities } from '../machines/reservation.js';
import type { RequestOutcome } from './region-io.js';
import { fraction, geozone, id, isoTimestamp, limits } from './wire.js';

/**
 * The wire formats of what a region publishes (kebab-case JSON, exactly as
 * effectToWire in adapters/bus/topics.ts writes them), as strict zod schemas:
 * consumers of the region's output validate with these, and tests check that
 * the region's effects conform. The input formats are in wire.ts.
 */

const count = z.number().int().nonnegative();
/** Free text written by the runtime (reasons, event messages). */
const text = z.string().max(1024);

/** arc.command.dispatch.{geozone} — InferenceDispatch v1: a node is told to run an inference. */
export const inferenceDispatchSchema = z.strictObject({
  'request-id': id,
  'node-id': id,
  'model-id': id,
  'context-window': z.number().int().positive().max(limits.maxContextWindow),
  priority: z.enum(priorities),
  /** When the node's reservation expires (the request must have started by then). */
  'expires-at': isoTimestamp,
});
export type InferenceDispatchV1 = z.infer<typeof inferenceDispatchSchema>;

/** arc.summary.regional — RegionalSummary v1, every 60 s per geozone. */
export const regionalSummarySchema = z
  .strictObject({
    'geozone-id': geozone,
    'total-nodes': count,
    /** Nodes online or draining. */
    'active-nodes': count,
    /** Mean GPU utilisation over active nodes; 0 when none. */
    'avg-gpu-util': fraction,
    /** Active nodes by energy source. */
    'energy-breakdown': z.strictObject({ cogen: count, grid: count, battery: count }),
    'open-reservations': count,
    timestamp: isoTimestamp,
  })
  .refine((s) => s['active-nodes'] <= s['total-nodes'], { message: 'active-nodes exceeds total-nodes', path: ['active-nodes'] })
  .refine((s) => energySources.reduce((sum, source) => sum + s['energy-breakdown'][source], 0) === s['active-nodes'], {
    message: 'energy-breakdown does not add up to active-nodes',
    path: ['energy-breakdown'],
  });
export type RegionalSummaryV1 = z.infer<typeof regionalSummarySchema>;

export const severities = ['info', 'warn', 'error', 'success'] as const;

/** arc.event.system — SystemEvent v1 (node offline/recovered, request rejected, poison message, shard moved...). */
export const systemEventSchema = z.strictObject({
  severity: z.enum(severities),
  message: text.min(1),
  details: z.record(z.string(), z.json()),
  timestamp: isoTimestamp,
});
export type SystemEventV1 = z.infer<typeof systemEventSchema>;

/**
 * arc.decision.inference — InferenceDecision v1, the requester's answer: a
 * reservation (node and expiry), or a rejection or duplicate (neither).
 */
export const inferenceDecisionSchema = z.discriminatedUnion('outcome', [
  z.strictObject({
    'request-id': id,
    outcome: z.literal('reserved'),
    geozone,
    'node-id': id,
    'expires-at': isoTimestamp,
    candidates: count,
    reason: text,
    timestamp: isoTimestamp,
  }),
  z.strictObject({
    'request-id': id,
    outcome: z.enum(['rejected', 'duplicate']),
    geozone,
    'node-id': z.null(),
    'expires-at': z.null(),
    candidates: count,
    reason: text,
    timestamp: isoTimestamp,
  }),
]);
export type InferenceDecisionV1 = z.infer<typeof inferenceDecisionSchema>;

export const requestOutcomes = ['completed', 'failed', 'expired', 'released', 'rejected'] as const;
// Compile-time check: the list is exactly region-io.ts's RequestOutcome.
type ListedOutcome = (typeof requestOutcomes)[number];
const _sameOutcomes: [RequestOutcome] extends [ListedOutcome] ? ([ListedOutcome] extends [RequestOutcome] ? true : never) : never = true;

/** arc.reservation.ended — ReservationEnded v1: a request's one terminal outcome. */
export const reservationEndedSchema = z.strictObject({
  'request-id': id,
  outcome: z.enum(requestOutcomes),
  geozone,
  /** The node it ended on; null when it never had one. */
  'node-id': id.nullable(),
  reason: text.nullable(),
  timestamp: isoTimestamp,
});
export type ReservationEndedV1 = z.infer<typeof reservationEndedSchema>;

/** The output schemas by effect type (the effects effectToWire publishes). */
export const wireOutSchemas = {
  dispatch: inferenceDispatchSchema,
  summary: regionalSummarySchema,
  system: systemEventSchema,
  decision: inferenceDecisionSchema,
  ended: reservationEndedSchema,
} as const;
export type WireOutKind = keyof typeof wireOutSchemas;
