import type { RegionalSummary, RegionEffect } from '../../actors/region-io.js';
import { specToTask, type TrainEffect, type TrainTaskV1 } from '../../actors/training-wire.js';

/**
 * The seed's topic names and the wire form (kebab-case JSON) of what the region
 * publishes on them. Inputs arrive on the first three; effects leave on the rest.
 */
export const topics = {
  telemetry: 'arc.telemetry.node',
  inference: 'arc.request.inference',
  result: 'arc.result.inference',
  dispatch: (geozone: string) => `arc.command.dispatch.${geozone}`,
  summary: 'arc.summary.regional',
  system: 'arc.event.system',
  /** The region's answer to a requester (reserved, rejected, duplicate). */
  decision: 'arc.decision.inference',
  /** A reservation's one terminal outcome. */
  ended: 'arc.reservation.ended',
  /** Inputs that failed validation, with the reason. */
  deadLetter: 'arc.deadletter',
  /**
   * FederatedTask v1: out of the central orchestrator, into the region of its geozone; the
   * region's TrainTask v1 (`"type":"train"`, weights by hash) out, addressed to a node.
   */
  training: 'arc.scheduler.training',
  /** TrainingUpdate v1 in. */
  trainingResult: 'arc.result.training',
  /** The central orchestrator's: TrainingJob v1 in, HpcJob v1 out (actors/central/training-wire.ts). */
  jobSubmission: 'arc.job.submission',
  /** HpcJob v1 out: jobs classified HPC awaiting their transfer, then jobs staged and ready for the HPC bridge. */
  bridgePending: 'arc.bridge.pending',
  hpcIngress: 'ornl.bridge.ingress',
} as const;

const iso = (ms: number): string => new Date(ms).toISOString();

/** RegionalSummary v1 as it goes on arc.summary.regional (a region's effect, or an orchestrator's input re-sent). */
export function summaryToWire(s: RegionalSummary): Record<string, unknown> {
  return {
    'geozone-id': s.geozoneId,
    'total-nodes': s.totalNodes,
    'active-nodes': s.activeNodes,
    'avg-gpu-util': s.avgGpuUtil,
    'energy-breakdown': { ...s.energyBreakdown },
    'open-reservations': s.openReservations,
    timestamp: iso(s.atMs),
  };
}

/** The topic and wire message for an effect leaving the region (undefined for internal ones). */
export function effectToWire(effect: RegionEffect): { topic: string; message: Record<string, unknown> } | undefined {
  switch (effect.type) {
    case 'dispatch':
      return {
        topic: topics.dispatch(effect.geozone),
        message: {
          'request-id': effect.requestId,
          'node-id': effect.nodeId,
          'model-id': effect.modelId,
          'context-window': effect.contextWindow,
          priority: effect.priority,
          'expires-at': iso(effect.expiresAtMs),
        },
      };
    case 'summary': {
      return {
        topic: topics.summary,
        message: summaryToWire(effect.summary),
      };
    }
    case 'system':
      return { topic: topics.system, message: { severity: effect.severity, message: effect.message, details: effect.details, timestamp: iso(effect.atMs) } };
    case 'decision':
      return {
        topic: topics.decision,
        message: {
          'request-id': effect.requestId,
          outcome: effect.outcome,
          geozone: effect.geozone,
          'node-id': effect.nodeId ?? null,
          'expires-at': effect.expiresAtMs === undefined ? null : iso(effect.expiresAtMs),
          candidates: effect.candidates,
          reason: effect.reason,
          timestamp: iso(effect.atMs),
        },
      };
    case 'ended':
      return {
        topic: topics.ended,
        message: { 'request-id': effect.requestId, outcome: effect.outcome, geozone: effect.geozone, 'node-id': effect.nodeId, reason: effect.reason, timestamp: iso(effect.atMs) },
      };
    case 'train':
      // On a topic the weights travel by hash (the agent channel sends them inline).
      return { topic: topics.training, message: trainTaskOf(effect, null) };
    case 'federated-task':
      return { topic: topics.training, message: { ...specToTask(effect.task), reason: effect.reason, timestamp: iso(effect.atMs) } };
    case 'hpc-pending':
      return {
        topic: topics.bridgePending,
        message: {
          'job-id': effect.jobId,
          'dataset-uri': effect.datasetUri,
          // Nothing is staged and no batch job named yet: HpcJob v1 says so with nulls.
          'staged-uri': null,
          'dataset-size-gb': effect.datasetSizeGb,
          'estimated-flops': effect.estimatedFlops,
          'checkpoint-uri': effect.checkpointUri,
          urgency: effect.urgency,
          'batch-job-name': null,
          reason: effect.reason,
          timestamp: iso(effect.atMs),
        },
      };
    case 'hpc-ingress':
      return {
        topic: topics.hpcIngress,
        message: {
          'job-id': effect.jobId,
          'dataset-uri': effect.datasetUri,
          'staged-uri': effect.stagedUri,
          'dataset-size-gb': effect.datasetSizeGb,
          'estimated-flops': effect.estimatedFlops,
          'checkpoint-uri': effect.checkpointUri,
          urgency: effect.urgency,
          'batch-job-name': effect.batchJobName,
          reason: effect.reason,
          timestamp: iso(effect.atMs),
        },
      };
    case 'forward':
    case 'forward-ack':
    case 'aggregate':
    case 'checkpoint':
    case 'hpc-command':
      return undefined;
  }
}

/** TrainTask v1 of a train effect (weights inline, or null). */
export function trainTaskOf(effect: TrainEffect, weightsBase64: string | null): TrainTaskV1 {
  return {
    type: 'train',
    'job-id': effect.jobId,
    round: effect.round,
    'node-id': effect.nodeId,
    geozone: effect.geozone,
    'model-id': effect.modelId,
    'dataset-shard-uri': effect.datasetShardUri,
    'weights-sha256': effect.weightsSha256,
    weights: weightsBase64,
    'hyper-parameters': {
      'learning-rate': effect.local.learningRate,
      'local-epochs': effect.local.localEpochs,
      'batch-size': effect.local.batchSize,
      l2: effect.local.l2,
      seed: effect.local.seed,
    },
    deadline: iso(effect.deadlineAtMs),
  };
}
