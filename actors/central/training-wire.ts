import { z } from 'zod';
import { urgencySchema } from '../../machines/hpc-job.js';
import { geozone, id, isoTimestamp } from '../wire.js';
import { regionalSummarySchema, type RegionalSummaryV1 } from '../wire-out.js';
import type { RegionalSummary } from '../region-io.js';
import { hyperParametersSchema, jobId, MAX_HYPER_PARAMETERS, parseTrainingWire, regionHyperParameterEntries } from '../training-wire.js';
import type { TrainingJob } from './central-io.js';

/**
 * The wire formats of the central orchestrator (kebab-case JSON, strict zod):
 * what it takes in (TrainingJob v1 on arc.job.submission, RegionalSummary v1 on
 * arc.summary.regional) and HpcJob v1, which it publishes on ornl.bridge.ingress.
 * The FederatedTask v1 it publishes on arc.scheduler.training is the region's
 * own schema (actors/training-wire.ts): there is one, the one its consumer checks.
 */

export const centralTopics = {
  submission: 'arc.job.submission',
  summary: 'arc.summary.regional',
  training: 'arc.scheduler.training',
  bridgePending: 'arc.bridge.pending',
  hpcIngress: 'ornl.bridge.ingress',
  system: 'arc.event.system',
} as const;

/** Job ids name transfers, staging folders and batch jobs as well as a region's checkpoint files. */
export { jobId };
const uri = z.string().min(1).max(2048);
/**
 * Hyper-parameters: a small flat map of names to numbers, strings or booleans.
 * The names a region's trainer reads must hold values it accepts: a federated
 * job would otherwise be refused by its region after central placed it, so it
 * is refused here, where the submitter still gets the answer.
 */
const hyperParameters = z
  .record(z.string().min(1).max(64), z.union([z.number(), z.string().max(256), z.boolean()]))
  .refine((o) => Object.keys(o).length <= MAX_HYPER_PARAMETERS, { message: `at most ${MAX_HYPER_PARAMETERS} hyper-parameters` })
  .superRefine((all, ctx) => {
    const known = hyperParametersSchema.safeParse(regionHyperParameterEntries(all));
    if (known.success) return;
    for (const issue of known.error.issues) ctx.addIssue({ code: 'custom', path: issue.path, message: `${issue.message} (a region's trainer reads this name)` });
  });

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

/** arc.bridge.pending — HpcJob v1 of a job awaiting its transfer: not staged, no batch job yet. */
export const hpcPendingWireSchema = hpcJobWireSchema.extend({ 'staged-uri': z.null(), 'batch-job-name': z.null() });

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

export const parseTrainingJob = (raw: unknown): TrainingJob => trainingJobFromWire(parseTrainingWire('TrainingJob', trainingJobSchema, raw, ''));
export const parseRegionalSummary = (raw: unknown): RegionalSummary => summaryFromWire(parseTrainingWire('RegionalSummary', regionalSummarySchema, raw, ''));
