import test from 'ava';
import type { BatchJobSpec } from '../../runtime/batch-queue.js';
import { ManualClock } from '../../runtime/clock.js';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { SimulatedBatchQueue } from '../../simulations/simulated-batch-queue.js';
import { SimulatedDataMover } from '../../simulations/simulated-data-mover.js';

const GB = 1e9;
const noFaults = { stall: 0, fail: 0, corrupt: 0 };
const request = (key: string) => ({ key, sourceUri: `file:///datasets/${key}`, destinationUri: '/staging' });
const spec = (name: string, timeLimitMinutes = 120): BatchJobSpec => ({ name, command: ['train'], workDir: '/work', env: {}, timeLimitMinutes });

test('simulated mover: a copy progresses with simulated time, succeeds and verifies; starting it again returns the same copy', async (t) => {
  const clock = new ManualClock(1_000);
  const mover = new SimulatedDataMover({ clock, seed: 1, sourceSizeBytes: () => 10 * GB, bytesPerSecond: GB, faultRates: noFaults });
  const started = await mover.start(request('job-1'));
  t.like(started, { state: 'running', bytesDone: 0, bytesTotal: 10 * GB, error: null });
  t.is(mover.nextChangeAtMs(), 11_000);
  clock.set(4_000);
  t.like(await mover.status(started.transferId), { state: 'running', bytesDone: 3 * GB });
  t.is((await mover.start(request('job-1'))).transferId, started.transferId);
  clock.set(11_000);
  t.like(await mover.status(started.transferId), { state: 'succeeded', bytesDone: 10 * GB, bytesTotal: 10 * GB });
  t.true((await mover.verify(request('job-1'))).ok);
  t.is((await mover.find('job-1'))?.transferId, started.transferId);
  t.is(await mover.find('job-unknown'), undefined);
  const unknown = await t.throwsAsync(mover.status('sim-nope-0'), { instanceOf: ArcError });
  t.is(unknown?.code, ErrorCodes.UNKNOWN_QUEUE_ITEM);
});

test('simulated mover: a stalled copy stops moving for good; cancelled and started again, the new copy moves only what is left', async (t) => {
  const clock = new ManualClock(0);
  const mover = new SimulatedDataMover({ clock, seed: 2, sourceSizeBytes: () => 10 * GB, bytesPerSecond: GB, faultRates: noFaults, forcedFaults: { stuck: 'stall' } });
  const first = await mover.start(request('stuck'));
  clock.set(60_000);
  const stalled = await mover.status(first.transferId);
  t.is(stalled.state, 'running');
  t.true(stalled.bytesDone > 0 && stalled.bytesDone < 10 * GB);
  clock.set(3_600_000);
  t.is((await mover.status(first.transferId)).bytesDone, stalled.bytesDone);
  t.is(mover.nextChangeAtMs(), undefined);
  await mover.cancel(first.transferId);
  t.like(await mover.status(first.transferId), { state: 'cancelled', bytesDone: stalled.bytesDone });
  t.false((await mover.verify(request('stuck'))).ok);

  const second = await mover.start(request('stuck'));
  t.not(second.transferId, first.transferId);
  t.is(second.bytesTotal, 10 * GB - stalled.bytesDone);
  t.is((await mover.find('stuck'))?.transferId, second.transferId);
  clock.set(3_600_000 + 10_000);
  t.is((await mover.status(second.transferId)).state, 'succeeded');
  t.true((await mover.verify(request('stuck'))).ok);
  t.deepEqual(mover.transfers().map((c) => c.fault), ['stall', 'none']);
});

test('simulated mover: a failing copy fails part-way with a reason; a corrupt one succeeds but does not verify', async (t) => {
  const clock = new ManualClock(0);
  const mover = new SimulatedDataMover({ clock, seed: 3, sourceSizeBytes: () => GB, bytesPerSecond: GB, faultRates: noFaults, forcedFaults: { broken: 'fail', rotten: 'corrupt' } });
  const broken = await mover.start(request('broken'));
  const rotten = await mover.start(request('rotten'));
  clock.set(2_000);
  const failed = await mover.status(broken.transferId);
  t.is(failed.state, 'failed');
  t.true(failed.bytesDone < GB);
  t.regex(failed.error ?? '', /simulated/);
  t.is((await mover.status(rotten.transferId)).state, 'succeeded');
  const verdict = await mover.verify(request('rotten'));
  t.false(verdict.ok);
  t.regex(verdict.detail, /differs/);
});

test('simulated mover: the same seed and calls give the same answers; faults strike at about their rates', async (t) => {
  const runOnce = async (seed: number): Promise<string> => {
    const clock = new ManualClock(0);
    const mover = new SimulatedDataMover({ clock, seed, sourceSizeBytes: (r) => (r.key.length * 7919 % 50) * GB, faultRates: { stall: 0.1, fail: 0.1, corrupt: 0.05 } });
    const ids = [];
    for (let i = 0; i < 400; i++) {
      clock.set(i * 1_000);
      ids.push((await mover.start(request(`job-${i}`))).transferId);
    }
    clock.set(10_000_000);
    const statuses = await Promise.all(ids.map((id) => mover.status(id)));
    return JSON.stringify(statuses);
  };
  const a = await runOnce(42);
  t.is(await runOnce(42), a);
  t.not(await runOnce(43), a);
  const states = (JSON.parse(a) as { state: string }[]).map((s) => s.state);
  const failed = states.filter((s) => s === 'failed').length;
  const stuck = states.filter((s) => s === 'running').length;
  t.true(failed > 15 && failed < 70, `failed ${failed} of 400`);
  t.true(stuck > 15 && stuck < 70, `stalled ${stuck} of 400`);
});

test('simulated queue: first come first served over its nodes, with the scheduling delay and run times', async (t) => {
  const clock = new ManualClock(0);
  const queue = new SimulatedBatchQueue({ clock, seed: 1, nodes: 1, schedulingDelayMs: 5_000, runDurationMs: () => 60_000, faultRates: { fail: 0, nodeLost: 0 } });
  const a = await queue.submit(spec('a'));
  const b = await queue.submit(spec('b'));
  t.like(a, { queueJobId: '1', state: 'queued', rawState: 'PENDING', resubmitted: true });
  t.is(b.queueJobId, '2');
  t.is(queue.nextChangeAtMs(), 5_000);
  clock.set(5_000);
  t.like(await queue.status('1'), { state: 'running', rawState: 'RUNNING' });
  t.like(await queue.status('2'), { state: 'queued' });
  clock.set(65_000);
  t.like(await queue.status('1'), { state: 'completed', rawState: 'COMPLETED', exitCode: 0 });
  t.like(await queue.status('2'), { state: 'running' });
  t.is(queue.nextChangeAtMs(), 125_000);
  // Submitting a known name again finds the job, never a second one.
  const again = await queue.submit(spec('a'));
  t.like(again, { queueJobId: '1', resubmitted: false, state: 'completed' });
  t.deepEqual(queue.submissions().map((s) => s.name), ['a', 'b']);
  t.is((await queue.findByName('b'))?.queueJobId, '2');
  t.is(await queue.findByName('c'), undefined);
});

test('simulated queue: a failing job, a lost node (the queue waits for it to come back), a job over its time limit', async (t) => {
  const clock = new ManualClock(0);
  const queue = new SimulatedBatchQueue({
    clock, seed: 2, nodes: 1, schedulingDelayMs: 0, nodeDownMs: 600_000, faultRates: { fail: 0, nodeLost: 0 },
    runDurationMs: (s) => (s.name === 'slow' ? 120_000 : 60_000),
    forcedFates: { bad: 'fail', lost: 'nodeLost' },
  });
  await queue.submit(spec('bad'));
  await queue.submit(spec('lost'));
  await queue.submit({ ...spec('slow', 1), timeLimitMinutes: 1 });
  await queue.submit(spec('after'));
  clock.set(200_000);
  t.like(await queue.status('1'), { state: 'failed', rawState: 'FAILED', exitCode: 1, reason: 'NonZeroExitCode' });
  t.like(await queue.status('2'), { state: 'failed', rawState: 'NODE_FAIL' });
  // The only node is down for 10 minutes after it was lost: the rest wait.
  t.like(await queue.status('3'), { state: 'queued' });
  clock.set(2_000_000);
  t.like(await queue.status('3'), { state: 'failed', rawState: 'TIMEOUT' });
  t.like(await queue.status('4'), { state: 'completed' });
});

test('simulated queue: cancel while queued and while running; a running cancel frees its node', async (t) => {
  const clock = new ManualClock(0);
  const queue = new SimulatedBatchQueue({ clock, seed: 3, nodes: 1, schedulingDelayMs: 0, runDurationMs: () => 60_000, faultRates: { fail: 0, nodeLost: 0 } });
  await queue.submit(spec('running'));
  await queue.submit(spec('waiting'));
  await queue.submit(spec('next'));
  clock.set(1_000);
  await queue.cancel('2');
  t.like(await queue.status('2'), { state: 'cancelled', rawState: 'CANCELLED' });
  await queue.cancel('1');
  t.like(await queue.status('1'), { state: 'cancelled' });
  t.like(await queue.status('3'), { state: 'running' });
  await queue.cancel('1');
  clock.set(61_000);
  t.like(await queue.status('3'), { state: 'completed' });
});

test('simulated queue: the same seed gives the same run; the default rates fail some jobs', async (t) => {
  const runOnce = async (seed: number): Promise<string> => {
    const clock = new ManualClock(0);
    const queue = new SimulatedBatchQueue({ clock, seed, faultRates: { fail: 0.1, nodeLost: 0.05 } });
    for (let i = 0; i < 300; i++) {
      clock.set(i * 60_000);
      await queue.submit(spec(`job-${i}`));
    }
    clock.set(1_000 * 3_600_000);
    return JSON.stringify(await Promise.all(queue.submissions().map((s) => queue.status(s.queueJobId))));
  };
  const a = await runOnce(7);
  t.is(await runOnce(7), a);
  t.not(await runOnce(8), a);
  const states = (JSON.parse(a) as { state: string; rawState: string }[]);
  t.true(states.every((s) => s.state === 'completed' || s.state === 'failed'));
  const nodeFails = states.filter((s) => s.rawState === 'NODE_FAIL').length;
  const failed = states.filter((s) => s.rawState === 'FAILED').length;
  t.true(nodeFails > 3 && nodeFails < 40, `NODE_FAIL ${nodeFails}`);
  t.true(failed > 10 && failed < 60, `FAILED ${failed}`);
});
