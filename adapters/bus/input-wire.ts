import type { RegionInput } from '../../actors/region-io.js';
import { trainingJobToWire } from '../../actors/central/training-wire.js';
import { summaryToWire, topics } from './topics.js';

/**
 * What a simulated node agent or client puts on the bus: the seed's wire
 * formats, so simulated traffic crosses the same edge validation as real traffic.
 */
export function inputToWire(input: RegionInput): { topic: string; message: Record<string, unknown> } | undefined {
  switch (input.type) {
    case 'telemetry': {
      const r = input.report;
      return {
        topic: topics.telemetry,
        message: {
          'node-id': input.nodeId,
          geozone: r.geozone,
          geohash: r.geohash,
          'energy-source': r.energySource,
          'battery-level': r.batteryLevel,
          'gpu-utilization': r.gpuUtilization,
          'models-loaded': r.modelsLoaded,
          timestamp: new Date(r.reportedAtMs).toISOString(),
          ...(r.nodeName === undefined ? {} : { 'node-name': r.nodeName }),
          'gpu-count': r.gpuCount,
          ...(r.draining ? { status: 'draining' } : {}),
        },
      };
    }
    case 'inference': {
      const q = input.request;
      return {
        topic: topics.inference,
        message: {
          'request-id': q.requestId,
          'model-id': q.modelId,
          'context-window': q.contextWindow,
          priority: q.priority,
          'requester-geozone': q.requesterGeozone,
          ...(q.requesterGeohash === undefined ? {} : { 'requester-geohash': q.requesterGeohash }),
        },
      };
    }
    case 'result':
      return {
        topic: topics.result,
        message: { 'request-id': input.requestId, 'node-id': input.nodeId, 'latency-ms': input.latencyMs, status: input.status },
      };
    case 'job.submit':
      return { topic: topics.jobSubmission, message: trainingJobToWire(input.job) };
    case 'summary.in':
      return { topic: topics.summary, message: summaryToWire(input.summary) };
    default:
      return undefined; // cancels and operator actions have no seed topic; they go to the region directly
  }
}
