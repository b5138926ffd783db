import test from 'ava';
import fc from 'fast-check';
import { SortedList } from '../../runtime/sorted-list.js';

interface Entry {
  readonly key: number;
  readonly id: number;
}

const byKey = (a: Entry, b: Entry): number => a.key - b.key;

const op = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('insert' as const), key: fc.integer({ min: 0, max: 20 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('remove' as const), pick: fc.nat() }) },
);

test('a SortedList holds what a sorted array holds, in the same order, across chunk splits and emptied chunks', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 6 }), fc.array(op, { maxLength: 300 }), (maxChunk, ops) => {
      const list = new SortedList<Entry>(byKey, maxChunk);
      // Reference: a plain array kept sorted, equal keys in insertion order (a stable sort of the inserts).
      let reference: Entry[] = [];
      let nextId = 0;
      for (const step of ops) {
        if (step.kind === 'insert') {
          const entry = { key: step.key, id: nextId++ };
          list.insert(entry);
          reference = [...reference, entry].sort(byKey);
        } else {
          if (reference.length === 0) {
            t.false(list.remove({ key: 0, id: -1 }, () => true));
            continue;
          }
          const victim = reference[step.pick % reference.length] as Entry;
          t.true(list.remove(victim, (candidate) => candidate.id === victim.id));
          reference = reference.filter((entry) => entry.id !== victim.id);
          // Removing it again finds nothing.
          t.false(list.remove(victim, (candidate) => candidate.id === victim.id));
        }
        t.is(list.size, reference.length);
      }
      t.deepEqual([...list], reference);
      const firstOdd = reference.find((entry) => entry.key % 2 === 1);
      t.is(list.find((entry) => entry.key % 2 === 1), firstOdd);
    }),
    { numRuns: 300 },
  );
});

test('a SortedList refuses a chunk size that could not split', (t) => {
  t.throws(() => new SortedList<Entry>(byKey, 1), { instanceOf: RangeError });
});
