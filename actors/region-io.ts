import type { NodeReport } from '../machines/node.js';
import type { Priority } from '../machines/reservation.js';
import type { AggregateWhen } from '../machines/federated-round.js';
import type { CentralEffect, CentralInput } from './central/central-io.js';

/**
 * What a region shard takes in and what it lets out, after edge validation
 * (see wire.ts for the seed's kebab-case formats that become these).
 */

export interface InferenceRequest {
  readonly requestId: string;
  readonly modelId: string;
  readonly contextWindow: number;
  readonly priority: Priority;
  readonly requesterGeozone: string;
  /** Where the requester is, when it said (console display only; routing does not use it). */
  readonly requesterGeohash?: string;
}

export type RegionInput =
  | { readonly type: 'telemetry'; readonly nodeId: string; readonly report: NodeReport }
  | {
      readonly type: 'inference';
      readonly request: InferenceRequest;
      /** Geozone shards that already tried it (forwarding); empty for a new request. */
      readonly triedGeozones: readonly string[];
      /** The shard it is addressed to (a forward); the requester's geozone otherwise. */
      readonly targetGeozone?: string;
    }
  | {
      readonly type: 'result';
      readonly requestId: string;
      readonly nodeId: string;
      readonly latencyMs: number;
      readonly status: 'completed' | 'failed';
    }
  | { readonly type: 'cancel'; readonly requestId: string }
  /** Internal: the shard a request was forwarded to has taken it (sent back to the forwarding shard). */
  | { readonly type: 'forward.ack'; readonly requestId: string; readonly geozone: string }
  | { readonly type: 'drain' | 'resume'; readonly nodeId: string }
  | TrainingInput
  /** The central orchestrator role's inputs (its shard runs CentralBehaviour; a region shard ignores them). */
  | CentralInput;

/** A participant's local-training settings, as the region hands them out with each task. */
export interface LocalHyper {
  readonly learningRate: number;
  readonly localEpochs: number;
  readonly batchSize: number;
  readonly l2: number;
  readonly seed: number;
}

/** A federated job for this region (FederatedTask v1, validated). */
export interface TrainingJobSpec {
  readonly jobId: string;
  readonly geozone: string;
  readonly modelId: string;
  readonly datasetUri: string;
  readonly rounds: number;
  readonly minParticipants: number;
  /** When a round may close before its deadline. Specs journaled before this field existed lack it: they closed only when all answered (LEGACY_AGGREGATE_WHEN). */
  readonly aggregateWhen: AggregateWhen;
  /** Nodes invited (at most this many of the eligible ones). */
  readonly participants: number;
  readonly roundDeadlineMs: number;
  /** A file:/// folder URI: each round's aggregate is written there. */
  readonly checkpointUri: string;
  readonly local: LocalHyper;
  readonly partitioning: 'iid' | 'label-skew';
  readonly testFraction: number;
}

/** One participant's update, its weights already in the blob store (the journal keeps the hash). */
export interface TrainingUpdate {
  readonly jobId: string;
  readonly round: number;
  readonly nodeId: string;
  readonly sampleCount: number;
  readonly weightsSha256: string;
  readonly loss: number | null;
  readonly accuracy: number | null;
}

/**
 * The federated path's inputs: a job, the participants' updates, and the
 * outcomes of the work the region does outside its shards (aggregation and
 * the checkpoint write), which come back as inputs so they are journaled.
 */
export type TrainingInput =
  | { readonly type: 'training.job'; readonly job: TrainingJobSpec }
  | { readonly type: 'training.update'; readonly update: TrainingUpdate }
  | {
      readonly type: 'training.aggregated';
      readonly geozone: string;
      readonly jobId: string;
      readonly round: number;
      readonly weightsSha256: string;
      /** Held-out accuracy and loss of the aggregate (the region measures them). */
      readonly accuracy: number;
      readonly loss: number;
    }
  | { readonly type: 'training.checkpointed'; readonly geozone: string; readonly jobId: string; readonly round: number; readonly checkpointUri: string; readonly sha256: string }
  | { readonly type: 'training.failed-step'; readonly geozone: string; readonly jobId: string; readonly round: number; readonly step: 'aggregation' | 'checkpoint'; readonly reason: string };

export interface RegionalSummary {
  readonly geozoneId: string;
  readonly atMs: number;
  readonly totalNodes: number;
  /** Nodes online or draining (sending telemetry). */
  readonly activeNodes: number;
  /** Mean GPU utilisation (0..1) over active nodes; 0 when none. */
  readonly avgGpuUtil: number;
  /** Active nodes by energy source. */
  readonly energyBreakdown: { readonly cogen: number; readonly grid: number; readonly battery: number };
  readonly openReservations: number;
}

export type RequestOutcome = 'completed' | 'failed' | 'expired' | 'released' | 'rejected';

export type RegionEffect =
  /** arc.command.dispatch.{geozone}: a node is told to run an inference. */
  | {
      readonly type: 'dispatch';
      readonly geozone: string;
      readonly atMs: number;
      readonly requestId: string;
      readonly nodeId: string;
      readonly modelId: string;
      readonly contextWindow: number;
      readonly priority: Priority;
      readonly expiresAtMs: number;
    }
  /** The requester's answer: where its request went (or why nowhere). */
  | {
      readonly type: 'decision';
      readonly atMs: number;
      readonly requestId: string;
      readonly outcome: 'reserved' | 'rejected' | 'duplicate';
      /** The shard that decided (after forwarding, not the requester's). */
      readonly geozone: string;
      /** The geozone the request came from: with the request id, who is waiting for this answer. */
      readonly requesterGeozone: string;
      readonly nodeId?: string;
      readonly expiresAtMs?: number;
      readonly candidates: number;
      readonly reason: string;
    }
  /** Internal: a request handed to another geozone's shard (re-sent until acknowledged). */
  | {
      readonly type: 'forward';
      readonly atMs: number;
      readonly toGeozone: string;
      readonly request: InferenceRequest;
      /** Shards that tried it, the sender last. */
      readonly triedGeozones: readonly string[];
    }
  /** Internal: acknowledges a forward to the shard that sent it. */
  | { readonly type: 'forward-ack'; readonly atMs: number; readonly toGeozone: string; readonly requestId: string }
  /** A request reached its one terminal outcome. */
  | {
      readonly type: 'ended';
      readonly atMs: number;
      readonly requestId: string;
      readonly geozone: string;
      readonly outcome: RequestOutcome;
      readonly nodeId: string | null;
      readonly reason: string | null;
    }
  /** A participant is told to train (agent channel `train`; arc.scheduler.training addressed to the node). */
  | {
      readonly type: 'train';
      readonly geozone: string;
      readonly atMs: number;
      readonly jobId: string;
      readonly round: number;
      readonly nodeId: string;
      readonly modelId: string;
      readonly datasetShardUri: string;
      /** The round's starting weights; null in round 1 (zeros). */
      readonly weightsSha256: string | null;
      readonly local: LocalHyper;
      readonly deadlineAtMs: number;
    }
  /** Internal: FedAvg of exactly these updates, and the aggregate's held-out accuracy (done outside the shard). */
  | {
      readonly type: 'aggregate';
      readonly geozone: string;
      readonly atMs: number;
      readonly jobId: string;
      readonly round: number;
      readonly updates: readonly { readonly nodeId: string; readonly sampleCount: number; readonly weightsSha256: string }[];
      /** The held-out split to measure on (a dataset shard URI; its test split). */
      readonly evaluationShardUri: string;
    }
  /** Internal: write the aggregate to the job's checkpoint folder. */
  | { readonly type: 'checkpoint'; readonly geozone: string; readonly atMs: number; readonly jobId: string; readonly round: number; readonly weightsSha256: string; readonly checkpointUri: string }
  /** arc.summary.regional */
  | { readonly type: 'summary'; readonly summary: RegionalSummary }
  /** arc.event.system */
  | {
      readonly type: 'system';
      readonly atMs: number;
      readonly severity: 'info' | 'warn' | 'error' | 'success';
      readonly message: string;
      readonly details: Readonly<Record<string, unknown>>;
    }
  /** The central orchestrator role's effects (federated tasks, HPC ingress, work for its HPC driver). */
  | CentralEffect;
