import { mkdirSync, openSync, closeSync, writeSync, fsyncSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { loadDataset } from '../adapters/datasets/dataset-files.js';
import { LmdbBlobStore } from '../adapters/lmdb/lmdb-blob-store.js';
import { createRegionProcess } from '../app/region-process.js';
import { monotonicNowMs } from '../runtime/clock.js';
import { evaluate, fedAvg, formatShardUri, initialWeights, parseShardUri, runTrainingTask, shardIndices, weightsToBytes } from '../training/index.js';
import { figure, median, type Figure } from './measure.js';

/**
 * Round latency of a federated job in an embedded region with 8, 32 and 128
 * simulated participants that answer at once: from the round's first train
 * message to the next round's (updates stored and journaled, the round closed,
 * FedAvg, held-out accuracy, the checkpoint file, the next round opened).
 * Baseline, same run: the same work without the region (N blob puts in LMDB,
 * FedAvg, the accuracy, an fsynced checkpoint file).
 */
const ROUNDS = 5;

function updatesFor(participants: number): { body: (jobId: string, round: number, nodeId: string, part: number) => string; weights: Float32Array[]; samples: number[] } {
  const dataset = loadDataset('builtin:digits');
  const weights: Float32Array[] = [];
  const samples: number[] = [];
  for (let part = 0; part < participants; part++) {
    const uri = formatShardUri({ datasetUri: 'builtin:digits', part, of: participants, scheme: 'iid', seed: 7, testFraction: 0.2 });
    const result = runTrainingTask(dataset, { datasetShardUri: uri, weights: initialWeights(64, 10), options: { epochs: 1, learningRate: 0.2, batchSize: 16, l2: 1e-4, seed: part } });
    weights.push(result.weights);
    samples.push(result.sampleCount);
  }
  const encoded = weights.map((w) => Buffer.from(weightsToBytes(w)).toString('base64'));
  return {
    weights,
    samples,
    body: (jobId, round, nodeId, part) => JSON.stringify({ 'job-id': jobId, round, 'node-id': nodeId, 'sample-count': samples[part], weights: encoded[part] }),
  };
}

async function regionRoundMs(dir: string, participants: number): Promise<number> {
  const region = await createRegionProcess({ geozones: ['CAISO'], journal: { kind: 'lmdb', dataDir: join(dir, `region-${participants}`) }, security: { rateLimitPerSec: 1_000_000 }, logger: pino({ level: 'silent' }) });
  await region.start();
  try {
    const nowMs = region.clock.nowMs();
    for (let i = 0; i < participants; i++) {
      region.publish({
        type: 'telemetry',
        nodeId: `bench-${String(i).padStart(4, '0')}`,
        report: { geozone: 'CAISO', geohash: '9q9hvu', energySource: 'grid', batteryLevel: 0.9, gpuUtilization: 0.2, gpuCount: 4, modelsLoaded: [], reportedAtMs: nowMs, draining: false },
      });
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    const { body } = updatesFor(participants);
    const jobId = `bench-${participants}`;
    const firstTrainAtMs = new Map<number, number>();
    let finished: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (finished = resolve));
    region.onTrain((task) => {
      const round = task.round;
      if (!firstTrainAtMs.has(round)) firstTrainAtMs.set(round, monotonicNowMs());
      const part = Number(/part=(\d+)/.exec(task['dataset-shard-uri'])?.[1]);
      void region.trainingUpdate(body(jobId, round, task['node-id'], part));
    });
    const checkpoints = join(dir, `ck-${participants}`);
    region.publish({
      type: 'training.job',
      job: {
        jobId,
        geozone: 'CAISO',
        modelId: 'digits-softmax',
        datasetUri: 'builtin:digits',
        rounds: ROUNDS,
        minParticipants: participants,
        participants,
        roundDeadlineMs: 600_000,
        checkpointUri: pathToFileURL(checkpoints).href,
        local: { learningRate: 0.2, localEpochs: 1, batchSize: 16, l2: 1e-4, seed: 7 },
        partitioning: 'iid',
        testFraction: 0.2,
      },
    });
    const poll = setInterval(() => {
      const view = region.region.behaviours.get('CAISO')?.training.view(jobId);
      if (view !== undefined && view.state !== 'training') {
        firstTrainAtMs.set(ROUNDS + 1, monotonicNowMs());
        finished();
      }
    }, 5);
    await done;
    clearInterval(poll);
    const rounds: number[] = [];
    for (let r = 2; r <= ROUNDS; r++) rounds.push((firstTrainAtMs.get(r + 1) as number) - (firstTrainAtMs.get(r) as number));
    return median(rounds);
  } finally {
    await region.stop('bench done');
  }
}

async function bareRoundMs(dir: string, participants: number): Promise<number> {
  const { weights, samples } = updatesFor(participants);
  const store = new LmdbBlobStore(join(dir, `bare-${participants}`));
  const dataset = loadDataset('builtin:digits');
  const { test } = shardIndices(dataset, parseShardUri(formatShardUri({ datasetUri: 'builtin:digits', part: 0, of: 1, scheme: 'iid', seed: 7, testFraction: 0.2 })));
  mkdirSync(join(dir, `bare-ck-${participants}`), { recursive: true });
  const times: number[] = [];
  try {
    for (let r = 0; r < ROUNDS; r++) {
      const start = monotonicNowMs();
      // Each round's updates differ (a real round's do), so every put writes.
      await Promise.all(weights.map((w) => store.put(weightsToBytes(w.map((x) => x + r)))));
      const averaged = fedAvg(weights.map((w, i) => ({ nodeId: `n${i}`, sampleCount: samples[i] as number, weights: w })));
      evaluate(averaged, dataset, test);
      const fd = openSync(join(dir, `bare-ck-${participants}`, `round-${r}.f32le`), 'w');
      writeSync(fd, weightsToBytes(averaged));
      fsyncSync(fd);
      closeSync(fd);
      times.push(monotonicNowMs() - start);
    }
  } finally {
    await store.close();
  }
  return median(times);
}

export async function federatedRoundsBench(dir: string): Promise<Figure[]> {
  const figures: Figure[] = [];
  const byParticipants: [participants: number, bareMs: number, liveMs: number][] = [];
  for (const participants of [8, 32, 128]) {
    const bare = await bareRoundMs(dir, participants);
    const live = await regionRoundMs(dir, participants);
    byParticipants.push([participants, bare, live]);
    figures.push(
      figure({
        bench: 'federated',
        metric: `round latency, ${participants} participants answering at once (embedded region, LMDB)`,
        unit: 'ms',
        value: live,
        baseline: { what: 'the same round without the region: blob puts, FedAvg, accuracy, fsynced checkpoint', value: bare },
      }),
    );
  }
  // The same rounds as one plot: round latency against participants, region and bare.
  const [first, last] = [byParticipants[0], byParticipants[byParticipants.length - 1]];
  if (first !== undefined && last !== undefined) {
    figures.push(
      figure({
        bench: 'federated',
        metric: 'round_latency_by_participants',
        unit: 'ms',
        value: last[2],
        baseline: { what: `the same round without the region at ${last[0]} participants`, value: last[1] },
        plot: {
          x: { label: 'participants', unit: '', scale: 'log' },
          y: { label: 'round latency', unit: 'ms' },
          series: [
            { name: 'embedded region (LMDB)', points: byParticipants.map(([n, , live]) => [n, live]) },
            { name: 'without the region', points: byParticipants.map(([n, bare]) => [n, bare]) },
          ],
        },
      }),
    );
  }
  return figures;
}
