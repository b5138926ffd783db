import { z } from 'zod';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { nodeStatuses } from '../../machines/node.js';
import { geozone, id, inferenceRequestSchema, inferenceResultSchema, isoTimestamp, nodeTelemetrySchema } from '../../actors/wire.js';
import { inferenceDecisionSchema } from '../../actors/wire-out.js';

/**
 * The HTTP API's query schemas (zod, validated in the handlers with coded
 * errors) and its OpenAPI route descriptions, made from the same zod schemas
 * that validate the bodies at the edge, so the document cannot drift from what
 * the API accepts.
 */

/** A query string checked by its schema; a refusal is ARC_ERR_VALIDATION naming the first bad parameter. */
export function parseQuery<T>(schema: z.ZodType<T>, query: unknown): T {
  const parsed = schema.safeParse(query);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new ArcError(ErrorCodes.VALIDATION, `bad query: ${issue === undefined ? 'invalid' : `${issue.path.join('.') || '(query)'}: ${issue.message}`}`);
}

const offset = z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const nodesQuerySchema = z.strictObject({
  geozone: geozone.optional(),
  status: z.enum(nodeStatuses).optional(),
  model: id.optional(),
  /** Page size (nodes are sorted by id). */
  limit: z.coerce.number().int().min(1).max(10_000).default(1_000),
  /** Continue after this node id (the `next` of the previous page). */
  after: id.optional(),
});
export type NodesQuery = z.infer<typeof nodesQuerySchema>;

export const historyQuerySchema = z
  .strictObject({
    /** The node's document as of this time (logical time of the journal)... */
    at: isoTimestamp.optional(),
    /** ...or as of this journal offset of the node's shard. */
    offset: offset.optional(),
    /** Changes from this time / offset (inclusive)... */
    from: isoTimestamp.optional(),
    'from-offset': offset.optional(),
    /** ...to this time / offset (inclusive). */
    to: isoTimestamp.optional(),
    'to-offset': offset.optional(),
    /** Most changes in one answer; `changes.next` says where to continue. */
    limit: z.coerce.number().int().min(1).max(1_000).default(100),
  })
  .refine((q) => q.at === undefined || q.offset === undefined, { message: 'give at or offset, not both', path: ['at'] })
  .refine((q) => q.from === undefined || q['from-offset'] === undefined, { message: 'give from or from-offset, not both', path: ['from'] })
  .refine((q) => q.to === undefined || q['to-offset'] === undefined, { message: 'give to or to-offset, not both', path: ['to'] });
export type HistoryQuery = z.infer<typeof historyQuerySchema>;

const errorSchema = z.object({ code: z.string(), message: z.string() });

const nodeDocumentSchema = z.object({
  id,
  name: z.string().nullable(),
  geozone,
  geohash: z.string(),
  energySource: z.enum(['cogen', 'grid', 'battery']),
  batteryLevel: z.number(),
  gpuUtilization: z.number(),
  gpuCount: z.number().int(),
  modelsLoaded: z.array(z.string()),
  status: z.enum(nodeStatuses),
  lastSeenAtMs: z.number(),
  reservations: z.array(z.string()),
});

const historySchema = z.object({
  nodeId: id,
  geozone,
  asOf: z
    .object({ offset: z.number().int(), time: isoTimestamp.nullable(), node: nodeDocumentSchema.nullable() })
    .optional()
    .describe('present when at or offset was given'),
  changes: z
    .object({
      items: z.array(z.object({ offset: z.number().int(), time: isoTimestamp, event: z.string(), status: z.string(), details: z.record(z.string(), z.unknown()) })),
      next: z.number().int().nullable().describe('the offset to continue from (from-offset), null when the range is done'),
    })
    .optional(),
});

const json = (schema: z.ZodType, io: 'input' | 'output' = 'output'): Record<string, unknown> => {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
};

const errors = (...codes: number[]): Record<number, Record<string, unknown>> =>
  Object.fromEntries(codes.map((code) => [code, { description: errorDescriptions[code] ?? 'error', ...json(errorSchema) }]));

const errorDescriptions: Record<number, string> = {
  400: 'the body or query failed validation (ARC_ERR_VALIDATION, ARC_ERR_MALFORMED_JSON)',
  401: 'no API key, or an unknown one (ARC_ERR_UNAUTHENTICATED)',
  403: "the key's role or geozones do not allow this (ARC_ERR_FORBIDDEN)",
  404: 'not found, or not visible to this key (ARC_ERR_NOT_FOUND)',
  413: 'body over the size limit, refused before parsing (ARC_ERR_PAYLOAD_TOO_LARGE)',
  429: "the key's request budget is spent; see Retry-After (ARC_ERR_RATE_LIMITED)",
  503: 'overloaded, or the shard is stopped (ARC_ERR_OVERLOADED, ARC_ERR_SHARD_STOPPED)',
};

const secured = [{ apiKey: [] }];
const pathId = { type: 'object', properties: { id: json(id) }, required: ['id'] };

/** OpenAPI descriptions of every route (fastify route `schema`s, used for documentation only). */
export function describeRoutes(): Record<string, Record<string, unknown>> {
  const accepted = { 202: { description: 'accepted once durable', ...json(z.object({ accepted: z.literal(true) })) } };
  return {
    healthz: { tags: ['health'], summary: 'Liveness', response: { 200: json(z.object({ status: z.literal('ok') })) } },
    readyz: { tags: ['health'], summary: 'Ready once every owned shard has recovered', response: { 200: json(z.object({ status: z.string() })), 503: json(z.object({ status: z.string() })) } },
    inference: {
      tags: ['inference'],
      summary: 'Route an inference request (InferenceRequest v1); answered once the decision is durable',
      security: secured,
      body: json(inferenceRequestSchema, 'input'),
      response: {
        202: { description: 'reserved on a node', ...json(inferenceDecisionSchema) },
        409: { description: 'the request id was already seen (ARC_ERR_DUPLICATE_REQUEST)', ...json(errorSchema) },
        503: { description: 'no eligible node anywhere (ARC_ERR_NO_CAPACITY), or overloaded', ...json(errorSchema) },
        ...errors(400, 401, 403, 413, 429),
      },
    },
    telemetry: { tags: ['agents'], summary: 'Node telemetry (NodeTelemetry v2)', security: secured, body: json(nodeTelemetrySchema, 'input'), response: { ...accepted, ...errors(400, 401, 403, 413, 429, 503) } },
    result: { tags: ['agents'], summary: 'Inference result (InferenceResult v1)', security: secured, body: json(inferenceResultSchema, 'input'), response: { ...accepted, ...errors(400, 401, 403, 413, 429, 503) } },
    nodes: {
      tags: ['nodes'],
      summary: 'Nodes, filtered by geozone, status and model, by id',
      security: secured,
      querystring: json(nodesQuerySchema, 'input'),
      response: { 200: json(z.object({ nodes: z.array(nodeDocumentSchema), next: id.nullable() })), ...errors(400, 401, 403, 429) },
    },
    node: { tags: ['nodes'], summary: 'One node', security: secured, params: pathId, response: { 200: json(nodeDocumentSchema), ...errors(401, 404, 429) } },
    history: {
      tags: ['nodes'],
      summary: "A node's document as of a time or journal offset, and its changes over a range (from the journal)",
      security: secured,
      params: pathId,
      querystring: json(historyQuerySchema, 'input'),
      response: { 200: json(historySchema), ...errors(400, 401, 404, 429) },
    },
    reservation: { tags: ['inference'], summary: 'A live reservation by request id', security: secured, params: pathId, response: { 200: { type: 'object' }, ...errors(401, 404, 429) } },
    summary: { tags: ['nodes'], summary: 'Regional summaries, one per geozone', security: secured, response: { 200: { type: 'object' }, ...errors(401, 429) } },
    drain: { tags: ['operators'], summary: 'Drain a node: it takes no new reservation', security: secured, params: pathId, response: { ...accepted, ...errors(401, 403, 404, 429) } },
    resume: { tags: ['operators'], summary: 'Resume a drained node', security: secured, params: pathId, response: { ...accepted, ...errors(401, 403, 404, 429) } },
    ticket: {
      tags: ['console'],
      summary: 'A short-lived single-use ticket for the console WebSocket (/telemetry?ticket=...), for browsers',
      security: secured,
      response: { 201: json(z.object({ ticket: z.string(), 'expires-at': isoTimestamp })), ...errors(401, 404, 429) },
    },
    metrics: { tags: ['health'], summary: 'Prometheus text exposition (needs a key that reaches every geozone)', security: secured, response: { 200: { type: 'string' }, ...errors(401, 403, 429) } },
  };
}
