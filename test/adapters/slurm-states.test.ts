import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { renderBatchScript, validateBatchJobSpec } from '../../adapters/slurm/batch-script.js';
import { statusFromScontrol } from '../../adapters/slurm/slurm-batch-queue.js';
import { mapSlurmState, parseScontrolLine } from '../../adapters/slurm/slurm-states.js';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';

test('Slurm job states map onto queued, running, completed, failed and cancelled', (t) => {
  const expected: Record<string, ReturnType<typeof mapSlurmState>> = {
    PENDING: 'queued',
    RUNNING: 'running',
    COMPLETING: 'running',
    COMPLETED: 'completed',
    FAILED: 'failed',
    TIMEOUT: 'failed',
    NODE_FAIL: 'failed',
    OUT_OF_MEMORY: 'failed',
    PREEMPTED: 'failed',
    BOOT_FAIL: 'failed',
    DEADLINE: 'failed',
    CANCELLED: 'cancelled',
    'CANCELLED by 0': 'cancelled',
    running: 'running',
  };
  for (const [raw, state] of Object.entries(expected)) t.is(mapSlurmState(raw), state, raw);
  t.is(mapSlurmState('SOMETHING_NEW'), undefined);
});

test('an scontrol -o line is read into the port status, values with spaces included', (t) => {
  const line =
    'JobId=17 JobName=arcnet-job-1 UserId=root(0) JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=7:0 ' +
    'RunTime=00:00:02 Command=/bin/sh -c echo JobState=COMPLETED WorkDir=/tmp/with space StdOut=/tmp/x.out';
  const fields = parseScontrolLine(line);
  // A value holding " Key=" is cut there, and the later "key" never overrides the real one.
  t.is(fields.get('JobState'), 'FAILED');
  t.is(fields.get('WorkDir'), '/tmp/with space');
  t.deepEqual(statusFromScontrol(line), { queueJobId: '17', name: 'arcnet-job-1', state: 'failed', rawState: 'FAILED', exitCode: 7, reason: 'NonZeroExitCode' });
  t.like(statusFromScontrol('JobId=3 JobName=a JobState=CANCELLED Reason=None ExitCode=0:15'), { state: 'cancelled', exitCode: 0, reason: 'signal 15' });
  t.like(statusFromScontrol('JobId=4 JobName=a JobState=PENDING Reason=Resources ExitCode=0:0'), { state: 'queued', exitCode: null, reason: 'Resources' });
  const unknown = t.throws(() => statusFromScontrol('JobId=5 JobName=a JobState=WEIRD ExitCode=0:0'), { instanceOf: ArcError });
  t.is(unknown?.code, ErrorCodes.BATCH_QUEUE);
});

test('the batch script runs the command with exactly its arguments and environment, nothing interpreted by the shell', async (t) => {
  const args = ['it\'s', '$HOME', '`id`', '"quoted"', 'a b', '*', '', 'line\nbreak'];
  const script = renderBatchScript({
    name: 'quoting',
    command: ['node', '-e', 'console.log(JSON.stringify({ args: process.argv.slice(1), v: process.env.TRICKY, cwd: process.cwd() }))', ...args],
    workDir: '/tmp',
    env: { TRICKY: '$(echo no) \'single\' "double"' },
    timeLimitMinutes: 1,
  });
  const { stdout } = await promisify(execFile)('/bin/sh', ['-c', script]);
  t.deepEqual(JSON.parse(stdout), { args, v: '$(echo no) \'single\' "double"', cwd: '/tmp' });
});

test('a spec Slurm would misread is refused with ARC_ERR_VALIDATION naming the field', (t) => {
  const good = { name: 'ok-1', command: ['true'], workDir: '/tmp', env: {}, timeLimitMinutes: 10 };
  t.notThrows(() => validateBatchJobSpec(good));
  const cases: [Partial<typeof good> & Record<string, unknown>, RegExp][] = [
    [{ name: 'has space' }, /name/],
    [{ command: [] }, /command/],
    [{ workDir: 'relative' }, /workDir/],
    [{ env: { 'BAD-NAME': 'x' } }, /env name/],
    [{ timeLimitMinutes: 0 }, /timeLimitMinutes/],
  ];
  for (const [change, message] of cases) {
    const err = t.throws(() => validateBatchJobSpec({ ...good, ...change } ), { instanceOf: ArcError });
    t.is(err?.code, ErrorCodes.VALIDATION);
    t.regex(err?.message ?? '', message);
  }
});
