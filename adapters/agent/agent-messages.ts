import { z } from 'zod';
import { inferenceDispatchSchema } from '../../actors/wire-out.js';
import { trainTaskSchema } from '../../actors/training-wire.js';
import { geozone, id } from '../../actors/wire.js';

/**
 * The node-agent protocol on `/v1/agent`: JSON text frames, kebab-case fields
 * as on the seed's Kafka topics.
 *
 * Agent → region:
 * - `{"type":"hello","node-id":"n1","geozone":"CAISO"?}` first (or `?node-id=n1&geozone=CAISO`
 *   on the upgrade URL, which counts as the hello);
 * - `{"type":"telemetry", ...NodeTelemetry v2}` and `{"type":"result", ...InferenceResult v1}`:
 *   the rest of the message after `type` (and `id`) must be exactly the seed's format, validated
 *   as on the HTTP and Kafka edges;
 * - `{"type":"ack","request-id":"r1"}` once a dispatch is taken (a result for it counts too);
 * - `{"type":"training-update", ...TrainingUpdate v1}` (actors/training-wire.ts): the node's weights
 *   for a round it was told to train; its acceptance also acknowledges the `train` message.
 *
 * Region → agent: `welcome` (answers the hello), `dispatch` (InferenceDispatch v1 fields),
 * `train` (TrainTask v1: a federated round to train, with its starting weights inline; sent at
 * least once, again after a reconnect until the node's update for that round is accepted or
 * the round's deadline passes), `accepted` (a telemetry, result or training update is durable),
 * `acked`, and `error` (a coded refusal).
 *
 * Every agent message may carry an `id` (a string or a non-negative integer of the agent's
 * choosing); the answer to it carries the same `id`, so an agent with several messages in
 * flight can tell which answer is whose. Answers to telemetry and results come once they are
 * durable, which for messages on different geozone shards need not be the order they were sent.
 */

export const AGENT_MESSAGE_TYPES = ['hello', 'telemetry', 'result', 'ack', 'training-update'] as const;
export type AgentMessageType = (typeof AGENT_MESSAGE_TYPES)[number];

export const clientIdSchema = z.union([
  z.string().min(1).max(64).regex(/^[A-Za-z0-9._:-]+$/, 'letters, digits and . _ : - only'),
  z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
]);
export type ClientId = z.infer<typeof clientIdSchema>;

/** What every agent message has; the rest is checked by its type. */
export const envelopeSchema = z.looseObject({ type: z.enum(AGENT_MESSAGE_TYPES), id: clientIdSchema.optional() });

export const helloSchema = z.strictObject({ type: z.literal('hello'), id: clientIdSchema.optional(), 'node-id': id, geozone: geozone.optional() });
export const ackSchema = z.strictObject({ type: z.literal('ack'), id: clientIdSchema.optional(), 'request-id': id });

/** The upgrade URL's query (other parameters, such as a ticket, are not the protocol's). */
export const upgradeQuerySchema = z.object({ 'node-id': id.optional(), geozone: geozone.optional() });

const withId = { id: clientIdSchema.optional() };
const errorCode = z.string().regex(/^ARC_ERR_[A-Z_]+$/);

/** Everything the region sends an agent, for agents (and tests) to validate against. */
export const welcomeSchema = z.strictObject({
  type: z.literal('welcome'),
  ...withId,
  'node-id': id,
  /** Dispatches waiting for this node, sent right after this message. */
  pending: z.number().int().nonnegative(),
});
export const dispatchMessageSchema = inferenceDispatchSchema.extend({ type: z.literal('dispatch') });
export const acceptedSchema = z.strictObject({
  type: z.literal('accepted'),
  ...withId,
  kind: z.enum(['telemetry', 'result', 'training-update']),
  'request-id': id.optional(),
});
export const ackedSchema = z.strictObject({ type: z.literal('acked'), ...withId, 'request-id': id });
export const agentErrorSchema = z.strictObject({ type: z.literal('error'), ...withId, code: errorCode, message: z.string() });
export const trainMessageSchema = trainTaskSchema;
export const regionToAgentSchema = z.discriminatedUnion('type', [welcomeSchema, dispatchMessageSchema, trainMessageSchema, acceptedSchema, ackedSchema, agentErrorSchema]);

export type WelcomeMessage = z.infer<typeof welcomeSchema>;
export type AcceptedMessage = z.infer<typeof acceptedSchema>;
export type AckedMessage = z.infer<typeof ackedSchema>;
export type AgentErrorMessage = z.infer<typeof agentErrorSchema>;
export type RegionToAgentMessage = z.infer<typeof regionToAgentSchema>;
