import { z } from 'zod';

/**
 * The ArcNet Console's WebSocket protocol (`/telemetry`): the seed's four
 * message types with its camelCase field names, plus one top-level `geozone`
 * on every message so clients (and the hub) can filter by it. Timestamps are
 * ISO-8601 renderings of the journal record's logical ms.
 *
 * Besides the four data messages, the feed speaks three small control messages:
 * `subscribe` (client → server), `subscribed` (the filter now in force) and
 * `error` (server → client, with an ARC_ERR_* code).
 */

/** The seed's four message types: what a client gets when it does not choose. */
export const seedMessageTypes = ['telemetry', 'inference', 'hpc', 'system'] as const;
/** Every type a client may ask for: the seed's, and `actors` (per-state counts, for the inspector). */
export const consoleMessageTypes = [...seedMessageTypes, 'actors'] as const;
export type ConsoleMessageType = (typeof consoleMessageTypes)[number];

/** Same rule as the seed's wire formats: upper-case geozone ids. */
export const consoleGeozoneSchema = z.string().min(1).max(32).regex(/^[A-Z0-9_-]+$/, 'upper-case letters, digits, _ and - only');
const timestamp = z.iso.datetime({ offset: true });
const fraction = z.number().min(0).max(1);
const id = z.string().max(256);

export const telemetryMessageSchema = z.strictObject({
  type: z.literal('telemetry'),
  geozone: consoleGeozoneSchema,
  node: z.strictObject({
    id: id.min(1),
    geohash: z.string().min(1).max(12),
    energySource: z.enum(['cogen', 'grid', 'battery']),
    batteryLevel: fraction,
    gpuUtilization: fraction,
    modelsLoaded: z.array(z.string()),
    timestamp,
  }),
});

export const inferenceStatuses = ['dispatched', 'processing', 'completed', 'failed'] as const;

export const inferenceMessageSchema = z.strictObject({
  type: z.literal('inference'),
  geozone: consoleGeozoneSchema,
  requestId: id.min(1),
  /** [lng, lat] */
  source: z.tuple([z.number().min(-180).max(180), z.number().min(-90).max(90)]),
  /** '' when the request never held a node (rejected before any reservation). */
  targetNodeId: id,
  modelId: id.min(1),
  priority: z.enum(['critical', 'normal', 'background']),
  status: z.enum(inferenceStatuses),
  latencyMs: z.number().nonnegative().optional(),
  timestamp,
});

export const hpcStatuses = ['pending', 'transferring', 'queued', 'running', 'completed'] as const;
export type HpcStatus = (typeof hpcStatuses)[number];

export const hpcMessageSchema = z.strictObject({
  type: z.literal('hpc'),
  geozone: consoleGeozoneSchema,
  jobId: id.min(1),
  /** '' while the job does not name the node its dataset comes from. */
  sourceNodeId: id,
  datasetSizeGb: z.number().nonnegative(),
  status: z.enum(hpcStatuses),
  /** 0..1 fraction of the dataset moved. */
  progress: fraction,
  bytesTransferred: z.number().int().nonnegative(),
  timestamp,
});

export const systemMessageSchema = z.strictObject({
  type: z.literal('system'),
  geozone: consoleGeozoneSchema,
  severity: z.enum(['info', 'warn', 'error', 'success']),
  message: z.string(),
  details: z.record(z.string(), z.unknown()).optional(),
  timestamp,
});

/**
 * `actors`: once per second per geozone shard, how many actors of each kind are
 * in each state, and the rate of routed, rejected and expired requests over the
 * last interval (sent only to clients that ask for it).
 */
export const actorsMessageSchema = z.strictObject({
  type: z.literal('actors'),
  geozone: consoleGeozoneSchema,
  timestamp,
  /** kind → state → actors. */
  counts: z.record(z.string(), z.record(z.string(), z.number().int().nonnegative())),
  /** Per second over the interval since the previous message of this geozone. */
  rates: z.strictObject({ routed: z.number().nonnegative(), rejected: z.number().nonnegative(), expired: z.number().nonnegative() }),
});

export const consoleMessageSchema = z.discriminatedUnion('type', [
  telemetryMessageSchema,
  inferenceMessageSchema,
  hpcMessageSchema,
  systemMessageSchema,
  actorsMessageSchema,
]);

export type TelemetryMessage = z.infer<typeof telemetryMessageSchema>;
export type InferenceMessage = z.infer<typeof inferenceMessageSchema>;
export type HpcMessage = z.infer<typeof hpcMessageSchema>;
export type SystemMessage = z.infer<typeof systemMessageSchema>;
export type ActorsMessage = z.infer<typeof actorsMessageSchema>;
export type ConsoleMessage = z.infer<typeof consoleMessageSchema>;

/** Most geozones one filter may name; more is a mistake, not a use. */
export const MAX_FILTER_GEOZONES = 64;

/**
 * Client → server: replace the connection's filter. An omitted field means
 * "everything" on that axis (still limited to the geozones the API key allows).
 */
export const subscribeRequestSchema = z.strictObject({
  type: z.literal('subscribe'),
  geozones: z.array(consoleGeozoneSchema).min(1).max(MAX_FILTER_GEOZONES).optional(),
  types: z.array(z.enum(consoleMessageTypes)).min(1).max(consoleMessageTypes.length).optional(),
});
export type SubscribeRequest = z.infer<typeof subscribeRequestSchema>;

/** Server → client: the filter now in force ('all' = no restriction beyond the key's). */
export const subscribedReplySchema = z.strictObject({
  type: z.literal('subscribed'),
  geozones: z.union([z.literal('all'), z.array(consoleGeozoneSchema)]),
  types: z.array(z.enum(consoleMessageTypes)),
});
export type SubscribedReply = z.infer<typeof subscribedReplySchema>;

/** Server → client: something the client sent or did was refused. */
export const errorReplySchema = z.strictObject({
  type: z.literal('error'),
  code: z.string().regex(/^ARC_ERR_[A-Z_]+$/),
  message: z.string(),
});
export type ErrorReply = z.infer<typeof errorReplySchema>;

/** The console's timestamp for a logical time in ms. */
export function consoleTimestamp(atMs: number): string {
  return new Date(atMs).toISOString();
}
