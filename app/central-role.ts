import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { FsDataMover } from '../adapters/local-hpc/fs-data-mover.js';
import { ProcessBatchQueue } from '../adapters/local-hpc/process-batch-queue.js';
import { CentralBehaviour, defaultCentralConfig, type CentralConfig } from '../actors/central/central-behaviour.js';
import { CENTRAL_SHARD } from '../actors/central/central-io.js';
import { HpcDriver } from '../actors/central/hpc-driver.js';
import { centralTopics, parseRegionalSummary, parseTrainingJob } from '../actors/central/training-wire.js';
import type { BatchQueue } from '../runtime/batch-queue.js';
import type { DataMover } from '../runtime/data-mover.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import { centralRoutes } from './central-api.js';
import type { Role } from './role.js';

export interface CentralRoleOptions {
  /** The orchestrator's shard id (its journal's name; default CENTRAL): one per cluster. */
  readonly shardId?: string | undefined;
  readonly config?: Partial<CentralConfig> | undefined;
  /** The data mover (rclone's rcd, Globus, or the local one) and the batch queue (Slurm, or the local one). */
  readonly mover: DataMover;
  readonly queue: BatchQueue;
  /** The batch job's command (argv); it finds its inputs in ARCNET_* variables (see jobEnvironment). */
  readonly trainCommand: readonly string[];
  /** Where batch jobs run. */
  readonly jobWorkDir: string;
  readonly jobTimeLimitMinutes?: number | undefined;
  /** How often live transfers and queue jobs are polled (default 1 s). */
  readonly pollEveryMs?: number | undefined;
}

const CENTRAL_UNUSED_TOPICS = /arc\.(telemetry\.node|request\.inference|result\.inference|decision\.inference|reservation\.ended|command\.dispatch\.[^.]+)$/;

const pathOf = (uri: string): string => (uri.startsWith('file://') ? fileURLToPath(uri) : uri);

/** What a training batch job is told: its job id, where its staged data and its checkpoint are. */
export function jobEnvironment(job: { jobId: string; stagedUri: string; checkpointUri: string; datasetUri: string }): Record<string, string> {
  return {
    ARCNET_JOB_ID: job.jobId,
    ARCNET_DATASET_URI: job.datasetUri,
    ARCNET_STAGED_URI: job.stagedUri,
    ARCNET_STAGED_PATH: pathOf(job.stagedUri),
    ARCNET_CHECKPOINT_URI: job.checkpointUri,
    ARCNET_CHECKPOINT_PATH: pathOf(job.checkpointUri),
  };
}

/**
 * The central orchestrator as a role of the one process assembly: one shard
 * (CENTRAL) for the whole federation, because its decisions read across every
 * geozone (the global view ranks them all; a job id is unique across them) and
 * its load is small (jobs and one summary per geozone a minute), so one
 * deterministic order is worth more than parallelism. On Kafka that shard is
 * owned by one member of the consumer group and moves on failover. Its inputs
 * are TrainingJob v1 (arc.job.submission) and RegionalSummary v1
 * (arc.summary.regional); its HPC work is driven by released effects.
 */
export function centralRole(options: CentralRoleOptions): Role {
  const config: CentralConfig = { ...defaultCentralConfig, ...options.config };
  const shard = options.shardId ?? CENTRAL_SHARD;
  let behaviour: CentralBehaviour | undefined;
  return {
    name: 'central',
    shards: () => [shard],
    behaviour: (shardId) => {
      if (shardId !== shard) return undefined;
      behaviour = new CentralBehaviour(config);
      return behaviour;
    },
    shardOf: (input) => {
      if (input.type === 'job.submit' || input.type === 'summary.in' || input.type === 'hpc.observed' || input.type === 'job.cancel') return shard;
      // Telemetry, inference requests, results and node actions belong to a region: say so at once (422), never time out.
      throw new ArcError(ErrorCodes.UNKNOWN_SHARD, `this process is the central orchestrator: send ${input.type} to a region (arcnet region)`);
    },
    inputs: [
      { topic: centralTopics.submission, kind: 'TrainingJob', decode: (raw) => ({ type: 'job.submit', job: parseTrainingJob(raw) }) },
      { topic: centralTopics.summary, kind: 'RegionalSummary', decode: (raw) => ({ type: 'summary.in', summary: parseRegionalSummary(raw) }) },
    ],
    wholeTopics: true,
    // Its journal and snapshots, its inputs and what it publishes; none of a region's node or request topics.
    kafkaTopics: (specs) => specs.filter((spec) => !CENTRAL_UNUSED_TOPICS.test(spec.name)),
    // The behaviour of the shard owned now (none while another member of the group owns it).
    routes: (host) => centralRoutes(host, shard, () => (host.region.supervisor.shardIds.includes(shard) ? behaviour : undefined)),
    status: () => {
      if (behaviour === undefined) return 'orchestrator shard not owned here';
      const jobs = behaviour.jobList();
      const views = behaviour.globalView();
      const hpc = jobs.filter((j) => j.target === 'hpc');
      return `jobs=${jobs.length} hpc=${hpc.length} hpcOpen=${hpc.filter((j) => j.ended === undefined).length} federated=${jobs.length - hpc.length} geozones=${views.length} silent=${views.filter((v) => v.state === 'silent').length}`;
    },
    attach: (host) => {
      const driver = new HpcDriver({
        mover: options.mover,
        queue: options.queue,
        scheduler: host.scheduler,
        observe: (input) => host.submit(input),
        pollEveryMs: options.pollEveryMs ?? 1_000,
        jobSpec: (job) => ({ command: options.trainCommand, workDir: options.jobWorkDir, env: jobEnvironment(job), timeLimitMinutes: options.jobTimeLimitMinutes ?? 60 }),
        onError: (error, context) => host.log.warn({ err: error, ...context }, 'HPC data mover or batch queue call failed; retrying'),
      });
      return {
        onEffects: (effects) => {
          for (const effect of effects) if (effect.type === 'hpc-command') driver.onCommand(effect.command);
        },
        stop: () => driver.stop(),
      };
    },
  };
}

/**
 * A checkpoint writer for the local queue when no --train-command is given: it
 * reads the staged dataset whole (its SHA-256) and writes a small checkpoint
 * naming it, atomically. A site's real training command replaces it.
 */
export const DEFAULT_TRAIN_COMMAND =
  'mkdir -p "$(dirname "$ARCNET_CHECKPOINT_PATH")" && sum=$(sha256sum "$ARCNET_STAGED_PATH" | cut -d" " -f1) && ' +
  'printf \'{"job-id":"%s","dataset-sha256":"%s"}\\n\' "$ARCNET_JOB_ID" "$sum" > "$ARCNET_CHECKPOINT_PATH.tmp" && mv "$ARCNET_CHECKPOINT_PATH.tmp" "$ARCNET_CHECKPOINT_PATH"';

export interface LocalCentralOptions {
  readonly shardId?: string | undefined;
  /** Which data mover and batch queue: `local` (file copies and child processes on this machine). */
  readonly hpc: string | undefined;
  readonly hpcDir: string;
  readonly staging: string | undefined;
  readonly trainCommand: string | undefined;
  readonly pollEveryMs: number | undefined;
  readonly transferBytesPerSec: number | undefined;
  readonly summaryEveryMs: number | undefined;
  readonly stallTimeoutMs: number | undefined;
}

/** The orchestrator with the local data mover and batch queue (`arcnet central --hpc local`, tests, the demo). */
export function localCentralRole(flags: LocalCentralOptions): Role {
  const kind = flags.hpc ?? 'local';
  if (kind !== 'local') {
    throw new ArcError(ErrorCodes.USAGE, `--hpc ${kind}: this build has the local data mover and queue only (--hpc local); Slurm and rclone come with the HPC adapters`);
  }
  if (flags.shardId !== undefined && !/^[A-Z0-9_-]{1,32}$/.test(flags.shardId)) {
    throw new ArcError(ErrorCodes.USAGE, `--central-shard ${flags.shardId}: use upper-case letters, digits, _ or - (at most 32)`);
  }
  const hpcDir = resolve(flags.hpcDir);
  const config: Partial<CentralConfig> = {
    stagingUri: flags.staging ?? pathToFileURL(join(hpcDir, 'staging')).href,
    ...(flags.summaryEveryMs === undefined ? {} : { summaryEveryMs: flags.summaryEveryMs }),
    transferStallTimeoutMs: flags.stallTimeoutMs ?? defaultCentralConfig.transferStallTimeoutMs,
  };
  return centralRole({
    shardId: flags.shardId,
    config,
    mover: new FsDataMover({ stateDir: join(hpcDir, 'transfers'), bytesPerSec: flags.transferBytesPerSec }),
    queue: new ProcessBatchQueue({ stateDir: join(hpcDir, 'queue') }),
    trainCommand: ['/bin/sh', '-c', flags.trainCommand ?? DEFAULT_TRAIN_COMMAND],
    jobWorkDir: hpcDir,
    pollEveryMs: flags.pollEveryMs,
  });
}
