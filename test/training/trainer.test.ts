import { createHash } from 'node:crypto';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import test from 'ava';
import { loadDataset } from '../../adapters/datasets/dataset-files.js';
import {
  evaluate,
  fedAvg,
  formatShardUri,
  initialWeights,
  parseShardUri,
  partition,
  runTrainingTask,
  shardIndices,
  trainLocal,
  trainTestSplit,
  weightsFromBytes,
  weightsToBytes,
} from '../../training/index.js';

const digits = loadDataset('builtin:digits');
const sha = (w: Float32Array): string => createHash('sha256').update(weightsToBytes(w)).digest('hex');
const options = { epochs: 2, learningRate: 0.5, batchSize: 16, l2: 1e-4, seed: 11 };

test('the shipped digits are the 1,797 8x8 samples, every digit present', (t) => {
  t.is(digits.count, 1797);
  t.is(digits.featureCount, 64);
  const perLabel = new Array<number>(10).fill(0);
  for (const label of digits.labels) perLabel[label] = (perLabel[label] as number) + 1;
  t.true(perLabel.every((n) => n >= 170 && n <= 190), String(perLabel));
});

test('a file: URI of the same format loads, and a malformed one is refused with its line', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'arcnet-ds-'));
  const row = (label: number): string => [...new Array<number>(64).fill(3), label].join(',');
  writeFileSync(join(dir, 'ok.csv'), `${row(1)}\n${row(7)}\n`);
  const own = loadDataset(pathToFileURL(join(dir, 'ok.csv')).href);
  t.is(own.count, 2);
  t.deepEqual([...own.labels], [1, 7]);
  writeFileSync(join(dir, 'bad.csv'), `${row(1)}\n1,2,3\n`);
  const error = t.throws(() => loadDataset(pathToFileURL(join(dir, 'bad.csv')).href));
  t.is((error as { code?: string }).code, 'ARC_ERR_DATASET');
  t.regex(error?.message ?? '', /line 2/);
});

test('training is deterministic: same start, samples and seed give the same weight bytes; another seed does not', (t) => {
  const { train } = trainTestSplit(digits.count, 0.2, 3);
  const a = trainLocal(initialWeights(64, 10), digits, train, options);
  const b = trainLocal(initialWeights(64, 10), digits, train, options);
  const c = trainLocal(initialWeights(64, 10), digits, train, { ...options, seed: 12 });
  t.is(sha(a.weights), sha(b.weights));
  t.not(sha(a.weights), sha(c.weights));
});

test('centralized training learns the digits: held-out accuracy above 90 %', (t) => {
  const { train, test: held } = trainTestSplit(digits.count, 0.2, 3);
  const before = evaluate(initialWeights(64, 10), digits, held).accuracy;
  const trained = trainLocal(initialWeights(64, 10), digits, train, { ...options, epochs: 10 });
  const after = evaluate(trained.weights, digits, held).accuracy;
  t.true(before < 0.2, `untrained accuracy ${before}`);
  t.true(after > 0.9, `trained accuracy ${after}`);
});

test('FedAvg is the sample-weighted mean, computed by hand', (t) => {
  const avg = fedAvg([
    { nodeId: 'b', sampleCount: 3, weights: [2, -4, 0.5] },
    { nodeId: 'a', sampleCount: 1, weights: [10, 4, 0.25] },
  ]);
  // (3*2 + 1*10)/4 = 4; (3*-4 + 4)/4 = -2; (1.5 + 0.25)/4 = 0.4375
  t.deepEqual([...avg], [4, -2, 0.4375]);
});

test('FedAvg gives the same bytes whatever order the updates arrive in', (t) => {
  const { train } = trainTestSplit(digits.count, 0.2, 5);
  const parts = partition(train, digits.labels, 5, 'iid', 5);
  const updates = parts.map((indices, i) => ({ nodeId: `n${i}`, sampleCount: indices.length, weights: trainLocal(initialWeights(64, 10), digits, indices, options).weights }));
  const forward = sha(fedAvg(updates));
  t.is(sha(fedAvg([...updates].reverse())), forward);
  t.is(sha(fedAvg([updates[2], updates[0], updates[4], updates[1], updates[3]] as typeof updates)), forward);
  t.throws(() => fedAvg([updates[0] as (typeof updates)[0], updates[0] as (typeof updates)[0]]), { message: /two updates/ });
});

test('IID partitions cover the training samples once, sizes within one, every part sees every label', (t) => {
  const { train } = trainTestSplit(digits.count, 0.2, 9);
  const parts = partition(train, digits.labels, 8, 'iid', 9);
  const sizes = parts.map((p) => p.length);
  t.true(Math.max(...sizes) - Math.min(...sizes) <= 1, String(sizes));
  t.deepEqual(parts.flat().sort((a, b) => a - b), train);
  for (const part of parts) t.is(new Set(part.map((i) => digits.labels[i])).size, 10);
  t.deepEqual(partition(train, digits.labels, 8, 'iid', 9), parts, 'same seed, same partition');
});

test('label-skewed partitions cover the samples once and each part is dominated by few labels', (t) => {
  const { train } = trainTestSplit(digits.count, 0.2, 9);
  const parts = partition(train, digits.labels, 8, 'label-skew', 9);
  t.deepEqual(parts.flat().sort((a, b) => a - b), train);
  for (const part of parts) {
    const counts = new Map<number, number>();
    for (const i of part) counts.set(digits.labels[i] as number, (counts.get(digits.labels[i] as number) ?? 0) + 1);
    const top = [...counts.values()].sort((a, b) => b - a);
    // two shards of about one label each (a shard may straddle a label boundary): four labels at most, two hold most
    t.true(counts.size <= 4, `labels ${[...counts.keys()].join(',')}`);
    t.true(((top[0] ?? 0) + (top[1] ?? 0)) / part.length >= 0.75);
  }
});

test('a shard URI round-trips and a trainer resolves it to its part alone', (t) => {
  const shard = { datasetUri: 'builtin:digits', part: 2, of: 4, scheme: 'label-skew' as const, seed: 7, testFraction: 0.2 };
  const uri = formatShardUri(shard);
  t.deepEqual(parseShardUri(uri), shard);
  t.throws(() => parseShardUri('builtin:digits#part=4&of=4&scheme=iid&seed=1&test=0.2'), { message: /part must be below/ });
  const result = runTrainingTask(digits, { datasetShardUri: uri, weights: initialWeights(64, 10), options });
  t.is(result.sampleCount, shardIndices(digits, shard).train.length);
  t.deepEqual([...weightsFromBytes(weightsToBytes(result.weights))], [...result.weights]);
});
