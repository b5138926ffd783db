import { z } from 'zod';
import { urgencySchema } from '../../machines/hpc-job.js';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { geozone, id, isoTimestamp, limits } from '../wire.js';
import { regionalSummarySchema, type RegionalSummaryV1 } from '../wire-out.js';
import type { RegionalSummary } from '../region-io.js';
import type { TrainingJob } from './central-io.js';

/**
 * The wire formats of the central orchestrator (kebab-case JSON, strict zod):
 * what it takes in (TrainingJob v1 on arc.job.submission, RegionalSummary v1 on
 * arc.summary.regional) and what it publishes for others (FederatedTask v1 on
 * arc.scheduler.training, which a region's federated rounds consume; HpcJob v1
 * on ornl.bridge.ingress). One module, so the region side imports the very
 * schema central writes with.
 */

export const centralTopics = {
  submission: 'arc.job.submission',
  summary: 'arc.summary.regional',
  training: 'arc.scheduler.training',
  bridgePending: 'arc.bridge.pending',
  hpcIngress: 'ornl.bridge.ingress',
  system: 'arc.event.system',
} as const;

/** Job ids name transfers, staging folders and batch jobs: a small alphabet safe for all three. */
export const jobId = z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, '1 to 128 letters, digits, . _ or -');
const uri = z.string().min(1).max(2048);
export const MAX_HYPER_PARAMETERS = 32;
/** Hyper-parameters: a small flat map of names to numbers, strings or booleans. */
const hyperParameters = z
  .record(z.string().min(1).max(64), z.union([z.number(), z.string().max(256), z.boolean()]))
  .refine((o) => Object.keys(o).length <= MAX_HYPER_PARAMETERS, { message: `at most ${MAX_HYPER_PARAMETERS} hyper-parameters` });

/** arc.job.submission and POST /v1/jobs — TrainingJob v1 */
export const trainingJobSchema = z.strictObject({
  'job-id': jobId,
  'dataset-uri': uri,
  'dataset-size-gb': z.number().nonnegative().max(1e9),
  'estimated-flops': z.number().nonnegative().max(1e30),
  'checkpoint-uri': uri,
  urgency: urgencySchema,
  'model-id': id.optional(),
  'source-node-id': id.optional(),
  'requester-geozone': geozone.optional(),
  /** Federated path only (defaults from the orchestrator's configuration). */
  rounds: z.number().int().min(1).max(1000).optional(),
  'min-participants': z.number().int().min(1).max(10_000).optional(),
  participants: z.number().int().min(1).max(10_000).optional(),
  'round-deadline-ms': z.number().int().min(1_000).max(24 * 3600_000).optional(),
  'hyper-parameters': hyperParameters.optional(),
});
export type TrainingJobV1 = z.infer<typeof trainingJobSchema>;

/** arc.scheduler.training — FederatedTask v1: a federated job handed to the region of `geozone`. */
export const federatedTaskSchema = z.strictObject({
  'job-id': jobId,
  /** The geozone whose region runs the rounds (also the Kafka key). */
  geozone,
  'model-id': id,
  'dataset-uri': uri,
  rounds: z.number().int().min(1).max(1000),
  'min-participants': z.number().int().min(1).max(10_000),
  /** How many nodes the region invites per round (at least min-participants). */
  participants: z.number().int().min(1).max(10_000),
  'round-deadline-ms': z.number().int().min(1_000).max(24 * 3600_000),
  'checkpoint-uri': uri,
  'hyper-parameters': hyperParameters,
  /** Why this geozone (the ranking, for operators). */
  reason: z.string().max(1024),
  timestamp: isoTimestamp,
});
export type FederatedTaskV1 = z.infer<typeof federatedTaskSchema>;

/** ornl.bridge.ingress — HpcJob v1: a job whose dataset is staged, handed to the HPC bridge. */
export const hpcJobWireSchema = z.strictObject({
  'job-id': jobId,
  'dataset-uri': uri,
  'staged-uri': uri,
  'dataset-size-gb': z.number().nonnegative(),
  'estimated-flops': z.number().nonnegative(),
  'checkpoint-uri': uri,
  urgency: urgencySchema,
  'batch-job-name': jobId,
  reason: z.string().max(1024),
  timestamp: isoTimestamp,
});
export type HpcJobV1 = z.infer<typeof hpcJobWireSchema>;

export function trainingJobFromWire(t: TrainingJobV1): TrainingJob {
  return {
    jobId: t['job-id'],
    datasetUri: t['dataset-uri'],
    datasetSizeGb: t['dataset-size-gb'],
    estimatedFlops: t['estimated-flops'],
    checkpointUri: t['checkpoint-uri'],
    urgency: t.urgency,
    ...(t['model-id'] === undefined ? {} : { modelId: t['model-id'] }),
    ...(t['source-node-id'] === undefined ? {} : { sourceNodeId: t['source-node-id'] }),
    ...(t['requester-geozone'] === undefined ? {} : { requesterGeozone: t['requester-geozone'] }),
    ...(t.rounds === undefined ? {} : { rounds: t.rounds }),
    ...(t['min-participants'] === undefined ? {} : { minParticipants: t['min-participants'] }),
    ...(t.participants === undefined ? {} : { participants: t.participants }),
    ...(t['round-deadline-ms'] === undefined ? {} : { roundDeadlineMs: t['round-deadline-ms'] }),
    ...(t['hyper-parameters'] === undefined ? {} : { hyperParameters: t['hyper-parameters'] }),
  };
}

export function trainingJobToWire(job: TrainingJob): TrainingJobV1 {
  return {
    'job-id': job.jobId,
    'dataset-uri': job.datasetUri,
    'dataset-size-gb': job.datasetSizeGb,
    'estimated-flops': job.estimatedFlops,
    'checkpoint-uri': job.checkpointUri,
    urgency: job.urgency,
    ...(job.modelId === undefined ? {} : { 'model-id': job.modelId }),
    ...(job.sourceNodeId === undefined ? {} : { 'source-node-id': job.sourceNodeId }),
    ...(job.requesterGeozone === undefined ? {} : { 'requester-geozone': job.requesterGeozone }),
    ...(job.rounds === undefined ? {} : { rounds: job.rounds }),
    ...(job.minParticipants === undefined ? {} : { 'min-participants': job.minParticipants }),
    ...(job.participants === undefined ? {} : { participants: job.participants }),
    ...(job.roundDeadlineMs === undefined ? {} : { 'round-deadline-ms': job.roundDeadlineMs }),
    ...(job.hyperParameters === undefined ? {} : { 'hyper-parameters': job.hyperParameters }),
  };
}

export function summaryFromWire(s: RegionalSummaryV1): RegionalSummary {
  return {
    geozoneId: s['geozone-id'],
    atMs: Date.parse(s.timestamp),
    totalNodes: s['total-nodes'],
    activeNodes: s['active-nodes'],
    avgGpuUtil: s['avg-gpu-util'],
    energyBreakdown: { ...s['energy-breakdown'] },
    openReservations: s['open-reservations'],
  };
}

/** Validates one raw message (size before parsing, JSON, strict schema) with coded errors. */
export function parseCentralWire<T>(what: string, schema: z.ZodType<T>, raw: unknown): T {
  let value = raw;
  if (typeof raw === 'string' || raw instanceof Uint8Array) {
    const bytes = typeof raw === 'string' ? Buffer.byteLength(raw, 'utf8') : raw.byteLength;
    if (bytes > limits.maxMessageBytes) {
      throw new ArcError(ErrorCodes.PAYLOAD_TOO_LARGE, `${what} message is ${bytes} bytes; the limit is ${limits.maxMessageBytes}`, { bytes, limit: limits.maxMessageBytes });
    }
    try {
      value = JSON.parse(typeof raw === 'string' ? raw : Buffer.from(raw).toString('utf8'));
    } catch (error) {
      throw new ArcError(ErrorCodes.MALFORMED_JSON, `${what} message is not valid JSON: ${(error as Error).message}`);
    }
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message }));
    const first = issues[0];
    throw new ArcError(ErrorCodes.VALIDATION, `invalid ${what} message: ${first === undefined ? 'unknown problem' : `${first.path || '(root)'}: ${first.message}`}`, { issues });
  }
  return parsed.data;
}

export const parseTrainingJob = (raw: unknown): TrainingJob => trainingJobFromWire(parseCentralWire('TrainingJob', trainingJobSchema, raw));
export const parseRegionalSummary = (raw: unknown): RegionalSummary => summaryFromWire(parseCentralWire('RegionalSummary', regionalSummarySchema, raw));
