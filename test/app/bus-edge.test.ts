import test from 'ava';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { createRegion } from '../../actors/region.js';
import { InProcessBus } from '../../adapters/bus/in-process-bus.js';
import { topics } from '../../adapters/bus/topics.js';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import { connectInputs, regionInputTopics } from '../../app/bus-edge.js';
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
