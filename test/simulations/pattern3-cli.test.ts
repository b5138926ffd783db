import test from 'ava';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/fixtures.js';

const cli = fileURLToPath(new URL('../../cli/arcnet.js', import.meta.url));

function arcnet(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

test('arcnet sim with training prints the jobs and rounds figures, and replay agrees on the hash', async (t) => {
  const { dir, cleanup } = tempDir();
  try {
    const journal = join(dir, 'j');
    const sim = await arcnet('sim', '--seed', '2', '--nodes', '24', '--geozones', 'CAISO,ERCOT', '--duration', '4m', '--rate', '1', '--jobs-per-hour', '90', '--checkpoints', join(dir, 'ck'), '--journal', journal, '--json', '--progress', 'off');
    t.is(sim.status, 0, sim.stderr);
    const result = JSON.parse(sim.stdout.trim()) as { invariantViolations: number; stateHash: string; training: { jobsSubmitted: number; jobs: { classified: { hpc: number; federated: number } }; roundsAggregated: number } };
    t.is(result.invariantViolations, 0);
    t.true(result.training.jobsSubmitted > 0);
    t.is(result.training.jobs.classified.hpc + result.training.jobs.classified.federated, result.training.jobsSubmitted);
    t.true(result.training.roundsAggregated > 0);
    const replay = await arcnet('replay', '--journal', journal, '--json');
    t.is(replay.status, 0, replay.stderr);
    t.is((JSON.parse(replay.stdout.trim()) as { stateHash: string }).stateHash, result.stateHash);
  } finally {
    cleanup();
  }
});

test('flags that cannot apply are refused with a usage error', async (t) => {
  const off = await arcnet('sim', '--seed', '1', '--nodes', '5', '--geozones', 'CAISO', '--duration', '1m', '--journal', '/tmp/unused', '--training', 'off', '--jobs-per-hour', '5');
  t.is(off.status, 2);
  t.regex(off.stderr, /ARC_ERR_USAGE: --jobs-per-hour applies with --training on only/);
  const bad = await arcnet('sim', '--seed', '1', '--nodes', '5', '--geozones', 'CAISO', '--duration', '1m', '--journal', '/tmp/unused', '--training', 'maybe');
  t.is(bad.status, 2);
  const { dir, cleanup } = tempDir();
  try {
    const clash = await arcnet('sim', '--seed', '1', '--nodes', '5', '--geozones', 'CAISO,CENTRAL', '--duration', '1m', '--journal', join(dir, 'j'));
    t.is(clash.status, 2);
    t.regex(clash.stderr, /ARC_ERR_USAGE: --geozones CENTRAL/);
  } finally {
    cleanup();
  }
});
