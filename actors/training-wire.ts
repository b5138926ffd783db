import { z } from 'zod';
import { aggregateWhenSchema, DEFAULT_AGGREGATE_WHEN } from '../machines/federated-round.js';
import { PARTITION_SCHEMES } from '../training/split.js';
import { TRAINING_LIMITS } from '../training/softmax-regression.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import type { LocalHyper, RegionEffect, TrainingJobSpec, TrainingUpdate } from './region-io.js';
import { geozone, id, isoTimestamp, limits } from './wire.js';

/**
 * The federated path's wire formats (kebab-case JSON, strict zod), validated at
 * every edge before anything reaches a shard:
 * - FederatedTask v1 (in: `arc.scheduler.training`, `POST /v1/training`): a job for
 *   the region of `geozone`, as the central orchestrator publishes it;
 * - TrainingUpdate v1 (in: `arc.result.training`, `POST /v1/training/updates`, the
 *   agent channel's `training-update`): one participant's weights for one round;
 * - TrainTask v1 (out: the agent channel's `train`, and `arc.scheduler.training`
 *   with `"type":"train"` addressed to a node): what a participant trains.
 */

export const trainingTopics = {
  /** FederatedTask v1 in; TrainTask v1 (type "train") out, addressed to a node. */
  scheduler: 'arc.scheduler.training',
  /** TrainingUpdate v1 in. */
  result: 'arc.result.training',
} as const;

/** Job ids name files (checkpoints) too: a small alphabet, as central writes them. */
export const jobId = z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, '1 to 128 letters, digits, . _ or -');
const uri = z.string().min(1).max(2048);
const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'SHA-256, 64 lower-case hex digits');
/** Inline weights: base64 of float32 little-endian; bounded so a message stays under the wire limit. */
export const MAX_INLINE_WEIGHTS_CHARS = 12 * 1024;
const base64 = z.string().max(MAX_INLINE_WEIGHTS_CHARS).regex(/^[A-Za-z0-9+/]*={0,2}$/, 'base64');
export const MAX_ROUNDS = 1000;
export const MAX_WANTED_PARTICIPANTS = 10_000;
export const MAX_HYPER_PARAMETERS = 32;

/** A region's participants read a data set built in or from a local file; any other scheme (s3:, globus:, ...) they cannot. */
export const regionReadsDataset = (datasetUri: string): boolean => datasetUri.startsWith('builtin:') || datasetUri.startsWith('file:');
/** A region writes each round's aggregate to a local folder only. */
export const regionWritesCheckpoint = (checkpointUri: string): boolean => checkpointUri.startsWith('file:///');
const datasetUri = uri.refine(regionReadsDataset, { message: 'a builtin: or file: URI' });
const checkpointUri = uri.refine(regionWritesCheckpoint, { message: 'a file:/// URI of a folder the region may write' });

/** The hyper-parameters this region's trainer reads; any other name is refused (a typo must not train silently with a default). */
export const hyperParametersSchema = z.strictObject({
  'learning-rate': z.number().positive().max(TRAINING_LIMITS.maxLearningRate).optional(),
  'local-epochs': z.number().int().min(1).max(TRAINING_LIMITS.maxEpochs).optional(),
  'batch-size': z.number().int().min(1).max(TRAINING_LIMITS.maxBatchSize).optional(),
  l2: z.number().min(0).max(TRAINING_LIMITS.maxL2).optional(),
  seed: z.number().int().min(0).max(0xffff_ffff).optional(),
  partitioning: z.enum(PARTITION_SCHEMES).optional(),
  'test-fraction': z.number().min(0.05).max(0.5).optional(),
});
export type HyperParametersV1 = z.infer<typeof hyperParametersSchema>;
/** The names hyperParametersSchema accepts. */
export const REGION_HYPER_PARAMETER_NAMES: readonly string[] = Object.keys(hyperParametersSchema.shape);

/** The entries of a free-form map whose names this region's trainer reads (the rest are not the region's business). */
export function regionHyperParameterEntries(all: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(all).filter(([name]) => REGION_HYPER_PARAMETER_NAMES.includes(name)));
}

export const defaultHyper = { learningRate: 0.5, localEpochs: 1, batchSize: 16, l2: 1e-4, seed: 1, partitioning: 'iid', testFraction: 0.2 } as const;

/** arc.scheduler.training and POST /v1/training — FederatedTask v1 */
export const federatedTaskSchema = z
  .strictObject({
    'job-id': jobId,
    /** The geozone whose region runs the rounds (also the Kafka key). */
    geozone,
    'model-id': id,
    'dataset-uri': datasetUri,
    rounds: z.number().int().min(1).max(MAX_ROUNDS),
    'min-participants': z.number().int().min(1).max(MAX_WANTED_PARTICIPANTS),
    /**
     * "quorum" (the default): a round is aggregated as soon as min-participants answered;
     * "all": only when every participant answered. Either way the deadline closes a
     * round that has its quorum, and whoever had not answered is named a straggler.
     */
    'aggregate-when': aggregateWhenSchema.optional(),
    /** How many nodes the region invites (at least min-participants). */
    participants: z.number().int().min(1).max(MAX_WANTED_PARTICIPANTS),
    'round-deadline-ms': z.number().int().min(1_000).max(24 * 3600_000),
    'checkpoint-uri': checkpointUri,
    'hyper-parameters': hyperParametersSchema.default({}),
    /** Why this geozone (central's ranking, for operators). */
    reason: z.string().max(1024).optional(),
    timestamp: isoTimestamp.optional(),
  })
  .refine((t) => t['min-participants'] <= t.participants, { message: 'min-participants must not exceed participants', path: ['min-participants'] });
export type FederatedTaskV1 = z.infer<typeof federatedTaskSchema>;

/** arc.result.training — TrainingUpdate v1 */
export const trainingUpdateSchema = z
  .strictObject({
    'job-id': jobId,
    round: z.number().int().min(1).max(MAX_ROUNDS),
    'node-id': id,
    'sample-count': z.number().int().min(1).max(1_000_000_000),
    /** The weights inline (base64, float32 little-endian)... */
    weights: base64.optional(),
    /** ...or a reference to weights already in the region's blob store. */
    'weights-sha256': sha256.optional(),
    /** Local metrics after training, on the participant's own samples. */
    metrics: z.strictObject({ loss: z.number().nonnegative().max(1e6), accuracy: z.number().min(0).max(1) }).optional(),
    timestamp: isoTimestamp.optional(),
  })
  .refine((u) => (u.weights === undefined) !== (u['weights-sha256'] === undefined), { message: 'give exactly one of weights and weights-sha256', path: ['weights'] });
export type TrainingUpdateV1 = z.infer<typeof trainingUpdateSchema>;

/** The agent channel's `train` message, and `arc.scheduler.training` addressed to a node — TrainTask v1 */
export const trainTaskSchema = z.strictObject({
  type: z.literal('train'),
  'job-id': jobId,
  round: z.number().int().min(1).max(MAX_ROUNDS),
  'node-id': id,
  geozone,
  'model-id': id,
  /** The participant's part of the data set (training/dataset-shard.ts reads it). */
  'dataset-shard-uri': uri,
  /** The round's starting weights by hash; null in round 1 (start from zeros). */
  'weights-sha256': sha256.nullable(),
  /** The same weights inline on the agent channel; null on Kafka (read them by hash) and in round 1. */
  weights: base64.nullable(),
  'hyper-parameters': z.strictObject({
    'learning-rate': z.number().positive(),
    'local-epochs': z.number().int().min(1),
    'batch-size': z.number().int().min(1),
    l2: z.number().min(0),
    seed: z.number().int().min(0),
  }),
  /** Updates after this are not counted. */
  deadline: isoTimestamp,
});
export type TrainTaskV1 = z.infer<typeof trainTaskSchema>;

/** The training settings of a job, the defaults filling what it does not say. */
export function hyperFromWire(h: HyperParametersV1): Pick<TrainingJobSpec, 'local' | 'partitioning' | 'testFraction'> {
  const local: LocalHyper = {
    learningRate: h['learning-rate'] ?? defaultHyper.learningRate,
    localEpochs: h['local-epochs'] ?? defaultHyper.localEpochs,
    batchSize: h['batch-size'] ?? defaultHyper.batchSize,
    l2: h.l2 ?? defaultHyper.l2,
    seed: h.seed ?? defaultHyper.seed,
  };
  return { local, partitioning: h.partitioning ?? defaultHyper.partitioning, testFraction: h['test-fraction'] ?? defaultHyper.testFraction };
}

export function taskToSpec(t: FederatedTaskV1): TrainingJobSpec {
  return {
    jobId: t['job-id'],
    geozone: t.geozone,
    modelId: t['model-id'],
    datasetUri: t['dataset-uri'],
    rounds: t.rounds,
    minParticipants: t['min-participants'],
    aggregateWhen: t['aggregate-when'] ?? DEFAULT_AGGREGATE_WHEN,
    participants: t.participants,
    roundDeadlineMs: t['round-deadline-ms'],
    checkpointUri: t['checkpoint-uri'],
    ...hyperFromWire(t['hyper-parameters']),
  };
}

export function specToTask(s: TrainingJobSpec): FederatedTaskV1 {
  return {
    'job-id': s.jobId,
    geozone: s.geozone,
    'model-id': s.modelId,
    'dataset-uri': s.datasetUri,
    rounds: s.rounds,
    'min-participants': s.minParticipants,
    'aggregate-when': s.aggregateWhen ?? DEFAULT_AGGREGATE_WHEN,
    participants: s.participants,
    'round-deadline-ms': s.roundDeadlineMs,
    'checkpoint-uri': s.checkpointUri,
    'hyper-parameters': {
      'learning-rate': s.local.learningRate,
      'local-epochs': s.local.localEpochs,
      'batch-size': s.local.batchSize,
      l2: s.local.l2,
      seed: s.local.seed,
      partitioning: s.partitioning,
      'test-fraction': s.testFraction,
    },
  };
}

/** A parsed update before its weights are stored: the inline bytes, or the reference. */
export interface ReceivedUpdate {
  readonly update: Omit<TrainingUpdate, 'weightsSha256'>;
  readonly weights: { readonly inline: Uint8Array } | { readonly sha256: string };
}

export function updateFromWire(u: TrainingUpdateV1): ReceivedUpdate {
  return {
    update: {
      jobId: u['job-id'],
      round: u.round,
      nodeId: u['node-id'],
      sampleCount: u['sample-count'],
      loss: u.metrics?.loss ?? null,
      accuracy: u.metrics?.accuracy ?? null,
    },
    weights: u.weights !== undefined ? { inline: new Uint8Array(Buffer.from(u.weights, 'base64')) } : { sha256: u['weights-sha256'] as string },
  };
}

/**
 * Size first, then JSON, then the strict schema; coded errors, as actors/wire.ts
 * does for the seed's formats. The central orchestrator's formats parse with it too.
 * `tooLargeAdvice` ends the too-large message (what the sender can do instead).
 */
export function parseTrainingWire<T>(what: string, schema: z.ZodType<T>, raw: unknown, tooLargeAdvice = ' (send large weights by weights-sha256)'): T {
  let value = raw;
  if (typeof raw === 'string' || raw instanceof Uint8Array) {
    const bytes = typeof raw === 'string' ? Buffer.byteLength(raw, 'utf8') : raw.byteLength;
    if (bytes > limits.maxMessageBytes) {
      throw new ArcError(ErrorCodes.PAYLOAD_TOO_LARGE, `${what} message is ${bytes} bytes; the limit is ${limits.maxMessageBytes}${tooLargeAdvice}`, { bytes, limit: limits.maxMessageBytes });
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

export const parseFederatedTask = (raw: unknown): TrainingJobSpec => taskToSpec(parseTrainingWire('FederatedTask', federatedTaskSchema, raw));
export const parseTrainingUpdate = (raw: unknown): ReceivedUpdate => updateFromWire(parseTrainingWire('TrainingUpdate', trainingUpdateSchema, raw));

export type TrainEffect = Extract<RegionEffect, { type: 'train' }>;
