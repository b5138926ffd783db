import { z } from 'zod';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { energySources, nodeStatuses } from '../../machines/node.js';
import { priorities } from '../../machines/reservation.js';
import { fraction, geozone, id, inferenceRequestSchema, inferenceResultSchema, isoTimestamp, nodeTelemetrySchema } from '../../actors/wire.js';
import { inferenceDecisionSchema } from '../../actors/wire-out.js';
import { federatedTaskSchema, trainingUpdateSchema } from '../../actors/training-wire.js';
import { codesWithStatus, regionStatusOf } from './error-replies.js';
import { errorBodySchema, errorResponse, headerDocs, jsonResponse, jsonSchemaOf, mediaResponse, type ResponseDoc } from './response-docs.js';

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


const nodeDocumentSchema = z.strictObject({
  id,
  name: z.string().nullable(),
  geozone,
  geohash: z.string(),
  energySource: z.enum(energySources),
  batteryLevel: z.number(),
  gpuUtilization: z.number(),
  gpuCount: z.number().int(),
  modelsLoaded: z.array(z.string()),
  status: z.enum(nodeStatuses),
  lastSeenAtMs: z.number(),
  reservations: z.array(z.string()),
});

const historySchema = z.strictObject({
  nodeId: id,
  geozone,
  asOf: z
    .strictObject({ offset: z.number().int(), time: isoTimestamp.nullable(), node: nodeDocumentSchema.nullable() })
    .optional()
    .describe('present when at or offset was given'),
  changes: z
    .strictObject({
      items: z.array(z.strictObject({ offset: z.number().int(), time: isoTimestamp, event: z.string(), status: z.string(), details: z.record(z.string(), z.unknown()) })),
      next: z.number().int().nullable().describe('the offset to continue from (from-offset), null when the range is done'),
    })
    .optional(),
});

const msOrNull = z.number().nullable();

/** A live reservation: its actor's context, with its geozone and state. */
const reservationDocumentSchema = z.strictObject({
  requestId: z.string(),
  modelId: z.string(),
  contextWindow: z.number().int(),
  priority: z.enum(priorities),
  requesterGeozone: z.string(),
  requesterGeohash: z.string().optional(),
  triedGeozones: z.array(z.string()),
  receivedAtMs: z.number(),
  reservationTtlMs: z.number(),
  maxAttempts: z.number().int(),
  nodeId: z.string().nullable(),
  reservedAtMs: msOrNull,
  expiresAtMs: msOrNull,
  attempts: z.number().int(),
  lostNodes: z.array(z.string()),
  reason: z.string().nullable(),
  latencyMs: msOrNull,
  endedAtMs: msOrNull,
  forwardedTo: z.string().nullable(),
  forwardedAtMs: msOrNull,
  geozone,
  state: z.string(),
});

const count = z.number().int().nonnegative();
const summarySchema = z.strictObject({
  geozoneId: geozone,
  atMs: z.number(),
  totalNodes: count,
  activeNodes: count,
  avgGpuUtil: fraction,
  energyBreakdown: z.strictObject({ cogen: count, grid: count, battery: count }),
  openReservations: count,
});

const sha = z.string().regex(/^[0-9a-f]{64}$/);
const isoOrNull = isoTimestamp.nullable();
/** GET /v1/training/:id and the answer to POST /v1/training. */
const trainingJobDocumentSchema = z.strictObject({
  'job-id': z.string(),
  geozone,
  'model-id': z.string(),
  'dataset-uri': z.string(),
  'checkpoint-uri': z.string(),
  rounds: z.number().int(),
  'min-participants': z.number().int(),
  'aggregate-when': z.enum(['quorum', 'all']).describe('quorum: a round closes once min-participants answered; all: once every participant answered (the deadline closes either)'),
  state: z.enum(['training', 'done', 'failed', 'cancelled']),
  'failure-reason': z.string().nullable(),
  'failure-detail': z.string().nullable(),
  'accepted-at': isoTimestamp,
  'ended-at': isoOrNull,
  selection: z.strictObject({ eligible: count, reason: z.string() }).describe('how the participants were chosen'),
  participants: z.array(z.strictObject({ 'node-id': z.string(), 'energy-source': z.enum(energySources), 'gpu-utilization': z.number(), part: count, 'dataset-shard-uri': z.string() })),
  'round-history': z.array(
    z.strictObject({
      round: z.number().int(),
      'started-at': isoTimestamp,
      deadline: isoTimestamp,
      'start-weights-sha256': sha.nullable(),
      updates: z.array(z.strictObject({ 'node-id': z.string(), 'sample-count': count, 'weights-sha256': sha, loss: z.number().nullable(), accuracy: z.number().nullable() })).describe('the updates counted'),
      dropped: z.array(z.string()),
      stragglers: z.array(z.string()).describe('participants that had not answered when the round closed (at quorum or at its deadline)'),
      late: z.array(z.string()).describe('stragglers whose update came after the round closed: not counted'),
      'closed-at': isoOrNull,
      'closed-by': z.enum(['quorum', 'all', 'deadline']).nullable().describe('what closed the round: min-participants answered, every participant answered, or the deadline'),
      'aggregate-sha256': sha.nullable(),
      accuracy: z.number().nullable().describe("the aggregate's accuracy on the held-out split, measured by the region"),
      loss: z.number().nullable(),
      'checkpoint-uri': z.string().nullable(),
      'checkpoint-sha256': sha.nullable(),
    }),
  ),
  'actor-state': z.string().nullable().describe("the federated-round actor's state while it runs; null once the job ended"),
});

const [reservedDecision, unreservedDecision] = inferenceDecisionSchema.options;
/** A refused inference request: the coded error and the InferenceDecision v1 a Kafka requester would read. */
const refusedDecision = (code: string, outcome: 'rejected' | 'duplicate'): z.ZodType =>
  unreservedDecision.extend({ code: z.literal(code), message: z.string(), outcome: z.literal(outcome) });

const codes = (status: number): string[] => codesWithStatus(regionStatusOf, status);
const shardUnavailable = (): ResponseDoc => errorResponse('the shard is overloaded or stopped: retry later (ARC_ERR_OVERLOADED, ARC_ERR_SHARD_STOPPED, ARC_ERR_JOURNAL_WRITE)', codes(503));
const unknownShard = (): ResponseDoc => errorResponse('the geozone is not one this region owns (ARC_ERR_UNKNOWN_SHARD)', codes(422));
const notFound = (what: string): ResponseDoc => errorResponse(`${what} (ARC_ERR_NOT_FOUND)`, codes(404));
const pathId = { type: 'object', properties: { id: jsonSchemaOf(id) }, required: ['id'] };
const accepted = (): ResponseDoc => jsonResponse('accepted once durable', z.strictObject({ accepted: z.literal(true) }));

/**
 * OpenAPI descriptions of every route (fastify route `schema`s, used for
 * documentation only): each route's own bodies and statuses. Those that follow
 * from a route's declaration (401/403/429 for a permission, 413/415 for a body,
 * 405 and 500 for all) are added by documentStandardResponses.
 */
export function describeRoutes(): Record<string, Record<string, unknown>> {
  return {
    healthz: { tags: ['health'], summary: 'Liveness', response: { 200: jsonResponse('alive', z.strictObject({ status: z.literal('ok') })) } },
    readyz: {
      tags: ['health'],
      summary: 'Ready once every owned shard has recovered',
      response: {
        200: jsonResponse('every owned shard has recovered', z.strictObject({ status: z.literal('ready') })),
        503: jsonResponse(
          'still recovering, or waiting for the journal (a Kafka broker not reachable yet); `reason` says which, without naming geozones',
          z.strictObject({ status: z.literal('recovering'), reason: z.string().max(512).optional() }),
        ),
      },
    },
    ownership: {
      tags: ['health'],
      summary: 'The geozones this process owns (in the key scope) and whether each has recovered; the journal it runs on',
      response: {
        200: jsonResponse(
          'owned geozones',
          z.strictObject({
            journal: z.enum(['lmdb', 'kafka']),
            geozones: z.array(z.strictObject({ geozone: z.string(), ready: z.boolean() })),
          }),
        ),
      },
    },
    inference: {
      tags: ['inference'],
      summary: 'Route an inference request (InferenceRequest v1); answered once the decision is durable',
      body: jsonSchemaOf(inferenceRequestSchema, 'input'),
      response: {
        202: jsonResponse('reserved on a node (InferenceDecision v1)', reservedDecision),
        409: jsonResponse('the request id was already seen from this geozone (ARC_ERR_DUPLICATE_REQUEST)', refusedDecision(ErrorCodes.DUPLICATE_REQUEST, 'duplicate')),
        422: unknownShard(),
        503: jsonResponse(
          'no eligible node anywhere (ARC_ERR_NO_CAPACITY, with the decision), or the shard is overloaded or stopped',
          z.union([refusedDecision(ErrorCodes.NO_CAPACITY, 'rejected'), errorBodySchema(codes(503))]),
        ),
      },
    },
    telemetry: {
      tags: ['agents'],
      summary: 'Node telemetry (NodeTelemetry v2)',
      body: jsonSchemaOf(nodeTelemetrySchema, 'input'),
      response: { 202: accepted(), 422: unknownShard(), 503: shardUnavailable() },
    },
    result: {
      tags: ['agents'],
      summary: 'Inference result (InferenceResult v1)',
      body: jsonSchemaOf(inferenceResultSchema, 'input'),
      response: { 202: accepted(), 422: unknownShard(), 503: shardUnavailable() },
    },
    training: {
      tags: ['training'],
      summary: 'Start a federated training job (FederatedTask v1) in its geozone; answered once durable with the job (failed at once when too few nodes are eligible)',
      body: jsonSchemaOf(federatedTaskSchema, 'input'),
      response: {
        202: jsonResponse('the job, its participants and why', trainingJobDocumentSchema),
        409: errorResponse('the job id was already used (ARC_ERR_DUPLICATE_JOB)', [ErrorCodes.DUPLICATE_JOB]),
        422: errorResponse('the geozone is not owned here, or the data set cannot be read (ARC_ERR_UNKNOWN_SHARD, ARC_ERR_DATASET)', codes(422)),
        503: shardUnavailable(),
      },
    },
    trainingUpdate: {
      tags: ['agents'],
      summary: "A participant's weights for a round (TrainingUpdate v1): inline (base64 float32 little-endian) or by SHA-256 of a stored blob",
      body: jsonSchemaOf(trainingUpdateSchema, 'input'),
      response: {
        202: accepted(),
        404: notFound('no such training job in the geozones this key reaches'),
        422: errorResponse('weights referenced by a hash the region does not hold (ARC_ERR_BLOB_MISSING)', codes(422)),
        503: shardUnavailable(),
      },
    },
    trainingJob: {
      tags: ['training'],
      summary: 'A training job: rounds, participants, stragglers, held-out accuracy per round, checkpoints',
      params: pathId,
      response: { 200: jsonResponse('the job', trainingJobDocumentSchema), 404: notFound('no such training job in the geozones this key reaches') },
    },
    nodes: {
      tags: ['nodes'],
      summary: 'Nodes, filtered by geozone, status and model, by id',
      querystring: jsonSchemaOf(nodesQuerySchema, 'input'),
      response: { 200: jsonResponse('one page of nodes; next is the after of the next page', z.strictObject({ nodes: z.array(nodeDocumentSchema), next: id.nullable() })) },
    },
    node: { tags: ['nodes'], summary: 'One node', params: pathId, response: { 200: jsonResponse('the node', nodeDocumentSchema), 404: notFound('no such node in the geozones this key reaches') } },
    history: {
      tags: ['nodes'],
      summary: "A node's document as of a time or journal offset, and its changes over a range (from the journal)",
      params: pathId,
      querystring: jsonSchemaOf(historyQuerySchema, 'input'),
      response: {
        200: jsonResponse("the node's history", historySchema),
        404: notFound('no such node in the geozones this key reaches'),
        503: errorResponse('another history query is running: retry in a moment (ARC_ERR_OVERLOADED)', [ErrorCodes.OVERLOADED]),
      },
    },
    reservation: {
      tags: ['inference'],
      summary: 'A live reservation by request id',
      params: pathId,
      response: { 200: jsonResponse('the reservation', reservationDocumentSchema), 404: notFound('no live reservation with that request id in the geozones this key reaches') },
    },
    summary: {
      tags: ['nodes'],
      summary: 'Regional summaries, one per geozone this key reaches',
      response: { 200: jsonResponse('the summaries', z.strictObject({ summaries: z.array(summarySchema) })) },
    },
    drain: {
      tags: ['operators'],
      summary: 'Drain a node: it takes no new reservation',
      params: pathId,
      response: { 202: accepted(), 404: notFound('no such node in the geozones this key reaches'), 503: shardUnavailable() },
    },
    resume: {
      tags: ['operators'],
      summary: 'Resume a drained node',
      params: pathId,
      response: { 202: accepted(), 404: notFound('no such node in the geozones this key reaches'), 503: shardUnavailable() },
    },
    ticket: {
      tags: ['console'],
      summary: 'A short-lived single-use ticket for the console WebSocket (/telemetry?ticket=...), for browsers',
      response: {
        201: jsonResponse('a ticket', z.strictObject({ ticket: z.string(), 'expires-at': isoTimestamp })),
        404: notFound('no API keys are configured: connect to the console directly'),
      },
    },
    metrics: {
      tags: ['health'],
      summary: 'Prometheus text exposition (needs a key that reaches every geozone)',
      response: { 200: mediaResponse('the exposition', ['text/plain']) },
    },
  };
}

/** Query parameters of the console feed (see adapters/console): which geozones and message types to receive. */
const consoleQuerySchema = z.object({
  geozones: z.string().optional().describe('comma-separated geozones (within the key\'s)'),
  types: z.string().optional().describe('comma-separated message types: telemetry, inference, hpc, system, actors'),
  ticket: z.string().optional().describe('a ticket from POST /v1/console/tickets, for clients that cannot send headers'),
});

/** The console WebSocket endpoint: answered by its upgrade handler; a plain GET is told to upgrade. */
export function describeConsoleRoute(): Record<string, unknown> {
  return {
    tags: ['console'],
    summary: 'The console feed (WebSocket): connect with a WebSocket client, an API key (Bearer) or a ticket',
    security: [{ apiKey: [] }, {}],
    querystring: jsonSchemaOf(consoleQuerySchema, 'input'),
    response: {
      101: { description: 'switched to the WebSocket protocol: console messages follow', type: 'null' },
      400: errorResponse('a bad filter in the query string (ARC_ERR_VALIDATION)', [ErrorCodes.VALIDATION]),
      401: errorResponse('no API key or ticket, or an unknown one (ARC_ERR_UNAUTHENTICATED)', codes(401)),
      403: errorResponse("the key's role may not read (ARC_ERR_FORBIDDEN)", codes(403)),
      426: errorResponse('a plain request, not a WebSocket upgrade (ARC_ERR_UPGRADE_REQUIRED)', codes(426), { upgrade: { type: 'string', description: 'websocket' } }),
      429: errorResponse("the key's request budget is spent; see Retry-After (ARC_ERR_RATE_LIMITED)", codes(429), { 'retry-after': headerDocs.retryAfter }),
      503: errorResponse('the feed is at its client limit or shutting down: retry later (ARC_ERR_OVERLOADED)', [ErrorCodes.OVERLOADED]),
    },
  };
}

/** Query parameters of the agent channel's upgrade (see adapters/agent): who is connecting, so scope is checked before the upgrade. */
const agentQuerySchema = z.object({
  'node-id': z.string().optional().describe('the node this connection speaks for (or say it in the first message, hello)'),
  geozone: z.string().optional().describe("the node's geozone, when the region does not know the node yet"),
});

/** The node-agent WebSocket endpoint: answered by its upgrade handler; a plain GET is told to upgrade. */
export function describeAgentRoute(): Record<string, unknown> {
  return {
    tags: ['agents'],
    summary: 'The node-agent channel (WebSocket): telemetry and results in, dispatches out (at least once, acknowledged); an agent key (Bearer)',
    security: [{ apiKey: [] }, {}],
    querystring: jsonSchemaOf(agentQuerySchema, 'input'),
    response: {
      101: { description: 'switched to the WebSocket protocol: hello, then telemetry, result and ack messages', type: 'null' },
      400: errorResponse('a bad node id or geozone in the query string (ARC_ERR_VALIDATION)', [ErrorCodes.VALIDATION]),
      401: errorResponse('no API key, or an unknown one (ARC_ERR_UNAUTHENTICATED)', codes(401)),
      403: errorResponse("the key's role may not post agent data, or the node's geozone is outside its scope (ARC_ERR_FORBIDDEN)", codes(403)),
      426: errorResponse('a plain request, not a WebSocket upgrade (ARC_ERR_UPGRADE_REQUIRED)', codes(426), { upgrade: { type: 'string', description: 'websocket' } }),
      429: errorResponse("the key's request budget is spent; see Retry-After (ARC_ERR_RATE_LIMITED)", codes(429), { 'retry-after': headerDocs.retryAfter }),
      503: errorResponse('the channel is at its agent limit or shutting down: retry later (ARC_ERR_OVERLOADED)', [ErrorCodes.OVERLOADED]),
    },
  };
}
