import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { hpcServiceFacts, hpcServicesFromEnvironment, readRcCredentials, type HpcServices } from '../../adapters/hpc/hpc-services.js';
import { RcClient } from '../../adapters/rclone/rc-client.js';
import { repoRoot } from './repo.js';

/**
 * Batch queue and data mover tests run against a real Slurm and a real rclone rcd, found as
 * `arcnet central` finds them (environment, else the repository's .hpc/connection.json written
 * by `npm run hpc:start`). Without them the tests are skipped with a notice, except under
 * CI=true, where missing services are a failure.
 */
export const hpcFacts = hpcServiceFacts(process.env, repoRoot());

async function slurmAnswers(): Promise<string | undefined> {
  try {
    const env = hpcFacts.slurmConf === null ? process.env : { ...process.env, SLURM_CONF: hpcFacts.slurmConf };
    const { stdout } = await promisify(execFile)('sinfo', ['-h', '-o', '%T'], { env, timeout: 10_000 });
    return stdout.trim() === '' ? 'sinfo lists no node' : undefined;
  } catch (err) {
    return `sinfo failed: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
  }
}

async function rcloneAnswers(): Promise<string | undefined> {
  try {
    const credentials = hpcFacts.rcCredentialsFile === null ? undefined : readRcCredentials(hpcFacts.rcCredentialsFile);
    await new RcClient({ url: hpcFacts.rcUrl, credentials, requestTimeoutMs: 5_000 }).call('rc/noopauth');
    return undefined;
  } catch (err) {
    return `rclone rcd at ${hpcFacts.rcUrl}: ${err instanceof Error ? err.message : String(err)}`;
  }
}

const [slurmProblem, rcloneProblem] = await Promise.all([slurmAnswers(), rcloneAnswers()]);

/** Both adapters, as `arcnet central` builds them. */
export function hpcServices(): HpcServices {
  return hpcServicesFromEnvironment(process.env, repoRoot());
}

function register(service: string, problem: string | undefined, title: string, fn: (t: ExecutionContext) => Promise<void>): void {
  if (problem === undefined) {
    test.serial(title, fn);
  } else if (process.env['CI'] === 'true') {
    test(title, (t) => {
      t.fail(`${service} is not running (${problem}); under CI=true that is a failure (.ci/run starts it with npm run hpc:start)`);
    });
  } else {
    console.warn(`${service} test skipped: ${problem} (npm run hpc:start): ${title}`);
    test.skip(`${title} (SKIPPED: no ${service})`, () => undefined);
  }
}

/** Registers a test that needs the Slurm queue. */
export function slurmTest(title: string, fn: (t: ExecutionContext) => Promise<void>): void {
  register('Slurm', slurmProblem, title, fn);
}

/** Registers a test that needs rclone's rcd. */
export function rcloneTest(title: string, fn: (t: ExecutionContext) => Promise<void>): void {
  register('rclone rcd', rcloneProblem, title, fn);
}

/** Registers a test that needs both the Slurm queue and rclone's rcd (`arcnet central --hpc slurm`). */
export function slurmAndRcloneTest(title: string, fn: (t: ExecutionContext) => Promise<void>): void {
  const problems = [slurmProblem, rcloneProblem].filter((p) => p !== undefined);
  register('Slurm and rclone rcd', problems.length === 0 ? undefined : problems.join('; '), title, fn);
}
