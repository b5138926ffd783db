import { loadDataset } from '../adapters/datasets/dataset-files.js';
import { monotonicNowMs } from '../runtime/clock.js';
import { evaluate, fedAvg, formatShardUri, initialWeights, parseShardUri, runTrainingTask, shardIndices, trainLocal, type PartitionScheme } from '../training/index.js';
import { figure, median, type Figure } from './measure.js';

/**
 * Federated training on the shipped digits:
 * - held-out accuracy of FedAvg after N rounds (8 participants, 2 local epochs a
 *   round) against centralized training on the same training samples for the
 *   same number of passes over them, IID and label-skewed;
 * - the cost of one aggregation (fedAvg: validated, sorted by node id, float64
 *   sums) against a bare weighted-average loop, at 8, 32 and 128 participants.
 */
const ROUNDS = 20;
const PARTICIPANTS = 8;
const SEED = 7;
const LOCAL_EPOCHS = 2;
const HYPER = { learningRate: 0.5, batchSize: 16, l2: 1e-4 };

function federatedAccuracy(scheme: PartitionScheme): number {
  const dataset = loadDataset('builtin:digits');
  let weights = initialWeights(dataset.featureCount, dataset.classCount);
  for (let round = 1; round <= ROUNDS; round++) {
    const updates = Array.from({ length: PARTICIPANTS }, (_, part) => {
      const datasetShardUri = formatShardUri({ datasetUri: 'builtin:digits', part, of: PARTICIPANTS, scheme, seed: SEED, testFraction: 0.2 });
      const result = runTrainingTask(dataset, { datasetShardUri, weights, options: { ...HYPER, epochs: LOCAL_EPOCHS, seed: round * 1000 + part } });
      return { nodeId: `n${part}`, sampleCount: result.sampleCount, weights: result.weights };
    });
    weights = fedAvg(updates);
  }
  const { test } = shardIndices(dataset, parseShardUri(formatShardUri({ datasetUri: 'builtin:digits', part: 0, of: 1, scheme, seed: SEED, testFraction: 0.2 })));
  return evaluate(weights, dataset, test).accuracy;
}

function centralizedAccuracy(): number {
  const dataset = loadDataset('builtin:digits');
  const split = shardIndices(dataset, parseShardUri(formatShardUri({ datasetUri: 'builtin:digits', part: 0, of: 1, scheme: 'iid', seed: SEED, testFraction: 0.2 })));
  const trained = trainLocal(initialWeights(dataset.featureCount, dataset.classCount), dataset, split.train, { ...HYPER, epochs: ROUNDS * LOCAL_EPOCHS, seed: SEED });
  return evaluate(trained.weights, dataset, split.test).accuracy;
}

/** The plainest weighted mean: no checks, no sort, arrival order. */
function bareWeightedAverage(updates: readonly { sampleCount: number; weights: Float32Array }[], out: Float64Array): void {
  out.fill(0);
  let total = 0;
  for (const u of updates) {
    total += u.sampleCount;
    for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) + u.sampleCount * (u.weights[i] as number);
  }
  for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) / total;
}

function microsPerCall(fn: () => void, calls: number): number {
  const samples: number[] = [];
  for (let rep = 0; rep < 7; rep++) {
    const start = monotonicNowMs();
    for (let i = 0; i < calls; i++) fn();
    samples.push(((monotonicNowMs() - start) * 1000) / calls);
  }
  return median(samples);
}

export function federatedBench(): Figure[] {
  const figures: Figure[] = [];
  const central = centralizedAccuracy();
  for (const scheme of ['iid', 'label-skew'] as const) {
    const federated = federatedAccuracy(scheme);
    figures.push(
      figure({
        bench: 'federated',
        metric: `held-out accuracy after ${ROUNDS} FedAvg rounds of ${LOCAL_EPOCHS} local epochs, ${PARTICIPANTS} participants, ${scheme}`,
        unit: '%',
        value: federated * 100,
        baseline: { what: `centralized training, ${ROUNDS * LOCAL_EPOCHS} epochs on the same samples`, value: central * 100 },
        goal: scheme === 'iid' ? 'within 2 points of centralized' : 'reported (non-IID)',
        extra: { points: Math.round((federated - central) * 10_000) / 100 },
      }),
    );
  }
  const dataset = loadDataset('builtin:digits');
  const length = initialWeights(dataset.featureCount, dataset.classCount).length;
  for (const participants of [8, 32, 128]) {
    const updates = Array.from({ length: participants }, (_, p) => ({
      nodeId: `node-${String(participants - p).padStart(4, '0')}`,
      sampleCount: 100 + p,
      weights: Float32Array.from({ length }, (_, i) => Math.sin(i + p)),
    }));
    const out = new Float64Array(length);
    const calls = Math.max(20, Math.round(4000 / participants));
    figures.push(
      figure({
        bench: 'federated',
        metric: `one FedAvg aggregation, ${participants} participants x ${length} weights`,
        unit: 'us',
        value: microsPerCall(() => fedAvg(updates), calls),
        baseline: { what: 'bare weighted-average loop (no checks, no sort)', value: microsPerCall(() => bareWeightedAverage(updates, out), calls) },
      }),
    );
  }
  return figures;
}
