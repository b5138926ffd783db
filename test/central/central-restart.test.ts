import test from 'ava';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ProcessBatchQueue } from '../../adapters/local-hpc/process-batch-queue.js';
import { DEFAULT_TRAIN_COMMAND } from '../../app/central-role.js';
import { tempDir } from '../helpers/fixtures.js';
import { arcnetSync, startLiveRegion, type LiveRegion } from '../helpers/live-region.js';
import { eventually, jobBody, makeDataset, replayedHash, sha256File } from './helpers.js';

/**
 * `kill -9` of `arcnet central` mid-transfer, then again while its batch job
 * runs: each restart re-attaches by key and by name, the staged data is whole,
 * the queue ran one job, and the final state hash is the journal's replay.
 */
test('kill -9 mid-transfer and while the batch job runs: one queue job, staged data intact, live hash = replay hash', async (t) => {
  const { dir, cleanup } = tempDir();
  const data = join(dir, 'data');
  const dataset = join(dir, 'dataset.bin');
  makeDataset(dataset, 16 * 1024 * 1024);
  const args = ['--data', data, '--hpc', 'local', '--transfer-rate', String(2 * 1024 * 1024), '--poll-every', '100ms', '--train-command', `sleep 4 && ${DEFAULT_TRAIN_COMMAND}`];
  const start = (): Promise<LiveRegion> => startLiveRegion(args, process.env, 'central');
  const get = async (origin: string): Promise<Record<string, unknown>> => (await (await fetch(`${origin}/v1/jobs/survivor`)).json()) as Record<string, unknown>;
  const kill9 = async (live: LiveRegion): Promise<void> => {
    const exited = new Promise((resolve) => live.child.once('exit', resolve));
    live.child.kill('SIGKILL');
    await exited;
  };

  let live = await start();
  try {
    const posted = await fetch(`${live.origin}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: jobBody('survivor', dataset, join(dir, 'ckpt', 'survivor.json')) });
    t.is(posted.status, 202);
    const origin = live.origin;
    await eventually('a quarter of the dataset moved', async () => ((await get(origin))['bytes-transferred'] as number) >= 4 * 1024 * 1024 || undefined);
    await kill9(live);
    t.true(readdirSync(join(data, 'hpc', 'staging', 'survivor')).some((f) => f.endsWith('.part')), 'killed mid-copy');

    live = await start();
    const second = live.origin;
    const running = await eventually('the batch job running after the restart', async () => {
      const job = await get(second);
      if (job['state'] === 'failed') throw new Error(JSON.stringify(job));
      return job['state'] === 'running' ? job : undefined;
    });
    await kill9(live);

    live = await start();
    const third = live.origin;
    const done = await eventually('completed after the second restart', async () => {
      const job = await get(third);
      return job['state'] === 'completed' || job['state'] === 'failed' ? job : undefined;
    });
    t.is(done['state'], 'completed');
    t.is(done['queue-job-id'], running['queue-job-id'], 'the batch job found again by name, not submitted again');
    const queue = new ProcessBatchQueue({ stateDir: join(data, 'hpc', 'queue') });
    t.deepEqual(queue.names(), ['survivor']);
    t.deepEqual(readdirSync(join(data, 'hpc', 'staging', 'survivor')), ['dataset.bin']);
    t.is(await sha256File(join(data, 'hpc', 'staging', 'survivor', 'dataset.bin')), await sha256File(dataset));
    const line = await live.stop();
    t.is(await replayedHash(data), line['stateHash'] as string);
    // arcnet replay finds the orchestrator's journal in the folder and agrees.
    const replay = arcnetSync('replay', '--journal', data, '--json');
    t.is(replay.status, 0, replay.stderr);
    t.is((JSON.parse(replay.stdout) as { stateHash: string }).stateHash, line['stateHash'] as string);
  } finally {
    if (live.child.exitCode === null) live.child.kill('SIGKILL');
    cleanup();
  }
});
