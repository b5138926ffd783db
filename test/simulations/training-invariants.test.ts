import test from 'ava';
import type { JournalRecord } from '../../runtime/journal.js';
import { InvariantChecker } from '../../simulations/invariants.js';

/** Hand-made journals that break each training rule once: the checker must name it. */
let offset = 0;
const note = (atMs: number, event: Record<string, unknown>): JournalRecord => ({ offset: offset++, atMs, actorId: '@shard', kind: '@shard', event: event as JournalRecord['event'], state: '' });
const f32 = (...values: number[]): Uint8Array => {
  const view = new DataView(new ArrayBuffer(values.length * 4));
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return new Uint8Array(view.buffer);
};
const blobs = new Map<string, Uint8Array>([
  ['a'.repeat(64), f32(1, 2)],
  ['b'.repeat(64), f32(3, 6)],
  // (1*1 + 3*3)/4 = 2.5, (2*1 + 6*3)/4 = 5
  ['c'.repeat(64), f32(2.5, 5)],
  ['d'.repeat(64), f32(2, 4)],
]);

function check(records: JournalRecord[]): Record<string, number> {
  const checker = new InvariantChecker({ blobs: (sha) => blobs.get(sha) });
  checker.checkShard('CAISO', records);
  return checker.finish().byRule;
}

const job = (min: number): JournalRecord => note(0, { type: 'training.job', spec: { jobId: 'j', minParticipants: min }, state: 'training' });
const round = (r: number, atMs: number): JournalRecord => note(atMs, { type: 'training.round', jobId: 'j', round: r, deadlineAtMs: atMs + 1000 });
const update = (r: number, atMs: number, nodeId: string, sampleCount: number, sha: string): JournalRecord =>
  note(atMs, { type: 'training.update', jobId: 'j', round: r, nodeId, sampleCount, weightsSha256: sha });
const closed = (r: number, atMs: number): JournalRecord => note(atMs, { type: 'training.closed', jobId: 'j', round: r });
const aggregated = (r: number, atMs: number, sha: string): JournalRecord => note(atMs, { type: 'training.aggregated', jobId: 'j', round: r, weightsSha256: sha });
const checkpoint = (r: number, atMs: number): JournalRecord => note(atMs, { type: 'training.checkpoint', jobId: 'j', round: r });

test('a clean journal of two rounds breaks no training rule', (t) => {
  const byRule = check([job(2), round(1, 0), update(1, 10, 'n1', 1, 'a'.repeat(64)), update(1, 20, 'n2', 3, 'b'.repeat(64)), closed(1, 20), aggregated(1, 30, 'c'.repeat(64)), checkpoint(1, 40), round(2, 40), update(2, 50, 'n1', 1, 'a'.repeat(64)), update(2, 60, 'n2', 3, 'b'.repeat(64)), closed(2, 60), aggregated(2, 70, 'c'.repeat(64)), checkpoint(2, 80)]);
  t.deepEqual(byRule, {});
});

test('each training rule is named when it is broken', (t) => {
  t.deepEqual(check([job(3), round(1, 0), update(1, 10, 'n1', 1, 'a'.repeat(64)), update(1, 20, 'n2', 3, 'b'.repeat(64)), closed(1, 20), aggregated(1, 30, 'c'.repeat(64))]), { 'training-aggregate-below-quorum': 1 });
  t.deepEqual(check([job(1), round(1, 0), update(1, 2000, 'n1', 1, 'a'.repeat(64))]), { 'training-late-update-counted': 1 });
  t.deepEqual(check([job(1), round(1, 0), closed(1, 10), update(1, 20, 'n1', 1, 'a'.repeat(64))]), { 'training-late-update-counted': 1 });
  t.deepEqual(check([job(1), round(1, 0), closed(1, 10), closed(1, 20)]), { 'training-round-not-ended-once': 1 });
  t.deepEqual(check([job(1), round(1, 0), round(2, 10)]), { 'training-round-not-ended-once': 1 });
  t.deepEqual(check([job(1), round(1, 0), closed(1, 10), checkpoint(1, 20), checkpoint(1, 30)]), { 'training-checkpoint-round-not-increasing': 1 });
  t.deepEqual(check([job(1), round(1, 0), update(1, 10, 'n1', 1, 'a'.repeat(64)), update(1, 20, 'n2', 3, 'b'.repeat(64)), closed(1, 20), aggregated(1, 30, 'd'.repeat(64))]), { 'training-aggregate-not-fedavg': 1 });
});
