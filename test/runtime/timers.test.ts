import test from 'ava';
import fc from 'fast-check';
import { TimerWheel } from '../../runtime/timers.js';

test('deadlines fire in (deadline, actor id) order, only when due', (t) => {
  const wheel = new TimerWheel();
  wheel.set('b', 100);
  wheel.set('a', 100);
  wheel.set('c', 50);
  t.is(wheel.popDue(49), undefined);
  t.deepEqual(wheel.popDue(100), { atMs: 50, actorId: 'c' });
  t.deepEqual(wheel.popDue(100), { atMs: 100, actorId: 'a' });
  t.deepEqual(wheel.popDue(100), { atMs: 100, actorId: 'b' });
  t.is(wheel.popDue(1_000), undefined);
});

test('moving or clearing a deadline replaces the old one', (t) => {
  const wheel = new TimerWheel();
  wheel.set('a', 10);
  wheel.set('a', 30);
  wheel.set('b', 20);
  wheel.set('b', undefined);
  t.deepEqual(wheel.popDue(100), { atMs: 30, actorId: 'a' });
  t.is(wheel.popDue(100), undefined);
  t.is(wheel.size, 0);
});

test('the wheel agrees with a sorted list under random churn', (t) => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 30 }), fc.option(fc.integer({ min: 0, max: 2_000 }), { nil: undefined })), { maxLength: 3_000 }), (ops) => {
      const wheel = new TimerWheel();
      const model = new Map<string, number>();
      for (const [actor, at] of ops) {
        wheel.set(`a${actor}`, at);
        if (at === undefined) model.delete(`a${actor}`);
        else model.set(`a${actor}`, at);
      }
      const expected = [...model].map(([actorId, atMs]) => ({ atMs, actorId })).sort((x, y) => x.atMs - y.atMs || (x.actorId < y.actorId ? -1 : 1));
      const fired = [];
      for (let e = wheel.popDue(Infinity); e !== undefined; e = wheel.popDue(Infinity)) fired.push(e);
      t.deepEqual(fired, expected);
    }),
    { numRuns: 100 },
  );
});
