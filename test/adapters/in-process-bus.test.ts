import test from 'ava';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { InProcessBus } from '../../adapters/bus/in-process-bus.js';
import { realScheduler } from '../../runtime/clock.js';
import { ArcError } from '../../runtime/errors.js';

test('messages reach every subscriber of the topic in publish order, on a later turn', async (t) => {
  const bus = new InProcessBus(realScheduler);
  const a: unknown[] = [];
  const b: unknown[] = [];
  bus.subscribe('arc.x', (m) => a.push(m));
  bus.subscribe('arc.*', (m, topic) => b.push(`${topic}:${String(m)}`));
  bus.publish('arc.x', 1);
  bus.publish('arc.x', 2);
  bus.publish('arc.y', 3);
  t.deepEqual(a, [], 'not delivered inside publish');
  await nextTurn();
  t.deepEqual(a, [1, 2]);
  t.deepEqual(b, ['arc.x:1', 'arc.x:2', 'arc.y:3']);
});

test('a full subscriber queue refuses with ARC_ERR_OVERLOADED and memory stays bounded', async (t) => {
  const bus = new InProcessBus(realScheduler, { maxQueueDepth: 3 });
  const got: unknown[] = [];
  bus.subscribe('t', (m) => got.push(m));
  for (let i = 0; i < 3; i++) bus.publish('t', i);
  const error = t.throws(() => bus.publish('t', 99), { instanceOf: ArcError });
  t.is(error.code, 'ARC_ERR_OVERLOADED');
  t.is(bus.stats().waiting, 3);
  await nextTurn();
  t.deepEqual(got, [0, 1, 2]);
  bus.publish('t', 4);
  await nextTurn();
  t.deepEqual(got, [0, 1, 2, 4]);
});

test('unsubscribing stops delivery', async (t) => {
  const bus = new InProcessBus(realScheduler);
  const got: unknown[] = [];
  const stop = bus.subscribe('t', (m) => got.push(m));
  bus.publish('t', 1);
  stop();
  await nextTurn();
  t.deepEqual(got, []);
});
