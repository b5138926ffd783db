import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import WebSocket from 'ws';
import { readRcCredentials } from '../../adapters/hpc/hpc-services.js';
import { RcClient } from '../../adapters/rclone/rc-client.js';
import { hpcJobWireSchema } from '../../actors/central/training-wire.js';
import type { RegionEffect } from '../../actors/region-io.js';
import { effectToWire } from '../../adapters/bus/topics.js';
import { centralRoleFromFlags, DEFAULT_TRAIN_COMMAND, hpcNameOf } from '../../app/central-role.js';
import { createRegionProcess, type RegionProcess } from '../../app/region-process.js';
import { tempDir } from '../helpers/fixtures.js';
import { hpcFacts, hpcServices, slurmAndRcloneTest } from '../helpers/hpc-services.js';
import { arcnetCli, arcnetSync, startLiveRegion, type LiveRegion } from '../helpers/live-region.js';
import { eventually, jobBody, makeDataset, quiet, replayedHash, sha256File } from './helpers.js';

/**
 * `arcnet central --hpc slurm` on the Slurm queue and rclone rcd that `npm run hpc:start` runs:
 * a job of the HPC class staged by rclone and run by Slurm end to end, and `kill -9` of the
 * orchestrator mid-transfer and while its Slurm job runs.
 */

const slurmEnv = { ...process.env, ...(hpcFacts.slurmConf === null ? {} : { SLURM_CONF: hpcFacts.slurmConf }) };
/** The central process finds the services as a user's would: through the environment. */
const centralEnv = { ...slurmEnv, ARCNET_HPC_DIR: hpcFacts.hpcDir };
const MIB = 1024 * 1024;

/** The name the job's copy, staging folder and Slurm job carry for an orchestrator with data in `data`. */
const hpcName = (data: string, jobId: string): string => hpcNameOf(jobId, pathToFileURL(join(data, 'hpc', 'staging')).href);

/** A dataset folder of `files` random files of `mib` MiB each. */
function makeDatasetFolder(dir: string, files: number, mib: number): void {
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < files; i++) makeDataset(join(dir, `part-${i}.bin`), mib * MIB);
}

/** rcd copies as fast as the disk allows; a bandwidth limit makes the copy last long enough to watch and interrupt. */
async function withRcloneBandwidth<T>(rate: string, fn: () => Promise<T>): Promise<T> {
  const rc = new RcClient({ url: hpcFacts.rcUrl, credentials: hpcFacts.rcCredentialsFile === null ? undefined : readRcCredentials(hpcFacts.rcCredentialsFile) });
  await rc.call('core/bwlimit', { rate });
  try {
    return await fn();
  } finally {
    await rc.call('core/bwlimit', { rate: 'off' });
  }
}

function slurmJobsNamed(name: string): { id: string; state: string }[] {
  const out = execFileSync('squeue', ['-h', '-t', 'all', '-n', name, '-o', '%i|%T'], { env: slurmEnv, encoding: 'utf8' });
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [id = '', state = ''] = l.trim().split('|');
      return { id, state };
    });
}

function scontrolState(queueJobId: string): string {
  const out = execFileSync('scontrol', ['-o', 'show', 'job', queueJobId], { env: slurmEnv, encoding: 'utf8' });
  return /JobState=(\S+)/.exec(out)?.[1] ?? '';
}

async function folderDigests(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(dir).sort()) out[f] = await sha256File(join(dir, f));
  return out;
}

const getJob = async (origin: string, jobId: string): Promise<Record<string, unknown>> => (await (await fetch(`${origin}/v1/jobs/${jobId}`)).json()) as Record<string, unknown>;

const kill9 = async (live: LiveRegion): Promise<void> => {
  const exited = new Promise((resolve) => live.child.once('exit', resolve));
  live.child.kill('SIGKILL');
  await exited;
};

slurmAndRcloneTest('a 2e18-FLOP job over HTTP: rclone stages a few hundred MB with rising progress, Slurm runs it, the checkpoint is written', async (t) => {
  const { dir, cleanup } = tempDir();
  const data = join(dir, 'data');
  const dataset = join(dir, 'dataset');
  makeDatasetFolder(dataset, 6, 50);
  const checkpoint = join(dir, 'ckpt', 'big.json');
  const live = await startLiveRegion(['--data', data, '--hpc', 'slurm', '--poll-every', '200ms'], centralEnv, 'central');
  try {
    t.regex(live.stderr(), /HPC jobs use Slurm and rclone/);
    // The console feed (no keys configured: open), collecting the seed's hpc messages.
    const consoleMessages: Record<string, unknown>[] = [];
    const socket = new WebSocket(`${live.origin.replace(/^http/, 'ws')}/telemetry`);
    socket.on('message', (data: Buffer) => consoleMessages.push(JSON.parse(data.toString()) as Record<string, unknown>));
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    const seen: number[] = [];
    const done = await withRcloneBandwidth('60M', async () => {
      const posted = await fetch(`${live.origin}/v1/jobs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: jobBody('slurm-big', dataset, checkpoint, { 'dataset-size-gb': 0.3 }),
      });
      t.is(posted.status, 202, await posted.text());
      return eventually(
        'the job ended',
        async () => {
          const job = await getJob(live.origin, 'slurm-big');
          const bytes = job['bytes-transferred'];
          if (typeof bytes === 'number' && bytes !== seen[seen.length - 1]) seen.push(bytes);
          return job['state'] === 'completed' || job['state'] === 'failed' || job['state'] === 'cancelled' ? job : undefined;
        },
        150_000,
      );
    });
    t.is(done['state'], 'completed', JSON.stringify(done));
    t.is(done['target'], 'hpc');
    // Progress rose through several values and never went back, ending at the whole dataset.
    t.true(seen.filter((b) => b > 0 && b < 300 * MIB).length >= 2, `progress seen: ${seen.join(',')}`);
    t.deepEqual([...seen].sort((a, b) => a - b), seen);
    t.is(seen[seen.length - 1], 300 * MIB);
    const hpc = await eventually('the console showing the job completed', () =>
      Promise.resolve(consoleMessages.some((m) => m['type'] === 'hpc' && m['status'] === 'completed') ? consoleMessages.filter((m) => m['type'] === 'hpc') : undefined),
    );
    socket.close();
    const moving = hpc.filter((m) => m['status'] === 'transferring' && (m['bytesTransferred'] as number) > 0 && (m['bytesTransferred'] as number) < 300 * MIB);
    t.true(moving.length >= 1, 'the console showed bytes moved mid-transfer');
    t.like(moving[0], { jobId: 'slurm-big', datasetSizeGb: 0.3 });
    const queueJobId = done['queue-job-id'] as string;
    t.regex(queueJobId, /^\d+$/);
    t.is(scontrolState(queueJobId), 'COMPLETED');
    t.deepEqual(slurmJobsNamed(hpcName(data, 'slurm-big')).map((j) => j.id), [queueJobId]);
    // The checkpoint names the staged data's digest, which is the dataset's.
    t.true(existsSync(checkpoint));
    const written = JSON.parse(readFileSync(checkpoint, 'utf8')) as Record<string, string>;
    t.is(written['job-id'], 'slurm-big');
    const staged = join(data, 'hpc', 'staging', hpcName(data, 'slurm-big'));
    t.deepEqual(await folderDigests(staged), await folderDigests(dataset));
    const folderSum = execFileSync('/bin/sh', ['-c', 'cd "$1" && find . -type f | LC_ALL=C sort | xargs -d "\\n" sha256sum | sha256sum | cut -d" " -f1', 'sh', dataset], { encoding: 'utf8' }).trim();
    t.is(written['dataset-sha256'], folderSum);
    const line = await live.stop();
    t.is(await replayedHash(data), line['stateHash'] as string);
  } finally {
    if (live.child.exitCode === null) live.child.kill('SIGKILL');
    cleanup();
  }
});

/** `arcnet central --hpc slurm` as the command line assembles it, in this process (to see what it releases and ask rcd directly). */
async function startSlurmCentral(dir: string, trainCommand?: string): Promise<{ process: RegionProcess; origin: string; released: RegionEffect[]; nameOf: (jobId: string) => string; stagedDir: (jobId: string) => string }> {
  const hpcDir = join(dir, 'hpc');
  const { role, hpc } = await centralRoleFromFlags(
    { hpc: 'slurm', hpcDir, staging: undefined, trainCommand, pollEveryMs: 200, transferBytesPerSec: undefined, summaryEveryMs: undefined, stallTimeoutMs: undefined, services: hpcFacts },
    () => undefined,
  );
  if (hpc !== 'slurm') throw new Error(`--hpc slurm chose ${hpc}`);
  const central = await createRegionProcess({ role, geozones: [], journal: { kind: 'lmdb', dataDir: join(dir, 'data') }, port: 0, security: { rateLimitPerSec: 10_000 }, logger: quiet });
  const released: RegionEffect[] = [];
  central.onReleased((effects) => released.push(...effects));
  await central.start();
  const nameOf = (jobId: string): string => hpcNameOf(jobId, pathToFileURL(join(hpcDir, 'staging')).href);
  return { process: central, origin: central.address as string, released, nameOf, stagedDir: (jobId) => join(hpcDir, 'staging', nameOf(jobId)) };
}

const postJob = (origin: string, body: string): Promise<Response> => fetch(`${origin}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
const ended = (job: Record<string, unknown>): boolean => job['state'] === 'completed' || job['state'] === 'failed' || job['state'] === 'cancelled';

function folderBytes(dir: string): number {
  if (!existsSync(dir)) return 0;
  return readdirSync(dir, { recursive: true, withFileTypes: true }).reduce((sum, entry) => (entry.isFile() ? sum + statSync(join(entry.parentPath, entry.name)).size : sum), 0);
}

slurmAndRcloneTest('HpcJob v1 on ornl.bridge.ingress names the tagged staging folder rclone wrote and the Slurm job\'s real name', async (t) => {
  const { dir, cleanup } = tempDir();
  const dataset = join(dir, 'dataset');
  makeDatasetFolder(dataset, 2, 2);
  const checkpoint = join(dir, 'ckpt', 'ingress.json');
  const central = await startSlurmCentral(dir);
  try {
    const posted = await postJob(central.origin, jobBody('ingress', dataset, checkpoint));
    t.is(posted.status, 202, await posted.text());
    const done = await eventually('the job ended', async () => {
      const job = await getJob(central.origin, 'ingress');
      return ended(job) ? job : undefined;
    }, 120_000);
    t.is(done['state'], 'completed', JSON.stringify(done));
    const name = central.nameOf('ingress');
    const staged = central.stagedDir('ingress');
    const ingress = central.released.filter((e) => e.type === 'hpc-ingress').map((e) => hpcJobWireSchema.parse(effectToWire(e)?.message));
    t.is(ingress.length, 1);
    t.like(ingress[0], { 'job-id': 'ingress', 'staged-uri': pathToFileURL(staged).href, 'batch-job-name': name });
    // What it names is really there: the staged folder holds the dataset, and Slurm knows the job by that name.
    t.deepEqual(await folderDigests(fileURLToPath(ingress[0]?.['staged-uri'] as string)), await folderDigests(dataset));
    t.deepEqual(slurmJobsNamed(ingress[0]?.['batch-job-name'] as string).map((j) => j.id), [done['queue-job-id'] as string]);
    t.like(done, { 'staged-uri': pathToFileURL(staged).href, 'batch-job-name': name });
  } finally {
    await central.process.stop('test done');
    cleanup();
  }
});

slurmAndRcloneTest('POST /v1/jobs/:id/cancel during the rclone copy stops it (no Slurm job); during the Slurm queue cancels the Slurm job', async (t) => {
  const { dir, cleanup } = tempDir();
  const dataset = join(dir, 'dataset');
  makeDatasetFolder(dataset, 4, 25);
  const central = await startSlurmCentral(dir);
  const blocker = execFileSync('sbatch', ['--parsable', '--exclusive', '-J', `blocker-${process.pid}`, '-o', '/dev/null', '-t', '10', '--wrap', 'sleep 600'], { env: slurmEnv, encoding: 'utf8' }).trim().split(';')[0] ?? '';
  try {
    // During the transfer: rclone's copy stops and no Slurm job is ever submitted.
    await withRcloneBandwidth('10M', async () => {
      t.is((await postJob(central.origin, jobBody('cancel-moving', dataset, join(dir, 'ckpt', 'moving.json')))).status, 202);
      await eventually('the copy under way', async () => ((await getJob(central.origin, 'cancel-moving'))['bytes-transferred'] as number) > 0 || undefined, 60_000);
      const cancelled = await fetch(`${central.origin}/v1/jobs/cancel-moving/cancel`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      t.is(cancelled.status, 202, await cancelled.text());
      const copy = await eventually('rclone says the copy stopped', async () => {
        const status = await hpcServices().dataMover.find(central.nameOf('cancel-moving'));
        return status !== undefined && status.state !== 'running' ? status : undefined;
      }, 60_000);
      t.is(copy.state, 'cancelled');
      // Nothing writes into the staging folder any more, and it holds less than the dataset.
      const bytes = folderBytes(central.stagedDir('cancel-moving'));
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      t.is(folderBytes(central.stagedDir('cancel-moving')), bytes);
      t.true(bytes < 100 * MIB);
    });
    const moving = await getJob(central.origin, 'cancel-moving');
    t.like(moving, { state: 'cancelled', 'queue-job-id': null });
    t.deepEqual(slurmJobsNamed(central.nameOf('cancel-moving')), []);

    // In the queue (held PENDING behind the blocker): the Slurm job ends CANCELLED.
    t.is((await postJob(central.origin, jobBody('cancel-queued', dataset, join(dir, 'ckpt', 'queued.json')))).status, 202);
    const queued = await eventually('queued in Slurm', async () => {
      const job = await getJob(central.origin, 'cancel-queued');
      if (ended(job)) throw new Error(JSON.stringify(job));
      return job['state'] === 'queued' && typeof job['queue-job-id'] === 'string' ? job : undefined;
    }, 120_000);
    const queueJobId = queued['queue-job-id'] as string;
    t.is(scontrolState(queueJobId), 'PENDING');
    const cancelled = await fetch(`${central.origin}/v1/jobs/cancel-queued/cancel`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    t.is(cancelled.status, 202, await cancelled.text());
    await eventually('Slurm says CANCELLED', () => Promise.resolve(scontrolState(queueJobId) === 'CANCELLED' || undefined), 60_000);
    t.like(await getJob(central.origin, 'cancel-queued'), { state: 'cancelled', 'queue-job-id': queueJobId });
    t.deepEqual(slurmJobsNamed(central.nameOf('cancel-queued')), [{ id: queueJobId, state: 'CANCELLED' }]);
  } finally {
    execFileSync('scancel', [blocker], { env: slurmEnv });
    await central.process.stop('test done');
    cleanup();
  }
});

slurmAndRcloneTest('kill -9 of arcnet central mid-transfer, while its Slurm job is queued and while it runs: one Slurm job, staged data intact, live hash = replay hash', async (t) => {
  const { dir, cleanup } = tempDir();
  const data = join(dir, 'data');
  const dataset = join(dir, 'dataset');
  makeDatasetFolder(dataset, 4, 50);
  const checkpoint = join(dir, 'ckpt', 'survivor.json');
  const args = ['--data', data, '--hpc', 'slurm', '--poll-every', '200ms', '--train-command', `sleep 8 && ${DEFAULT_TRAIN_COMMAND}`];
  const start = (): Promise<LiveRegion> => startLiveRegion(args, centralEnv, 'central');
  // A job holding the whole node keeps ours PENDING until it is cancelled: the window to kill while queued.
  const blocker = execFileSync('sbatch', ['--parsable', '--exclusive', '-J', `blocker-${process.pid}`, '-o', '/dev/null', '-t', '10', '--wrap', 'sleep 600'], { env: slurmEnv, encoding: 'utf8' }).trim().split(';')[0] ?? '';
  let live = await start();
  try {
    await withRcloneBandwidth('20M', async () => {
      const posted = await fetch(`${live.origin}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: jobBody('slurm-survivor', dataset, checkpoint) });
      t.is(posted.status, 202, await posted.text());
      const origin = live.origin;
      await eventually('a quarter of the dataset moved', async () => ((await getJob(origin, 'slurm-survivor'))['bytes-transferred'] as number) >= 50 * MIB || undefined, 120_000);
      await kill9(live);
      live = await start();
    });
    const second = live.origin;
    const queued = await eventually(
      'the Slurm job queued behind the blocker after the restart',
      async () => {
        const job = await getJob(second, 'slurm-survivor');
        if (job['state'] === 'failed' || job['state'] === 'completed') throw new Error(JSON.stringify(job));
        return job['state'] === 'queued' && typeof job['queue-job-id'] === 'string' ? job : undefined;
      },
      120_000,
    );
    t.is(scontrolState(queued['queue-job-id'] as string), 'PENDING');
    await kill9(live);
    live = await start();
    execFileSync('scancel', [blocker], { env: slurmEnv });
    const afterQueued = live.origin;
    const running = await eventually(
      'the Slurm job running after the restart',
      async () => {
        const job = await getJob(afterQueued, 'slurm-survivor');
        if (job['state'] === 'failed' || job['state'] === 'completed') throw new Error(JSON.stringify(job));
        return job['state'] === 'running' ? job : undefined;
      },
      120_000,
    );
    await kill9(live);
    live = await start();
    const third = live.origin;
    const done = await eventually(
      'completed after the second restart',
      async () => {
        const job = await getJob(third, 'slurm-survivor');
        return job['state'] === 'completed' || job['state'] === 'failed' ? job : undefined;
      },
      120_000,
    );
    t.is(done['state'], 'completed', JSON.stringify(done));
    t.is(running['queue-job-id'], queued['queue-job-id'], 'the queued Slurm job followed by its journaled id after the restart');
    t.is(done['queue-job-id'], running['queue-job-id'], 'the Slurm job found again by its journaled id, not submitted again');
    t.deepEqual(slurmJobsNamed(hpcName(data, 'slurm-survivor')), [{ id: running['queue-job-id'] as string, state: 'COMPLETED' }]);
    t.deepEqual(await folderDigests(join(data, 'hpc', 'staging', hpcName(data, 'slurm-survivor'))), await folderDigests(dataset));
    t.true(existsSync(checkpoint));
    const line = await live.stop();
    t.is(await replayedHash(data), line['stateHash'] as string);
    const replay = arcnetSync('replay', '--journal', data, '--json');
    t.is(replay.status, 0, replay.stderr);
    t.is((JSON.parse(replay.stdout) as { stateHash: string }).stateHash, line['stateHash'] as string);
  } finally {
    if (live.child.exitCode === null) live.child.kill('SIGKILL');
    execFileSync('scancel', [blocker], { env: slurmEnv });
    cleanup();
  }
});

test('--hpc auto without Slurm and rclone answering runs the local mover and queue and says how to start the real ones; --hpc slurm refuses', async (t) => {
  const { dir, cleanup } = tempDir();
  // An rc URL nothing listens on: whatever runs on this machine, the services do not answer here.
  const env = { ...process.env, ARCNET_RCLONE_RC_URL: 'http://127.0.0.1:9/' };
  try {
    const live = await startLiveRegion(['--data', join(dir, 'data'), '--hpc', 'auto', '--poll-every', '100ms'], env, 'central');
    t.regex(live.stderr(), /npm run hpc:start/);
    t.regex(live.stderr(), /local data mover and batch queue/);
    // And the local ones run an HPC job to its checkpoint.
    makeDataset(join(dir, 'small.bin'), MIB);
    const posted = await fetch(`${live.origin}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: jobBody('auto-local', join(dir, 'small.bin'), join(dir, 'ckpt', 'auto-local.json')) });
    t.is(posted.status, 202);
    const done = await eventually('the local job ended', async () => {
      const job = await getJob(live.origin, 'auto-local');
      return job['state'] === 'completed' || job['state'] === 'failed' ? job : undefined;
    });
    t.is(done['state'], 'completed', JSON.stringify(done));
    t.true(existsSync(join(dir, 'ckpt', 'auto-local.json')));
    await live.stop();
    const refused = spawnSync(process.execPath, [arcnetCli, 'central', '--data', join(dir, 'data2'), '--hpc', 'slurm', '--port', '0'], { env, encoding: 'utf8', timeout: 60_000 });
    t.not(refused.status, 0);
    t.regex(refused.stderr, /ARC_ERR_BATCH_QUEUE/);
    t.regex(refused.stderr, /npm run hpc:start/);
  } finally {
    cleanup();
  }
});

slurmAndRcloneTest('arcnet central finds Slurm and rclone by flags: --slurm-conf, --slurm-partition, --rclone-rc-url, --rclone-rc-credentials over an environment that names none', async (t) => {
  const { dir, cleanup } = tempDir();
  // No .hpc/connection.json where it looks, and none of the variables: only the flags say where the services are.
  const env: NodeJS.ProcessEnv = { ...process.env, ARCNET_HPC_DIR: join(dir, 'no-hpc-here') };
  for (const name of ['SLURM_CONF', 'ARCNET_RCLONE_RC_URL', 'ARCNET_RCLONE_RC_CREDENTIALS', 'ARCNET_SLURM_PARTITION']) delete env[name];
  const flags = [
    ...(hpcFacts.slurmConf === null ? [] : ['--slurm-conf', hpcFacts.slurmConf]),
    ...(hpcFacts.partition === null ? [] : ['--slurm-partition', hpcFacts.partition]),
    ...(hpcFacts.rcCredentialsFile === null ? [] : ['--rclone-rc-credentials', hpcFacts.rcCredentialsFile]),
  ];
  try {
    const live = await startLiveRegion(['--data', join(dir, 'data'), '--hpc', 'slurm', '--rclone-rc-url', hpcFacts.rcUrl, ...flags], env, 'central');
    t.regex(live.stderr(), /HPC jobs use Slurm and rclone/);
    t.regex(live.stderr(), new RegExp(`"rcUrl":"${hpcFacts.rcUrl.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}"`));
    await live.stop();
    // A flag beats what the environment would say: an rc URL nothing answers on is refused under --hpc slurm.
    const refused = spawnSync(process.execPath, [arcnetCli, 'central', '--data', join(dir, 'data2'), '--hpc', 'slurm', '--port', '0', '--rclone-rc-url', 'http://127.0.0.1:9/', ...flags], {
      env: { ...env, ARCNET_RCLONE_RC_URL: hpcFacts.rcUrl },
      encoding: 'utf8',
      timeout: 60_000,
    });
    t.not(refused.status, 0);
    t.regex(refused.stderr, /ARC_ERR_BATCH_QUEUE/);
    t.regex(refused.stderr, /rclone rcd at http:\/\/127\.0\.0\.1:9\//);
  } finally {
    cleanup();
  }
});
