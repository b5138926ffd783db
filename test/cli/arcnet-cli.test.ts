import test from 'ava';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/fixtures.js';

const cli = fileURLToPath(new URL('../../cli/arcnet.js', import.meta.url));

function arcnet(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

test('arcnet sim prints one JSON line with the promised fields, and arcnet replay agrees on the state hash', (t) => {
  const { dir, cleanup } = tempDir();
  try {
    const sim = arcnet('sim', '--seed', '9', '--nodes', '60', '--geozones', 'CAISO,ERCOT', '--duration', '2m', '--rate', '20', '--journal', `${dir}/j`, '--json');
    t.is(sim.status, 0, sim.stderr);
    const lines = sim.stdout.trim().split('\n');
    t.is(lines.length, 1, 'exactly one line on stdout');
    const result = JSON.parse(lines[0] ?? '{}') as Record<string, unknown>;
    for (const field of ['seed', 'nodes', 'geozones', 'durationMs', 'events', 'requests', 'routed', 'completed', 'rejected', 'forwarded', 'expired', 'nodeTimeouts', 'invariantViolations', 'stateHash', 'wallMs']) {
      t.true(field in result, `field ${field}`);
    }
    t.is(result['seed'], 9);
    t.is(result['durationMs'], 120_000);
    t.deepEqual(result['geozones'], ['CAISO', 'ERCOT']);
    t.is(result['invariantViolations'], 0);

    const replay = arcnet('replay', '--journal', `${dir}/j`, '--json');
    t.is(replay.status, 0, replay.stderr);
    const replayed = JSON.parse(replay.stdout.trim()) as Record<string, unknown>;
    t.is(replayed['stateHash'], result['stateHash']);
    t.is(replayed['events'], result['events']);
  } finally {
    cleanup();
  }
});

test('usage errors exit 2 with a coded message; a missing journal is ARC_ERR_NO_JOURNAL', (t) => {
  const noSeed = arcnet('sim', '--nodes', '5', '--geozones', 'CAISO', '--duration', '1m', '--journal', '/tmp/x');
  t.is(noSeed.status, 2);
  t.regex(noSeed.stderr, /ARC_ERR_USAGE: missing --seed/);
  const badDuration = arcnet('sim', '--seed', '1', '--nodes', '5', '--geozones', 'CAISO', '--duration', 'soon', '--journal', '/tmp/x');
  t.regex(badDuration.stderr, /ARC_ERR_USAGE: cannot read duration 'soon'/);
  const unknown = arcnet('teleport');
  t.is(unknown.status, 2);
  const { dir, cleanup } = tempDir();
  try {
    const missing = arcnet('replay', '--journal', `${dir}/nothing-here`);
    t.is(missing.status, 1);
    t.regex(missing.stderr, /ARC_ERR_NO_JOURNAL/);
  } finally {
    cleanup();
  }
});

test('an encrypted data folder: sim writes it with the data key, replay and audit need the same key', (t) => {
  const { dir, cleanup } = tempDir();
  try {
    const key = randomBytes(32).toString('hex');
    const withKey = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, ARCNET_DATA_KEY: key } });
    const sim = withKey('sim', '--seed', '3', '--nodes', '30', '--geozones', 'CAISO', '--duration', '1m', '--rate', '10', '--journal', `${dir}/j`, '--json', '--progress', 'off');
    t.is(sim.status, 0, sim.stderr);
    const simmed = JSON.parse(sim.stdout.trim()) as { stateHash: string };
    const noKey = arcnet('replay', '--journal', `${dir}/j`, '--json');
    t.is(noKey.status, 1);
    t.regex(noKey.stderr, /ARC_ERR_DATA_KEY/);
    const replay = withKey('replay', '--journal', `${dir}/j`, '--json');
    t.is(replay.status, 0, replay.stderr);
    t.is((JSON.parse(replay.stdout.trim()) as { stateHash: string }).stateHash, simmed.stateHash);
    const audit = withKey('audit', 'verify', '--journal', `${dir}/j`, '--json');
    t.is(audit.status, 0, audit.stderr);
  } finally {
    cleanup();
  }
});
