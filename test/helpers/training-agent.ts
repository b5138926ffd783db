import WebSocket from 'ws';
import { loadDataset } from '../../adapters/datasets/dataset-files.js';
import { sha256Hex } from '../../runtime/blob-store.js';
import { initialWeights, parseShardUri, runTrainingTask, weightsFromBytes, weightsToBytes } from '../../training/index.js';

/**
 * A node agent for tests: a real WebSocket client on /v1/agent that reports
 * telemetry every few seconds and answers each `train` message by running the
 * real trainer on its part of the data set, sending its weights inline. It
 * keeps what it sent (by SHA-256), so a test can recompute FedAvg itself.
 */
export interface TrainingAgent {
  readonly nodeId: string;
  /** Weights sent, by SHA-256 of their bytes. */
  readonly sent: Map<string, { sampleCount: number; weights: Float32Array; round: number; jobId: string }>;
  /** `train` messages received (repeats included). */
  readonly trains: Record<string, unknown>[];
  readonly errors: Record<string, unknown>[];
  close(): Promise<void>;
}

export interface TrainingAgentOptions {
  readonly origin: string;
  readonly nodeId: string;
  readonly geozone: string;
  readonly key?: string;
  readonly energySource?: 'cogen' | 'grid' | 'battery';
  readonly gpuUtilization?: number;
  /** Whether to answer this job's round (default: always). */
  readonly answers?: (jobId: string, round: number) => boolean;
  /** How long to hold the update back after training (default: 0, sent at once). */
  readonly holdMs?: (jobId: string, round: number) => number;
}

export async function startTrainingAgent(options: TrainingAgentOptions): Promise<TrainingAgent> {
  const headers: Record<string, string> = options.key === undefined ? {} : { authorization: `Bearer ${options.key}` };
  const socket = new WebSocket(`${options.origin.replace(/^http/, 'ws')}/v1/agent?node-id=${options.nodeId}&geozone=${options.geozone}`, { headers });
  const sent: TrainingAgent['sent'] = new Map();
  const trains: Record<string, unknown>[] = [];
  const errors: Record<string, unknown>[] = [];
  const answered = new Set<string>();
  let messageId = 0;
  const telemetry = (): void => {
    if (socket.readyState !== WebSocket.OPEN) return;
    socket.send(
      JSON.stringify({
        type: 'telemetry',
        id: ++messageId,
        'node-id': options.nodeId,
        geozone: options.geozone,
        geohash: '9q9hvu',
        'energy-source': options.energySource ?? 'grid',
        'battery-level': 0.9,
        'gpu-utilization': options.gpuUtilization ?? 0.2,
        'models-loaded': [],
        timestamp: new Date().toISOString(),
      }),
    );
  };
  socket.on('message', (data: Buffer) => {
    const message = JSON.parse(data.toString()) as Record<string, unknown>;
    if (message['type'] === 'error') errors.push(message);
    if (message['type'] !== 'train') return;
    trains.push(message);
    const jobId = message['job-id'] as string;
    const round = message['round'] as number;
    if (answered.has(`${jobId}/${round}`) || !(options.answers?.(jobId, round) ?? true)) return;
    answered.add(`${jobId}/${round}`);
    const shardUri = message['dataset-shard-uri'] as string;
    const dataset = loadDataset(parseShardUri(shardUri).datasetUri);
    const start = message['weights'] === null ? initialWeights(dataset.featureCount, dataset.classCount) : weightsFromBytes(new Uint8Array(Buffer.from(message['weights'] as string, 'base64')));
    const hyper = message['hyper-parameters'] as Record<string, number>;
    const result = runTrainingTask(dataset, {
      datasetShardUri: shardUri,
      weights: start,
      options: { epochs: hyper['local-epochs'] as number, learningRate: hyper['learning-rate'] as number, batchSize: hyper['batch-size'] as number, l2: hyper['l2'] as number, seed: hyper['seed'] as number },
    });
    const bytes = weightsToBytes(result.weights);
    sent.set(sha256Hex(bytes), { sampleCount: result.sampleCount, weights: result.weights, round, jobId });
    const update = (): void => {
      if (socket.readyState !== WebSocket.OPEN) return;
      socket.send(
        JSON.stringify({
          type: 'training-update',
          id: ++messageId,
          'job-id': jobId,
          round,
          'node-id': options.nodeId,
          'sample-count': result.sampleCount,
          weights: Buffer.from(bytes).toString('base64'),
          metrics: { loss: result.loss, accuracy: result.accuracy },
        }),
      );
    };
    const holdMs = options.holdMs?.(jobId, round) ?? 0;
    if (holdMs > 0) setTimeout(update, holdMs);
    else update();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  telemetry();
  const beat = setInterval(telemetry, 5_000);
  return {
    nodeId: options.nodeId,
    sent,
    trains,
    errors,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(beat);
        if (socket.readyState === WebSocket.CLOSED) return resolve();
        socket.once('close', () => resolve());
        socket.close();
      }),
  };
}
