import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { BatchQueue } from '../../runtime/batch-queue.js';
import type { DataMover } from '../../runtime/data-mover.js';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { RcClient, type RcCredentials } from '../rclone/rc-client.js';
import { RcloneDataMover } from '../rclone/rclone-data-mover.js';
import { SlurmBatchQueue } from '../slurm/slurm-batch-queue.js';

/**
 * Where the batch queue and the data mover are, and how to reach them. Found in this order:
 * the environment, then `<hpcDir>/connection.json` (written by `npm run hpc:start`), then defaults.
 *
 *   ARCNET_HPC_DIR                 the folder hpc:start keeps its files in (default: ./.hpc)
 *   ARCNET_RCLONE_RC_URL           rclone rcd's URL (default: connection.json's rcUrl, else http://127.0.0.1:5572/)
 *   ARCNET_RCLONE_RC_CREDENTIALS   a JSON file {"user","password"} for the rc API's Basic auth
 *                                  (default: connection.json's rcCredentialsFile; none: no auth)
 *   SLURM_CONF                     slurm.conf for sbatch/squeue/scontrol/scancel (default: connection.json's
 *                                  slurmConf, else Slurm's own default, /etc/slurm/slurm.conf)
 *   ARCNET_SLURM_PARTITION         sbatch -p (default: connection.json's partition, else the cluster's default)
 */
export interface HpcServiceFacts {
  readonly hpcDir: string;
  readonly rcUrl: string;
  readonly rcCredentialsFile: string | null;
  readonly slurmConf: string | null;
  readonly partition: string | null;
}

export interface HpcServices {
  readonly dataMover: DataMover;
  readonly batchQueue: BatchQueue;
  readonly facts: HpcServiceFacts;
}

export const DEFAULT_RC_URL = 'http://127.0.0.1:5572/';

/** The facts alone (for printing, or for a test helper that probes before it builds anything). */
export function hpcServiceFacts(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): HpcServiceFacts {
  const hpcDir = resolve(cwd, nonEmpty(env['ARCNET_HPC_DIR']) ?? '.hpc');
  const connection = readConnectionFile(join(hpcDir, 'connection.json'));
  const slurmConf = nonEmpty(env['SLURM_CONF']) ?? (connection.slurmConf !== undefined && existsSync(connection.slurmConf) ? connection.slurmConf : undefined);
  return {
    hpcDir,
    rcUrl: nonEmpty(env['ARCNET_RCLONE_RC_URL']) ?? connection.rcUrl ?? DEFAULT_RC_URL,
    rcCredentialsFile: nonEmpty(env['ARCNET_RCLONE_RC_CREDENTIALS']) ?? connection.rcCredentialsFile ?? null,
    slurmConf: slurmConf ?? null,
    partition: nonEmpty(env['ARCNET_SLURM_PARTITION']) ?? connection.partition ?? null,
  };
}

/** Both adapters, built from hpcServiceFacts(env). Nothing is contacted until the first call. */
export function hpcServicesFromEnvironment(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): HpcServices {
  const facts = hpcServiceFacts(env, cwd);
  return {
    facts,
    dataMover: new RcloneDataMover({ url: facts.rcUrl, credentials: facts.rcCredentialsFile === null ? undefined : readRcCredentials(facts.rcCredentialsFile) }),
    batchQueue: new SlurmBatchQueue({ slurmConf: facts.slurmConf ?? undefined, partition: facts.partition ?? undefined }),
  };
}

/** {"user","password"} from a file; ARC_ERR_DATA_MOVER saying what to do when it is missing or malformed. */
export function readRcCredentials(file: string): RcCredentials {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ArcError(
      ErrorCodes.DATA_MOVER,
      `cannot read the rclone rc credentials in ${file}: run \`npm run hpc:start\` (it writes them), or set ARCNET_RCLONE_RC_CREDENTIALS to a JSON file {"user": ..., "password": ...}`,
      { file },
      { cause: err },
    );
  }
  const record = parsed as { user?: unknown; password?: unknown } | null;
  if (typeof record?.user !== 'string' || typeof record.password !== 'string') {
    throw new ArcError(ErrorCodes.DATA_MOVER, `${file} must be a JSON object {"user": string, "password": string}`, { file });
  }
  return { user: record.user, password: record.password };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function readConnectionFile(file: string): { rcUrl?: string; rcCredentialsFile?: string; slurmConf?: string; partition?: string } {
  if (!existsSync(file)) return {};
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    const text = (key: string): string | undefined => (typeof parsed[key] === 'string' ? parsed[key] : undefined);
    const out: { rcUrl?: string; rcCredentialsFile?: string; slurmConf?: string; partition?: string } = {};
    for (const key of ['rcUrl', 'rcCredentialsFile', 'slurmConf', 'partition'] as const) {
      const value = text(key);
      if (value !== undefined) out[key] = value;
    }
    return out;
  } catch {
    // A torn or foreign file: fall back to the environment and defaults.
    return {};
  }
}

/** One probe call may take this long before the service counts as not answering. */
const PROBE_TIMEOUT_MS = 5_000;

/**
 * Whether both services answer (`sinfo` lists a node; rcd answers rc/noopauth with the
 * credentials): undefined when they do, else what is wrong, for a notice that says how to fix it.
 */
export async function hpcServicesProblem(facts: HpcServiceFacts): Promise<string | undefined> {
  const slurm = new Promise<string | undefined>((resolvePromise) => {
    const env = facts.slurmConf === null ? process.env : { ...process.env, SLURM_CONF: facts.slurmConf };
    execFile('sinfo', ['-h', '-o', '%T'], { env, timeout: PROBE_TIMEOUT_MS, encoding: 'utf8' }, (error, stdout) => {
      if (error !== null) resolvePromise(`Slurm: sinfo failed (${error.message.split('\n')[0] ?? ''})`);
      else resolvePromise(stdout.trim() === '' ? 'Slurm: sinfo lists no node' : undefined);
    });
  });
  const rclone = (async (): Promise<string | undefined> => {
    try {
      const credentials = facts.rcCredentialsFile === null ? undefined : readRcCredentials(facts.rcCredentialsFile);
      await new RcClient({ url: facts.rcUrl, credentials, requestTimeoutMs: PROBE_TIMEOUT_MS }).call('rc/noopauth');
      return undefined;
    } catch (err) {
      return `rclone rcd at ${facts.rcUrl}: ${err instanceof Error ? err.message : String(err)}`;
    }
  })();
  const problems = (await Promise.all([slurm, rclone])).filter((p): p is string => p !== undefined);
  return problems.length === 0 ? undefined : problems.join('; ');
}
