import test from 'ava';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { createRegion } from '../../actors/region.js';
import { InProcessBus } from '../../adapters/bus/in-process-bus.js';
import { topics } from '../../adapters/bus/topics.js';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import { createTrainingWiring } from '../../app/training-wiring.js';
import { MemoryBlobStore } from '../../runtime/blob-store.js';
import { pino } from 'pino';
import { connectInputs, connectTrainingInputs, regionInputTopics } from '../../app/bus-edge.js';
import { ManualClock, realScheduler } from '../../runtime/clock.js';
import { tempDir } from '../helpers/fixtures.js';

const good = {
  'node-id': 'CAISO-1',
  geozone: 'CAISO',
  geohash: '9q9hvu',
  'energy-source': 'grid',
  'battery-level': 0.5,
  'gpu-utilization': 0.3,
  'models-loaded': ['llama-3-70b'],
  timestamp: '2026-01-01T00:00:00Z',
};

test('bad messages on an input topic go to the dead-letter topic with a code, never to an actor, and good ones keep flowing', async (t) => {
  const { dir, cleanup } = tempDir();
  const store = new LmdbStore(dir);
  try {
    const region = createRegion({ geozones: ['CAISO'], store, clock: new ManualClock(1_000), scheduler: realScheduler, deliverForwards: true, onEffects: () => undefined });
    region.supervisor.recover();
    const records: string[] = [];
    region.supervisor.shard('CAISO').observe((record) => records.push(record.event.type));
    const bus = new InProcessBus(realScheduler);
    const dead: { reason: { code: string } }[] = [];
    bus.subscribe(topics.deadLetter, (m) => dead.push(JSON.parse(m as string) as { reason: { code: string } }));
    const edge = connectInputs(bus, regionInputTopics, (input) => region.supervisor.submit(input), () => false, () => undefined);

    bus.publish(topics.telemetry, JSON.stringify({ ...good, 'battery-level': 'full' }));
    bus.publish(topics.telemetry, '{not json');
    bus.publish(topics.telemetry, JSON.stringify({ ...good, 'energy-source': 'fusion' }));
    bus.publish(topics.telemetry, 'x'.repeat(20_000));
    bus.publish(topics.inference, JSON.stringify({ 'request-id': 'r1' }));
    bus.publish(topics.telemetry, JSON.stringify(good));
    await nextTurn();
    await nextTurn();
    await region.supervisor.whenIdle();

    t.deepEqual(
      dead.map((d) => d.reason.code),
      ['ARC_ERR_VALIDATION', 'ARC_ERR_MALFORMED_JSON', 'ARC_ERR_VALIDATION', 'ARC_ERR_PAYLOAD_TOO_LARGE', 'ARC_ERR_VALIDATION'],
    );
    t.is(edge.invalid, 5);
    t.is(edge.accepted, 1);
    t.deepEqual(records, ['@spawn'], 'only the good telemetry reached an actor');
  } finally {
    await store.close();
    cleanup();
  }
});

test('federated tasks and training updates on the bus cross the same validation: bad ones are dead-lettered with a code, train messages for nodes are passed over', async (t) => {
  const { dir, cleanup } = tempDir();
  const store = new LmdbStore(dir);
  try {
    const region = createRegion({ geozones: ['CAISO'], store, clock: new ManualClock(1_000), scheduler: realScheduler, deliverForwards: true, onEffects: () => undefined });
    region.supervisor.recover();
    const bus = new InProcessBus(realScheduler);
    const dead: { topic: string; reason: { code: string } }[] = [];
    bus.subscribe(topics.deadLetter, (m) => dead.push(JSON.parse(m as string) as { topic: string; reason: { code: string } }));
    const handled: string[] = [];
    const training = createTrainingWiring({ region, blobs: new MemoryBlobStore(), log: pino({ level: 'silent' }), delivery: () => undefined });
    const edge = connectTrainingInputs(
      bus,
      async (kind, raw) => {
        if (kind === 'task') await training.submit(raw, () => true);
        else await training.update(raw, () => true);
        handled.push(kind);
      },
      () => false,
      () => undefined,
    );
    const task = { 'job-id': 'bus-1', geozone: 'CAISO', 'model-id': 'm', 'dataset-uri': 'builtin:digits', rounds: 1, 'min-participants': 1, participants: 1, 'round-deadline-ms': 5_000, 'checkpoint-uri': `file://${dir}/ck` };
    bus.publish(topics.training, JSON.stringify({ ...task, rounds: 0 }));
    bus.publish(topics.training, '{nope');
    bus.publish(topics.training, JSON.stringify({ type: 'train', 'job-id': 'x' }));
    bus.publish(topics.trainingResult, JSON.stringify({ 'job-id': 'nope', round: 1, 'node-id': 'n', 'sample-count': 1, 'weights-sha256': 'a'.repeat(64) }));
    bus.publish(topics.training, JSON.stringify(task));
    for (let i = 0; i < 200 && handled.length + dead.length < 4; i++) await nextTurn();
    await new Promise((resolve) => setTimeout(resolve, 200));
    t.deepEqual(dead.map((d) => `${d.topic} ${d.reason.code}`).sort(), [
      'arc.result.training ARC_ERR_NOT_FOUND',
      'arc.scheduler.training ARC_ERR_MALFORMED_JSON',
      'arc.scheduler.training ARC_ERR_VALIDATION',
    ]);
    t.deepEqual(handled, ['task']);
    t.deepEqual(edge, { accepted: 1, invalid: 3, refused: 0 });
    // No node in the geozone: the job was journaled as failed for want of participants.
    t.is(region.behaviours.get('CAISO')?.training.view('bus-1')?.failureReason, 'quorum-not-reached');
  } finally {
    await store.close();
    cleanup();
  }
});
