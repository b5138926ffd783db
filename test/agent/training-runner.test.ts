import test from 'ava';
import { pino } from 'pino';
import type { TrainingUpdateV1, TrainTaskV1 } from '../../actors/training-wire.js';
import { loadDataset } from '../../adapters/datasets/dataset-files.js';
import { TrainingRunner } from '../../agent/training-runner.js';
import { UpdateOutbox, updateKey } from '../../agent/update-outbox.js';
import { sha256Hex } from '../../runtime/blob-store.js';
import { formatShardUri, initialWeights, runTrainingTask, weightsFromBytes, weightsToBytes } from '../../training/index.js';

/**
 * The agent's training runner on real worker threads: the update is the trainer's
 * own result for that shard and seed; a re-sent task is not trained again; at most
 * --max-trainings run at once; a task past its deadline is skipped; weights named
 * by hash only are fetched and checked against the hash.
 */

const logger = pino({ level: 'silent' });
const shard = (part: number): string => formatShardUri({ datasetUri: 'builtin:digits', part, of: 4, scheme: 'iid', seed: 3, testFraction: 0.2 });
const hyper = { 'learning-rate': 0.5, 'local-epochs': 2, 'batch-size': 16, l2: 1e-4, seed: 11 };

function task(round: number, overrides: Partial<TrainTaskV1> = {}): TrainTaskV1 {
  return {
    type: 'train',
    'job-id': 'job-1',
    round,
    'node-id': 'n1',
    geozone: 'CAISO',
    'model-id': 'digits-softmax',
    'dataset-shard-uri': shard(round % 4),
    'weights-sha256': null,
    weights: null,
    'hyper-parameters': hyper,
    deadline: new Date(Date.now() + 60_000).toISOString(),
    ...overrides,
  };
}

function runner(fetched: Map<string, Uint8Array> = new Map()) {
  const outbox = new UpdateOutbox(10);
  const updates: TrainingUpdateV1[] = [];
  let waiting: (() => void) | undefined;
  const r = new TrainingRunner({
    nodeId: 'n1',
    maxConcurrentTrainings: 1,
    maxQueuedTrainings: 2,
    maxRememberedTasks: 100,
    outbox,
    onUpdate: (update) => {
      updates.push(update);
      waiting?.();
    },
    fetchWeights: (sha) => Promise.resolve(fetched.get(sha)),
    wallNowMs: () => Date.now(),
    logger,
  });
  const updatesReach = (count: number): Promise<void> =>
    new Promise((resolve) => {
      const check = (): void => (updates.length >= count ? resolve() : undefined);
      waiting = check;
      check();
    });
  return { r, outbox, updates, updatesReach };
}

test('an update is the trainer result for the shard and seed; a re-sent task is not trained again; one training at a time', async (t) => {
  const { r, outbox, updates, updatesReach } = runner();
  r.offer(task(1));
  r.offer(task(1));
  r.offer(task(2));
  t.is(r.duplicates, 1);
  t.is(r.size, 2, 'one running, one waiting');
  await updatesReach(2);
  t.deepEqual(updates.map((u) => u.round), [1, 2], 'in the order taken');
  const dataset = loadDataset('builtin:digits');
  const expected = runTrainingTask(dataset, {
    datasetShardUri: shard(1),
    weights: initialWeights(dataset.featureCount, dataset.classCount),
    options: { epochs: 2, learningRate: 0.5, batchSize: 16, l2: 1e-4, seed: 11 },
  });
  const first = updates[0] as TrainingUpdateV1;
  t.is(first['sample-count'], expected.sampleCount);
  t.is(sha256Hex(new Uint8Array(Buffer.from(first.weights as string, 'base64'))), sha256Hex(weightsToBytes(expected.weights)));
  t.is(outbox.size, 2, 'owed until accepted');
  t.true(outbox.settle(updateKey('job-1', 1)));
  t.is(outbox.size, 1);
  r.offer(task(1));
  t.is(r.duplicates, 2, 'still remembered once accepted');
  t.is(r.trained, 2);
  await r.stop();
});

test('a task past its deadline is skipped; a task for another node or malformed is ignored', async (t) => {
  const { r, updates } = runner();
  r.offer(task(1, { deadline: new Date(Date.now() - 1_000).toISOString() }));
  r.offer(task(2, { 'node-id': 'n2' }));
  r.offer({ type: 'train', 'job-id': 'job-1' });
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.is(r.expired, 1);
  t.is(r.size, 0);
  t.deepEqual(updates, []);
  await r.stop();
});

test('weights named by hash only are fetched and must match their hash', async (t) => {
  const start = new Float32Array(650).fill(0.01);
  const bytes = weightsToBytes(start);
  const sha = sha256Hex(bytes);
  const wrongSha = sha256Hex(new Uint8Array([1]));
  const { r, updates, updatesReach } = runner(new Map([[sha, bytes], [wrongSha, bytes]]));
  r.offer(task(2, { 'weights-sha256': wrongSha }));
  r.offer(task(3, { 'weights-sha256': sha }));
  await updatesReach(1);
  t.is(r.failed, 1, 'bytes that do not hash to the name are refused');
  const dataset = loadDataset('builtin:digits');
  const expected = runTrainingTask(dataset, { datasetShardUri: shard(3), weights: weightsFromBytes(bytes), options: { epochs: 2, learningRate: 0.5, batchSize: 16, l2: 1e-4, seed: 11 } });
  t.is(updates[0]?.weights, Buffer.from(weightsToBytes(expected.weights)).toString('base64'));
  await r.stop();
});
