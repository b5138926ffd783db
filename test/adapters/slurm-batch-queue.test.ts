import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { ExecutionContext } from 'ava';
import { SlurmBatchQueue } from '../../adapters/slurm/slurm-batch-queue.js';
import { isTerminalBatchJobState, type BatchJobSpec, type BatchJobState, type BatchJobStatus, type BatchQueue } from '../../runtime/batch-queue.js';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { hpcFacts, hpcServices, slurmTest } from '../helpers/hpc-services.js';

const run = `${process.pid.toString(36)}${Math.floor(performance.timeOrigin).toString(36)}`;
const workDir = mkdtempSync(join(tmpdir(), 'arcnet-slurm-'));
const WAIT_MS = 90_000;

function spec(name: string, command: string[], env: Record<string, string> = {}): BatchJobSpec {
  return { name: `arcnet-test-${run}-${name}`, command, workDir, env, timeLimitMinutes: 5 };
}

async function waitForState(queue: BatchQueue, id: string, accept: (s: BatchJobState) => boolean, t: ExecutionContext): Promise<BatchJobStatus> {
  const deadline = performance.now() + WAIT_MS;
  let last: BatchJobStatus | undefined;
  while (performance.now() < deadline) {
    last = await queue.status(id);
    if (accept(last.state)) return last;
    await sleep(200);
  }
  t.fail(`job ${id} still ${JSON.stringify(last)} after ${WAIT_MS} ms`);
  throw new Error('timed out');
}

async function scontrolJobState(id: string): Promise<string> {
  const env = hpcFacts.slurmConf === null ? process.env : { ...process.env, SLURM_CONF: hpcFacts.slurmConf };
  const { stdout } = await promisify(execFile)('scontrol', ['-o', 'show', 'job', id], { env });
  return /JobState=(\S+)/.exec(stdout)?.[1] ?? '';
}

slurmTest('a job that writes a checkpoint completes: state completed, the file there, scontrol says COMPLETED', async (t) => {
  const queue = hpcServices().batchQueue;
  const checkpoint = join(workDir, `checkpoint-${run}.json`);
  const submitted = await queue.submit(
    spec('ckpt', ['/bin/sh', '-c', 'printf \'{"step": %s}\' "$STEPS" > "$CHECKPOINT_PATH"'], { CHECKPOINT_PATH: checkpoint, STEPS: '42' }),
  );
  t.true(submitted.resubmitted);
  t.regex(submitted.queueJobId, /^\d+$/);
  const done = await waitForState(queue, submitted.queueJobId, isTerminalBatchJobState, t);
  t.is(done.state, 'completed', JSON.stringify(done));
  t.is(done.exitCode, 0);
  t.is(done.rawState, 'COMPLETED');
  t.is(await scontrolJobState(submitted.queueJobId), 'COMPLETED');
  t.true(existsSync(checkpoint));
  t.deepEqual(JSON.parse(readFileSync(checkpoint, 'utf8')), { step: 42 });
});

slurmTest('a failing command ends failed with its exit code', async (t) => {
  const queue = hpcServices().batchQueue;
  const submitted = await queue.submit(spec('fail', ['/bin/sh', '-c', 'echo broken >&2; exit 7']));
  const done = await waitForState(queue, submitted.queueJobId, isTerminalBatchJobState, t);
  t.is(done.state, 'failed', JSON.stringify(done));
  t.is(done.rawState, 'FAILED');
  t.is(done.exitCode, 7);
  t.is(done.reason, 'NonZeroExitCode');
});

slurmTest('submitting one name twice, also from a new adapter (a restarted caller), gives one Slurm job', async (t) => {
  const first = hpcServices().batchQueue;
  const job = spec('once', ['/bin/sh', '-c', 'sleep 2']);
  // Two submits at once through one adapter, then one through another: all the same job.
  const [a, b] = await Promise.all([first.submit(job), first.submit(job)]);
  const restarted = await hpcServices().batchQueue.submit(job);
  t.deepEqual([a.resubmitted, b.resubmitted, restarted.resubmitted].sort(), [false, false, true]);
  t.is(a.queueJobId, b.queueJobId);
  t.is(restarted.queueJobId, a.queueJobId);
  const found = await hpcServices().batchQueue.findByName(job.name);
  t.is(found?.queueJobId, a.queueJobId);
  // Still one after it finished: finished jobs are looked up too (within MinJobAge).
  await waitForState(first, a.queueJobId, isTerminalBatchJobState, t);
  const again = await first.submit(job);
  t.false(again.resubmitted);
  t.is(again.queueJobId, a.queueJobId);
  t.is(again.state, 'completed');
});

slurmTest('cancel while queued and while running ends cancelled', async (t) => {
  const queue = hpcServices().batchQueue;
  // Fill the node's CPUs so one more job has to wait in the queue.
  const cpus = Number((await promisify(execFile)('nproc')).stdout.trim());
  const fillers = [];
  for (let i = 0; i < cpus; i++) fillers.push(await queue.submit(spec(`filler${i}`, ['/bin/sh', '-c', 'sleep 300'])));
  try {
    for (const f of fillers) await waitForState(queue, f.queueJobId, (s) => s === 'running', t);
    const waiting = await queue.submit(spec('waiting', ['/bin/sh', '-c', 'sleep 300']));
    t.is((await queue.status(waiting.queueJobId)).state, 'queued');
    await queue.cancel(waiting.queueJobId);
    const cancelledQueued = await waitForState(queue, waiting.queueJobId, isTerminalBatchJobState, t);
    t.is(cancelledQueued.state, 'cancelled');

    const running = fillers[0];
    if (running === undefined) throw new Error('no filler');
    await queue.cancel(running.queueJobId);
    const cancelledRunning = await waitForState(queue, running.queueJobId, isTerminalBatchJobState, t);
    t.is(cancelledRunning.state, 'cancelled');
    t.is(cancelledRunning.rawState.split(' ')[0], 'CANCELLED');
    // Cancelling a job that ended is not an error.
    await queue.cancel(running.queueJobId);
  } finally {
    for (const f of fillers) await queue.cancel(f.queueJobId).catch(() => undefined);
  }
});

slurmTest('an unknown job id is ARC_ERR_UNKNOWN_QUEUE_ITEM; an unreachable Slurm is ARC_ERR_BATCH_QUEUE saying how to start it', async (t) => {
  const queue = hpcServices().batchQueue;
  const unknown = await t.throwsAsync(queue.status('999999999'), { instanceOf: ArcError });
  t.is(unknown?.code, ErrorCodes.UNKNOWN_QUEUE_ITEM);
  t.is(await queue.findByName(`arcnet-test-${run}-never-submitted`), undefined);

  const conf = join(workDir, 'nowhere.conf');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(conf, readFileSync(hpcFacts.slurmConf ?? '/etc/slurm/slurm.conf', 'utf8').replace(/^SlurmctldPort=\d+$/m, 'SlurmctldPort=1'));
  const nowhere = new SlurmBatchQueue({ slurmConf: conf, commandTimeoutMs: 60_000 });
  const down = await t.throwsAsync(nowhere.findByName('anything'), { instanceOf: ArcError });
  t.is(down?.code, ErrorCodes.BATCH_QUEUE);
  t.regex(down?.message ?? '', /npm run hpc:start/);
});
