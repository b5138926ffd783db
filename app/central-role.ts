import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { hpcServiceFacts, hpcServicesFromEnvironment, hpcServicesProblem, type HpcServiceFacts } from '../adapters/hpc/hpc-services.js';
import { FsDataMover } from '../adapters/local-hpc/fs-data-mover.js';
import { ProcessBatchQueue } from '../adapters/local-hpc/process-batch-queue.js';
import { CentralBehaviour, defaultCentralConfig, type CentralConfig } from '../actors/central/central-behaviour.js';
import type { AlertConfig, AlertRule } from '../actors/central/alerts.js';
import { CENTRAL_SHARD } from '../actors/central/central-io.js';
import { HpcDriver } from '../actors/central/hpc-driver.js';
import { centralTopics, parseRegionalSummary, parseTrainingJob } from '../actors/central/training-wire.js';
import type { BatchJobSpec, BatchJobStatus, BatchQueue } from '../runtime/batch-queue.js';
import { stagedLocation, type DataMover, type TransferRequest, type TransferStatus } from '../runtime/data-mover.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import { centralRoutes } from './central-api.js';
import type { Role } from './role.js';

/** `--alerts NAME=VALUE,...` to thresholds (the command line reaches the orchestrator's parts through app/). */
export { parseAlertThresholds } from '../actors/central/alerts.js';

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

/** The alert detectors (actors/central/alerts.ts): the rules the alerts counter is labelled with. */
const ALERT_RULES: ReadonlySet<string> = new Set<AlertRule>(['region-silent', 'active-nodes-drop', 'gpu-util-high', 'energy-shift-battery']);

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
  // Alerts released since this process started, by detector and severity (the detectors are a fixed few).
  const alertCounts = new Map<string, { rule: string; severity: string; count: number }>();
  const countAlert = (rule: unknown, severity: string): void => {
    if (typeof rule !== 'string' || !ALERT_RULES.has(rule)) return;
    const key = `${rule}/${severity}`;
    const row = alertCounts.get(key) ?? { rule, severity, count: 0 };
    row.count++;
    alertCounts.set(key, row);
  };
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
    metrics: (metrics, host) => {
      // The shard's figures only while it is owned here (on Kafka another member may own it now).
      const owned = (): CentralBehaviour | undefined => (host.region.supervisor.shardIds.includes(shard) ? behaviour : undefined);
      metrics.addCentral({
        jobs: () => owned()?.figures().jobs ?? [],
        transferredBytes: () => owned()?.figures().transferredBytes ?? 0,
        queueSubmissions: () => owned()?.figures().queueSubmissions ?? 0,
        summariesFolded: () => owned()?.figures().summariesFolded ?? 0,
        alerts: () => [...alertCounts.values()],
      });
    },
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
          for (const effect of effects) {
            if (effect.type === 'hpc-command') driver.onCommand(effect.command);
            else if (effect.type === 'system') countAlert(effect.details['rule'], effect.severity);
          }
        },
        stop: () => driver.stop(),
      };
    },
  };
}

/**
 * The batch job's command when no --train-command is given: it reads the staged data whole (one
 * file's SHA-256, or for a folder the SHA-256 of every file's `sha256sum` line in name order) and
 * writes a small checkpoint naming it, atomically. A site's real training command replaces it.
 */
export const DEFAULT_TRAIN_COMMAND =
  'set -e; mkdir -p "$(dirname "$ARCNET_CHECKPOINT_PATH")"; ' +
  'if [ -d "$ARCNET_STAGED_PATH" ]; then sum=$(cd "$ARCNET_STAGED_PATH" && find . -type f | LC_ALL=C sort | xargs -d "\\n" -r sha256sum | sha256sum | cut -d" " -f1); ' +
  'else sum=$(sha256sum "$ARCNET_STAGED_PATH" | cut -d" " -f1); fi; ' +
  'printf \'{"job-id":"%s","dataset-sha256":"%s"}\\n\' "$ARCNET_JOB_ID" "$sum" > "$ARCNET_CHECKPOINT_PATH.tmp" && mv "$ARCNET_CHECKPOINT_PATH.tmp" "$ARCNET_CHECKPOINT_PATH"';

/** `--hpc`: the local mover and queue, Slurm with rclone, or Slurm with rclone when they answer. */
export type HpcChoice = 'local' | 'slurm' | 'auto';

export interface CentralFlags {
  readonly shardId?: string | undefined;
  /** `local` (file copies and child processes on this machine), `slurm` (Slurm and rclone's rcd), `auto` (default). */
  readonly hpc: string | undefined;
  /** The orchestrator's own HPC folder: staging, the local mover's and queue's state, batch jobs' output. */
  readonly hpcDir: string;
  readonly staging: string | undefined;
  readonly trainCommand: string | undefined;
  readonly pollEveryMs: number | undefined;
  readonly transferBytesPerSec: number | undefined;
  readonly summaryEveryMs: number | undefined;
  readonly stallTimeoutMs: number | undefined;
  /** Alert thresholds (`--alerts`; default defaultAlertConfig). */
  readonly alerts?: AlertConfig | undefined;
  /** Where Slurm and rclone are (default: hpcServiceFacts() of the environment and ./.hpc). */
  readonly services?: HpcServiceFacts | undefined;
  /** `--rclone-rc-url`, `--rclone-rc-credentials`, `--slurm-conf`, `--slurm-partition`: over the environment's and .hpc's. */
  readonly serviceFlags?: HpcServiceFlags | undefined;
}

export interface HpcServiceFlags {
  readonly rcUrl?: string | undefined;
  readonly rcCredentialsFile?: string | undefined;
  readonly slurmConf?: string | undefined;
  readonly partition?: string | undefined;
}

/** Where Slurm and rclone are: the flags first, then the environment, then `.hpc/connection.json` (hpcServiceFacts). */
export function hpcFactsWithFlags(flags: HpcServiceFlags | undefined, found: HpcServiceFacts = hpcServiceFacts()): HpcServiceFacts {
  return {
    hpcDir: found.hpcDir,
    rcUrl: flags?.rcUrl ?? found.rcUrl,
    rcCredentialsFile: flags?.rcCredentialsFile === undefined ? found.rcCredentialsFile : resolve(flags.rcCredentialsFile),
    slurmConf: flags?.slurmConf === undefined ? found.slurmConf : resolve(flags.slurmConf),
    partition: flags?.partition ?? found.partition,
  };
}

export type LocalCentralOptions = CentralFlags;

/**
 * The orchestrator as `arcnet central --hpc ...` asks: with `auto` it uses Slurm and rclone when
 * both answer (`npm run hpc:start` started them, or the environment points at a site's), else the
 * local mover and queue, saying so through `notice` with how to start the real ones.
 *
 * `auto` decides once, at start, and never re-probes: an open job's transfer id and queue job id
 * belong to the mover and queue that started them (an rclone job id means nothing to the local
 * mover, a Slurm id nothing to the local queue), so switching under running jobs would strand them
 * or run them twice. Switching is a restart, where the operator sees the notice again.
 */
export async function centralRoleFromFlags(flags: CentralFlags, notice: (message: string, details: Record<string, unknown>) => void): Promise<{ role: Role; hpc: 'local' | 'slurm' }> {
  const choice = flags.hpc ?? 'auto';
  if (choice !== 'local' && choice !== 'slurm' && choice !== 'auto') {
    throw new ArcError(ErrorCodes.USAGE, `--hpc ${choice}: use local (this machine's files and child processes), slurm (Slurm and rclone's rcd) or auto`);
  }
  if (choice === 'local') return { role: localCentralRole(flags), hpc: 'local' };
  const facts = flags.services ?? hpcFactsWithFlags(flags.serviceFlags);
  const problem = await hpcServicesProblem(facts);
  if (problem !== undefined) {
    if (choice === 'slurm') {
      throw new ArcError(
        ErrorCodes.BATCH_QUEUE,
        `--hpc slurm: ${problem}. Start them with \`npm run hpc:start\`, or point --slurm-conf, --rclone-rc-url and --rclone-rc-credentials (or SLURM_CONF, ARCNET_RCLONE_RC_URL and ARCNET_RCLONE_RC_CREDENTIALS) at your site's (see the README)`,
        { facts },
      );
    }
    notice(
      'Slurm and rclone are not answering, so HPC jobs use the local data mover and batch queue (file copies and child processes) for the life of this process: --hpc auto decides once, at start. Run `npm run hpc:start`, then restart arcnet central, to use the real ones',
      { problem },
    );
    return { role: localCentralRole({ ...flags, hpc: 'local' }), hpc: 'local' };
  }
  notice('HPC jobs use Slurm and rclone for the life of this process (--hpc auto decides once, at start)', { rcUrl: facts.rcUrl, slurmConf: facts.slurmConf, partition: facts.partition });
  // --transfer-rate paces the local mover only: under auto it is for the fallback, not an error.
  const forSlurm = choice === 'auto' ? { ...flags, transferBytesPerSec: undefined } : flags;
  return { role: slurmCentralRole(forSlurm, facts), hpc: 'slurm' };
}

function checkShard(shardId: string | undefined): void {
  if (shardId !== undefined && !/^[A-Z0-9_-]{1,32}$/.test(shardId)) {
    throw new ArcError(ErrorCodes.USAGE, `--central-shard ${shardId}: use upper-case letters, digits, _ or - (at most 32)`);
  }
}

function configOf(flags: CentralFlags, stagingUri: string): Partial<CentralConfig> {
  return {
    stagingUri,
    ...(flags.summaryEveryMs === undefined ? {} : { summaryEveryMs: flags.summaryEveryMs }),
    transferStallTimeoutMs: flags.stallTimeoutMs ?? defaultCentralConfig.transferStallTimeoutMs,
    ...(flags.alerts === undefined ? {} : { alerts: flags.alerts }),
  };
}

/** The orchestrator with the local data mover and batch queue (`arcnet central --hpc local`, tests, the demo). */
export function localCentralRole(flags: LocalCentralOptions): Role {
  const kind = flags.hpc ?? 'local';
  if (kind !== 'local') throw new ArcError(ErrorCodes.USAGE, `--hpc ${kind}: localCentralRole builds --hpc local only; use centralRoleFromFlags`);
  checkShard(flags.shardId);
  const hpcDir = resolve(flags.hpcDir);
  return centralRole({
    shardId: flags.shardId,
    config: configOf(flags, flags.staging ?? pathToFileURL(join(hpcDir, 'staging')).href),
    mover: new FsDataMover({ stateDir: join(hpcDir, 'transfers'), bytesPerSec: flags.transferBytesPerSec }),
    queue: new ProcessBatchQueue({ stateDir: join(hpcDir, 'queue') }),
    trainCommand: ['/bin/sh', '-c', flags.trainCommand ?? DEFAULT_TRAIN_COMMAND],
    jobWorkDir: hpcDir,
    pollEveryMs: flags.pollEveryMs,
  });
}

/**
 * The orchestrator on Slurm and rclone's rcd. rclone copies a dataset folder into
 * `<staging>/<hpcNameOf(job id)>/` (its destination is always `<destinationUri>/<key>`), so the
 * batch job's ARCNET_STAGED_PATH is that folder; the Slurm job has the same name. Staging and the jobs' work folder default to the
 * orchestrator's HPC folder: on this node both rcd and a Slurm job can read and write it; on a
 * site, --staging and --hpc-dir must name a filesystem shared with the compute nodes.
 */
export function slurmCentralRole(flags: CentralFlags, facts: HpcServiceFacts): Role {
  checkShard(flags.shardId);
  if (flags.transferBytesPerSec !== undefined) {
    throw new ArcError(ErrorCodes.USAGE, '--transfer-rate applies to the local data mover only (--hpc local); rclone copies at its own --bwlimit');
  }
  const hpcDir = resolve(flags.hpcDir);
  mkdirSync(hpcDir, { recursive: true });
  const stagingUri = flags.staging ?? pathToFileURL(join(hpcDir, 'staging')).href;
  const services = hpcServicesFromEnvironment({
    ...process.env,
    ARCNET_HPC_DIR: facts.hpcDir,
    ARCNET_RCLONE_RC_URL: facts.rcUrl,
    ARCNET_RCLONE_RC_CREDENTIALS: facts.rcCredentialsFile ?? '',
    SLURM_CONF: facts.slurmConf ?? '',
    ARCNET_SLURM_PARTITION: facts.partition ?? '',
  });
  return centralRole({
    shardId: flags.shardId,
    config: configOf(flags, stagingUri),
    mover: new StagingFolderMover(services.dataMover, stagingUri),
    queue: new TaggedNameQueue(services.batchQueue, stagingUri),
    trainCommand: ['/bin/sh', '-c', flags.trainCommand ?? DEFAULT_TRAIN_COMMAND],
    jobWorkDir: hpcDir,
    pollEveryMs: flags.pollEveryMs,
  });
}

/**
 * The name a job's copy (rclone's stats group and staging folder) and its Slurm job carry: the job
 * id and a tag of the staging area. rcd and slurmctld remember finished work for a while and may be
 * shared by several orchestrators (or one started afresh in a new data folder), and both are
 * looked up by name before anything is started: the tag keeps one orchestrator from taking
 * another's copy or job of the same job id for its own.
 */
export function hpcNameOf(jobId: string, stagingUri: string): string {
  const tag = createHash('sha256').update(stagingUri).digest('hex').slice(0, 8);
  return `${jobId.slice(0, 119)}.${tag}`;
}

/** Every job's copy goes to `<staging>/<hpcNameOf(job id)>/` (rclone lands a copy in `<destinationUri>/<key>`). */
class StagingFolderMover implements DataMover {
  constructor(
    private readonly inner: DataMover,
    private readonly stagingUri: string,
  ) {}
  private request(request: TransferRequest): TransferRequest {
    return { ...request, key: hpcNameOf(request.key, this.stagingUri), destinationUri: this.stagingUri };
  }
  start(request: TransferRequest): Promise<TransferStatus> {
    return this.inner.start(this.request(request));
  }
  status(transferId: string): Promise<TransferStatus> {
    return this.inner.status(transferId);
  }
  find(key: string): Promise<TransferStatus | undefined> {
    return this.inner.find(hpcNameOf(key, this.stagingUri));
  }
  cancel(transferId: string): Promise<void> {
    return this.inner.cancel(transferId);
  }
  verify(request: TransferRequest): Promise<{ readonly ok: boolean; readonly detail: string }> {
    return this.inner.verify(this.request(request));
  }
  /** The tagged folder under the staging area, not the untagged one the orchestrator asked for. */
  landsAt(request: TransferRequest): string {
    return stagedLocation(this.inner, this.request(request));
  }
}

/** Slurm jobs named `hpcNameOf(job id)`. */
class TaggedNameQueue implements BatchQueue {
  constructor(
    private readonly inner: BatchQueue,
    private readonly stagingUri: string,
  ) {}
  submit(spec: BatchJobSpec): ReturnType<BatchQueue['submit']> {
    return this.inner.submit({ ...spec, name: hpcNameOf(spec.name, this.stagingUri) });
  }
  status(queueJobId: string): Promise<BatchJobStatus> {
    return this.inner.status(queueJobId);
  }
  findByName(name: string): Promise<BatchJobStatus | undefined> {
    return this.inner.findByName(hpcNameOf(name, this.stagingUri));
  }
  cancel(queueJobId: string): Promise<void> {
    return this.inner.cancel(queueJobId);
  }
  nameOf(name: string): string {
    const tagged = hpcNameOf(name, this.stagingUri);
    return this.inner.nameOf?.(tagged) ?? tagged;
  }
}
