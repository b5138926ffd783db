import { z } from 'zod';
import { energySources } from '../machines/node.js';
import { priorities } from '../machines/reservation.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import type { RegionInput } from './region-io.js';

/**
 * The seed's message formats (kebab-case JSON), validated at the edge. Anything
 * that fails here gets a coded error and never reaches an actor: strict objects
 * (no unknown keys), bounded strings and arrays, and a byte limit checked before
 * the JSON is even parsed.
 */
export const limits = {
  /** Largest accepted message, in bytes of UTF-8 JSON. */
  maxMessageBytes: 16 * 1024,
  maxIdLength: 128,
  maxModelsLoaded: 64,
  maxContextWindow: 10_000_000,
} as const;

/** Field rules shared by the input schemas here and the output schemas in wire-out.ts. */
export const id = z.string().min(1).max(limits.maxIdLength).regex(/^[A-Za-z0-9._:@/-]+$/, 'letters, digits and . _ : @ / - only');
export const geozone = z.string().min(1).max(32).regex(/^[A-Z0-9_-]+$/, 'upper-case letters, digits, _ and - only');
export const fraction = z.number().min(0).max(1);
export const isoTimestamp = z.iso.datetime({ offset: true });
export const geohash = z.string().min(1).max(12).regex(/^[0-9b-hjkmnp-z]+$/, 'geohash base-32 alphabet');

/** arc.telemetry.node — NodeTelemetry v2 */
export const nodeTelemetrySchema = z.strictObject({
  'node-id': id,
  geozone,
  geohash,
  'energy-source': z.enum(energySources),
  'battery-level': fraction,
  'gpu-utilization': fraction,
  'models-loaded': z.array(id).max(limits.maxModelsLoaded),
  timestamp: isoTimestamp,
  'node-name': z.string().min(1).max(128).optional(),
  'gpu-count': z.number().int().min(1).max(64).optional(),
  status: z.enum(['online', 'draining']).optional(),
});
export type NodeTelemetryV2 = z.infer<typeof nodeTelemetrySchema>;

/** arc.request.inference — InferenceRequest v1 */
export const inferenceRequestSchema = z.strictObject({
  'request-id': id,
  'model-id': id,
  'context-window': z.number().int().positive().max(limits.maxContextWindow),
  priority: z.enum(priorities),
  'requester-geozone': geozone,
  /** Where the requester is (optional): the console draws the request from there. */
  'requester-geohash': geohash.optional(),
});
export type InferenceRequestV1 = z.infer<typeof inferenceRequestSchema>;

/** arc.result.inference — InferenceResult v1 */
export const inferenceResultSchema = z.strictObject({
  'request-id': id,
  'node-id': id,
  'latency-ms': z.number().nonnegative().max(24 * 3600 * 1000),
  status: z.enum(['completed', 'failed']),
});
export type InferenceResultV1 = z.infer<typeof inferenceResultSchema>;

/** GPUs assumed when a node's telemetry does not say (the seed: typically 4-8 per node). */
export const DEFAULT_GPU_COUNT = 8;

export function telemetryToInput(t: NodeTelemetryV2): RegionInput {
  return {
    type: 'telemetry',
    nodeId: t['node-id'],
    report: {
      ...(t['node-name'] === undefined ? {} : { nodeName: t['node-name'] }),
      geohash: t.geohash,
      geozone: t.geozone,
      energySource: t['energy-source'],
      batteryLevel: t['battery-level'],
      gpuUtilization: t['gpu-utilization'],
      gpuCount: t['gpu-count'] ?? DEFAULT_GPU_COUNT,
      modelsLoaded: [...t['models-loaded']],
      reportedAtMs: Date.parse(t.timestamp),
      draining: t.status === 'draining',
    },
  };
}

export function requestToInput(r: InferenceRequestV1): RegionInput {
  return {
    type: 'inference',
    request: {
      requestId: r['request-id'],
      modelId: r['model-id'],
      contextWindow: r['context-window'],
      priority: r.priority,
      requesterGeozone: r['requester-geozone'],
      ...(r['requester-geohash'] === undefined ? {} : { requesterGeohash: r['requester-geohash'] }),
    },
    triedGeozones: [],
  };
}

export function resultToInput(r: InferenceResultV1): RegionInput {
  return { type: 'result', requestId: r['request-id'], nodeId: r['node-id'], latencyMs: r['latency-ms'], status: r.status };
}

export const wireKinds = {
  telemetry: { schema: nodeTelemetrySchema, toInput: telemetryToInput },
  inference: { schema: inferenceRequestSchema, toInput: requestToInput },
  result: { schema: inferenceResultSchema, toInput: resultToInput },
} as const;
export type WireKind = keyof typeof wireKinds;

/**
 * Validates one raw message (a JSON string, bytes, or an already parsed value)
 * of the given kind and turns it into a region input. Throws ArcError with
 * ARC_ERR_PAYLOAD_TOO_LARGE, ARC_ERR_MALFORMED_JSON or ARC_ERR_VALIDATION.
 */
export function parseWire(kind: WireKind, raw: unknown): RegionInput {
  let value = raw;
  if (typeof raw === 'string' || raw instanceof Uint8Array) {
    const bytes = typeof raw === 'string' ? Buffer.byteLength(raw, 'utf8') : raw.byteLength;
    if (bytes > limits.maxMessageBytes) {
      throw new ArcError(ErrorCodes.PAYLOAD_TOO_LARGE, `${kind} message is ${bytes} bytes; the limit is ${limits.maxMessageBytes}`, { bytes, limit: limits.maxMessageBytes });
    }
    try {
      value = JSON.parse(typeof raw === 'string' ? raw : Buffer.from(raw).toString('utf8'));
    } catch (error) {
      throw new ArcError(ErrorCodes.MALFORMED_JSON, `${kind} message is not valid JSON: ${(error as Error).message}`);
    }
  }
  const { schema, toInput } = wireKinds[kind];
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message }));
    const first = issues[0];
    throw new ArcError(
      ErrorCodes.VALIDATION,
      `invalid ${kind} message: ${first === undefined ? 'unknown problem' : `${first.path || '(root)'}: ${first.message}`}`,
      { issues },
    );
  }
  return toInput(parsed.data as never);
}
