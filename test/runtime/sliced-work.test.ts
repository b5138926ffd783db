// Long jobs cut into slices give what the one-call versions give, however they are cut.
import test from 'ava';
import fc from 'fast-check';
import { jsonInSlices, Slicer, sortInSlices } from '../../runtime/sliced-work.js';

/** A slicer whose slices end after `every` clock reads, counting its pauses (no real time involved). */
function countingSlicer(every: number): { slicer: Slicer; pauses: () => number } {
  let reads = 0;
  let pauses = 0;
  const slicer = new Slicer(
    () => {
      pauses++;
      return Promise.resolve();
    },
    1,
    () => Math.floor(reads++ / every),
  );
  return { slicer, pauses: () => pauses };
}

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

test('sortInSlices gives what Array.sort gives, stable, for any length and any cut', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(fc.string({ maxLength: 3 }), fc.nat()), { maxLength: 3_000 }), fc.integer({ min: 1, max: 50 }), async (items, every) => {
      const byKey = (a: [string, number], b: [string, number]): number => byText(a[0], b[0]);
      const { slicer } = countingSlicer(every);
      const sliced = await sortInSlices(items, byKey, slicer);
      t.deepEqual(sliced, [...items].sort(byKey));
    }),
    { numRuns: 60 },
  );
  // Long enough to need merging: the loop is let go many times, and the input is left as it was.
  const ids = Array.from({ length: 20_000 }, (_, i) => `node/${((i * 7919) % 20_000).toString().padStart(5, '0')}`);
  const before = [...ids];
  const { slicer, pauses } = countingSlicer(2);
  t.deepEqual(await sortInSlices(ids, byText, slicer), [...ids].sort());
  t.deepEqual(ids, before);
  t.true(pauses() > 100, `paused ${pauses()} times`);
});

test('jsonInSlices writes the text JSON.stringify writes, for any JSON value and long arrays in it', async (t) => {
  const long = fc.array(fc.jsonValue({ maxDepth: 2 }), { minLength: 257, maxLength: 600 });
  const value = fc.oneof(
    fc.jsonValue(),
    long,
    fc.record({ actors: long, behaviourState: fc.record({ ended: fc.array(fc.tuple(fc.uuid(), fc.nat()), { minLength: 250, maxLength: 700 }) }), offset: fc.integer() }),
  );
  await fc.assert(
    fc.asyncProperty(value, fc.integer({ min: 1, max: 20 }), async (v, every) => {
      t.is(await jsonInSlices(v, countingSlicer(every).slicer), JSON.stringify(v));
    }),
    { numRuns: 80 },
  );
  // What JSON skips or nulls, and what it hands to toJSON, stays as JSON.stringify has it.
  const odd = { a: undefined, b: () => 1, c: [undefined, () => 2, ...Array.from({ length: 300 }, (_, i) => i)], d: new Date(0), e: Number.NaN, f: { g: undefined } };
  t.is(await jsonInSlices(odd, countingSlicer(1).slicer), JSON.stringify(odd));
  t.is(await jsonInSlices(undefined), undefined);
});

test('a slicer pauses only once its slice is spent', async (t) => {
  const { slicer, pauses } = countingSlicer(1_000_000);
  for (let i = 0; i < 10_000; i++) if (slicer.due()) await slicer.pause();
  t.is(pauses(), 0);
});
