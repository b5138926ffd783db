import type { BatchJobState } from '../../runtime/batch-queue.js';
import type { Urgency } from '../../machines/hpc-job.js';
import type { RegionalSummary, TrainingJobSpec } from '../region-io.js';

/** The orchestrator's shard: one for the whole federation (see CENTRAL_SHARD). */
export const CENTRAL_SHARD = 'CENTRAL';

/** A training job as the orchestrator takes it in (TrainingJob v1, validated; see training-wire.ts). */
export interface TrainingJob {
  readonly jobId: string;
  readonly datasetUri: string;
  readonly datasetSizeGb: number;
  readonly estimatedFlops: number;
  readonly checkpointUri: string;
  readonly urgency: Urgency;
  readonly modelId?: string;
  readonly sourceNodeId?: string;
  readonly requesterGeozone?: string;
  readonly rounds?: number;
  readonly minParticipants?: number;
  readonly participants?: number;
  readonly roundDeadlineMs?: number;
  readonly hyperParameters?: Readonly<Record<string, string | number | boolean>>;
}

/** What the data mover and the batch queue were seen to do, as the HPC driver reports it (journaled). */
export type HpcObservation =
  | { readonly kind: 'transfer.started'; readonly transferId: string }
  | { readonly kind: 'transfer.progress'; readonly bytesDone: number; readonly bytesTotal: number | null }
  /** stagedUri: where the mover actually put the copy; batchJobName: what the queue will call the job (both as the adapters name them). */
  | { readonly kind: 'transfer.verified'; readonly bytesDone: number; readonly detail: string; readonly stagedUri: string; readonly batchJobName: string }
  | { readonly kind: 'transfer.failed'; readonly reason: string }
  | { readonly kind: 'queue.submitted'; readonly queueJobId: string; readonly resubmitted: boolean }
  | { readonly kind: 'queue.rejected'; readonly reason: string }
  | { readonly kind: 'queue.state'; readonly queueJobId: string; readonly state: BatchJobState; readonly rawState: string; readonly exitCode: number | null; readonly reason: string | null };

export type CentralInput =
  | { readonly type: 'job.submit'; readonly job: TrainingJob }
  | { readonly type: 'summary.in'; readonly summary: RegionalSummary }
  | { readonly type: 'hpc.observed'; readonly jobId: string; readonly observation: HpcObservation }
  | { readonly type: 'job.cancel'; readonly jobId: string; readonly reason: string };

/** Instructions to the HPC driver, released after the records that decided them are durable. */
export type HpcCommand =
  | { readonly kind: 'transfer'; readonly jobId: string; readonly sourceUri: string; readonly destinationUri: string }
  | { readonly kind: 'submit'; readonly jobId: string; readonly stagedUri: string; readonly checkpointUri: string; readonly datasetUri: string }
  | { readonly kind: 'watch-queue'; readonly jobId: string; readonly queueJobId: string }
  | { readonly kind: 'cancel'; readonly jobId: string; readonly transferId: string | null; readonly queueJobId: string | null };

export type CentralEffect =
  /**
   * arc.scheduler.training: FederatedTask v1 for the chosen geozone's region. The
   * task is the region's own job spec (what its FederatedTask v1 parses into), so
   * what central publishes is written by the region's specToTask and satisfies
   * the region's schema; `reason` says why this geozone (for operators).
   */
  | { readonly type: 'federated-task'; readonly atMs: number; readonly task: TrainingJobSpec; readonly reason: string }
  /** arc.bridge.pending: HpcJob v1 as the job is classified HPC, awaiting its transfer (nothing staged yet). */
  | {
      readonly type: 'hpc-pending';
      readonly atMs: number;
      readonly jobId: string;
      readonly datasetUri: string;
      readonly datasetSizeGb: number;
      readonly estimatedFlops: number;
      readonly checkpointUri: string;
      readonly urgency: Urgency;
      readonly reason: string;
    }
  /** ornl.bridge.ingress: HpcJob v1 once the dataset is staged and verified. */
  | {
      readonly type: 'hpc-ingress';
      readonly atMs: number;
      readonly jobId: string;
      readonly datasetUri: string;
      /** Where the data mover wrote the staged copy (what the batch job reads). */
      readonly stagedUri: string;
      /** The batch queue's name for the job (the queue adapter may tag the job id). */
      readonly batchJobName: string;
      readonly datasetSizeGb: number;
      readonly estimatedFlops: number;
      readonly checkpointUri: string;
      readonly urgency: Urgency;
      readonly reason: string;
    }
  /** Internal: work for the HPC driver (never on a topic). */
  | { readonly type: 'hpc-command'; readonly command: HpcCommand };
