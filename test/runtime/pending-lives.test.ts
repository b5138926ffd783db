import test from 'ava';
import type { JournalRecord } from '../../runtime/journal.js';
import { PendingLives } from '../../runtime/pending-lives.js';

let offset = 0;
const record = (actorId: string, type = 'x'): JournalRecord => ({ offset: offset++, atMs: offset, actorId, kind: 'k', event: { type }, state: 's' });
const offsets = (records: readonly JournalRecord[] | undefined): number[] => (records ?? []).map((r) => r.offset);

test('a life that ends is dropped whole; those still open come out at the end, each in journal order, oldest life first', (t) => {
  const lives = new PendingLives(10, 100);
  const a1 = record('a');
  const b1 = record('b');
  const a2 = record('a');
  const c1 = record('c');
  const b2 = record('b');
  for (const r of [a1, b1, a2, c1, b2]) t.is(lives.hold(r), undefined);
  t.is(lives.end('c'), 1);
  t.false(lives.has('c'));
  t.true(lives.has('a') && lives.has('b'));
  t.deepEqual(offsets(lives.drain()), offsets([a1, a2, b1, b2]));
  t.false(lives.has('a'));
  t.deepEqual(lives.drain(), []);
});

test('a life longer than its limit is given up on: its records come back to be run, and it is no longer held', (t) => {
  const lives = new PendingLives(3, 100);
  const held = [record('n'), record('n'), record('n')];
  for (const r of held) t.is(lives.hold(r), undefined);
  const fourth = record('n');
  t.deepEqual(offsets(lives.hold(fourth)), offsets([...held, fourth]));
  t.false(lives.has('n'));
  t.is(lives.end('n'), 0);
});

test('past the limit in all, the oldest lives are given up on first, until the rest fit', (t) => {
  const lives = new PendingLives(10, 4);
  const a = [record('a'), record('a')];
  const b = [record('b'), record('b')];
  for (const r of [...a, ...b]) t.is(lives.hold(r), undefined);
  const c = record('c');
  t.deepEqual(offsets(lives.hold(c)), offsets(a));
  t.false(lives.has('a'));
  t.true(lives.has('b') && lives.has('c'));
  t.is(lives.end('b'), 2);
  t.deepEqual(offsets(lives.drain()), offsets([c]));
});
