#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { destination, pino } from 'pino';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import { parseDurationMs } from '../simulations/duration.js';
import type { TimePoint } from '../inspector/point-in-time.js';
import { replayJournal } from '../simulations/replay.js';
import { DEFAULT_JOBS_PER_HOUR, runSimulation } from '../simulations/run-simulation.js';
import { runAgentCommand } from './agent-command.js';
import { runAuditCommand } from './audit-command.js';
import { runInspectCommand } from './inspect-command.js';
import { createProgress } from './progress.js';
import { kafkaTopicsCommand } from './kafka-topics-command.js';
import { formatAclsResult, kafkaAclsCommand } from './kafka-acls-command.js';
import { runKeysCommand } from './keys-command.js';
import { runRegion } from './region-command.js';
import type { JournalOptions } from '../app/region-process.js';
import { defaultRateLimitPerSec } from '../app/region-security.js';
import { withDemoFeed } from '../app/central-demo-feed.js';
import { centralRoleFromFlags, parseAlertThresholds } from '../app/central-role.js';
import type { ConnectionOptions } from 'node:tls';
import { kafkaTlsOptions } from '../adapters/security/tls-options.js';
import { loadDataKey } from '../adapters/lmdb/data-key.js';

const usage = `arcnet: the ArcNet regional runtime

  arcnet sim --seed N --nodes N --geozones A,B,C --duration 1h --rate R --journal DIR [--faults on|off] [--data-key-file F] [--json]
             [--training on|off] [--jobs-per-hour N] [--checkpoints DIR]
      Simulate the region on simulated time; write journal and snapshots to DIR. With --training on (the
      default) the central orchestrator runs too (shard CENTRAL in DIR), fed --jobs-per-hour training jobs
      (default 12) on both paths: HPC ones on the simulated data mover and batch queue, federated ones
      trained by the fleet with the real trainer (checkpoints in --checkpoints, default
      /tmp/arcnet-sim/checkpoints/seed-N). Exits 3 on any invariant violation.
  arcnet replay --journal DIR [--from-snapshot] [--fast] [--until TIME | --until-offset N --geozone G] [--data-key-file F] [--json]
      Rebuild the state from the journal alone and check its invariants.
      --fast skips re-running actors born and ended within the journal (recovery's path).
      --until replays up to a logical time (ms or ISO-8601), --until-offset up to offset N of geozone G
      (the other shards up to that record's time); the output adds the point and the actors by state.
  arcnet region --data DIR --geozones A,B,C [--sim-nodes N] [--rate R] [--seed N] [--faults on|off]
                [--status-every 10s] [--effects-log FILE] [--run-for 5m] [--port 8080|0|off]
                [--api-keys keys.json] [--rate-limit 1000] [--tls-cert F --tls-key F [--tls-ca F]
                [--tls-client-auth required|optional|off]] [--otlp http://collector:4318/v1/traces]
                [--data-key-file F]
      Run the live region on the wall clock (recovers from DIR; SIGTERM stops it cleanly).
      --port (default 8080) serves the HTTP API (/docs), /metrics, the console WebSocket (/telemetry),
      the node-agent channel (/v1/agent) and the inspector (/inspector) on 127.0.0.1.
      Without --api-keys (or ARCNET_API_KEYS) they are open; --rate-limit is requests/s per key.
      TLS is 1.3 only; --tls-client-auth required asks every client for a certificate from --tls-ca.
  arcnet region --kafka BROKERS --geozones A,B,C [--group arcnet-region] [--node-ca F]
                [--kafka-tls-ca F [--kafka-tls-cert F --kafka-tls-key F]] and every option above but --data, --data-key-file
      The same region with journal and snapshots in Kafka, serving the same API, console, agents and
      inspector; processes of one group share the geozones (a consumer group decides who owns which) and
      take over from one that dies. It waits for a broker that is not up yet. --node-ca: telemetry and
      results on the input topics must be signed by a node certificate of the geozone they claim.
  arcnet central --data DIR | --kafka BROKERS [--group arcnet-central] [--hpc auto|slurm|local] [--hpc-dir DIR] [--staging URI] [--train-command CMD]
                 [--poll-every 1s] [--transfer-rate BYTES_PER_SEC] [--summary-every 60s] [--stall-timeout 10m]
                 [--central-shard CENTRAL] [--sim-jobs PER_MINUTE] [--summaries-from REGION_URL]
                 [--slurm-conf FILE] [--slurm-partition NAME] [--rclone-rc-url URL] [--rclone-rc-credentials FILE]
                 [--alerts silent-periods=3,active-drop=0.2,gpu-high=0.85,gpu-high-periods=3,battery-shift=0.2,recent-window=5]
                 and --status-every, --run-for, --port, --api-keys, --rate-limit, --tls-*, --otlp, --effects-log,
                 --data-key-file as for region
      The central orchestrator: training jobs (POST /v1/jobs, arc.job.submission) classified HPC or
      federated; federated ones published on arc.scheduler.training for the best-ranked geozone; HPC
      ones staged by the data mover and run by the batch queue; the global view of every region's
      summaries (GET /v1/global, /v1/global/history) with alerts on arc.event.system (--alerts sets
      their thresholds; the ones it does not name keep the defaults shown).
      --hpc slurm copies datasets (folders) with rclone's rcd into --staging (default --hpc-dir/staging,
      --hpc-dir default DIR/hpc) and runs batch jobs on Slurm, found as \`npm run hpc:start\` left them or
      by --slurm-conf, --slurm-partition, --rclone-rc-url, --rclone-rc-credentials (else SLURM_CONF,
      ARCNET_SLURM_PARTITION, ARCNET_RCLONE_RC_URL, ARCNET_RCLONE_RC_CREDENTIALS);
      --hpc local copies files and runs batch jobs as child processes on this machine (state in
      --hpc-dir); --hpc auto (default) is slurm when both answer at start, else local with a notice (decided once: restart to switch). --train-command is the batch job's shell command (it finds
      ARCNET_STAGED_PATH and ARCNET_CHECKPOINT_PATH in its environment). On Kafka one member of the
      group owns the orchestrator's one shard (--central-shard names its journal) and another takes over.
      --sim-jobs submits a seeded mix of training jobs (about 2 in 5 HPC-sized) with small generated
      datasets; --summaries-from reads a region's GET /v1/summary each summary period into the global
      view (for embedded processes, which share no bus). npm start uses both.
  arcnet kafka:topics --kafka BROKERS --geozones A,B,C [--kafka-tls-ca F [--kafka-tls-cert F --kafka-tls-key F]]
      Create the ArcNet topics on a Kafka cluster (the seed's table and retention; idempotent).
  arcnet kafka:acls --kafka BROKERS --geozones A,B,C [--kafka-tls-ca F [--kafka-tls-cert F --kafka-tls-key F]] [--json]
      Grant each geozone's node certificates (principal User:node.<GEOZONE>) their own dispatch topic,
      the training topic, writes to telemetry and results, and groups arcnet-agent.<GEOZONE>.*; nothing
      else (idempotent; prints what it granted). Needs a cluster with an authorizer.
  arcnet keys create --role viewer|developer|operator|agent --geozones A,B|'*' --file keys.json [--label T] [--json]
  arcnet keys list --file keys.json [--json]  |  arcnet keys revoke --id ID --file keys.json
      API keys: create prints the key once and stores only its hash (file mode 0600).
  arcnet audit verify --journal DIR [--data-key-file FILE] [--json]
  arcnet audit verify --kafka BROKERS --geozone G[,G...] [--kafka-tls-ca F [--kafka-tls-cert F --kafka-tls-key F]] [--json]
      Check every shard journal's hash chain (a data folder's, or the geozones' Kafka journal topics);
      exit 4 (with the first bad offset) if a record was altered, removed or reordered.
      Encrypted stores: --data-key-file FILE or ARCNET_DATA_KEY (hex). Kafka is only read (no fencing).
  arcnet inspect --journal DIR [--port 8090] [--api-keys FILE] [--data-key-file FILE]
      Serve the state-machine inspector (/inspector) over a data folder: statecharts, actors, their
      journal history, and time travel to any offset or time. Read-only; nothing runs.
  arcnet agent --region URL|--kafka BROKERS --node-id ID --geozone G [--model-server URL] [...]
      The node agent: reports telemetry, runs dispatches on an OpenAI-compatible model server, reports
      results until the region has them (arcnet agent --help for every option).
`;

/**
 * Commands that parse their own arguments (each with its own flags), by name. The
 * commands below the shared option table share one.
 */
const selfParsing: Readonly<Record<string, (args: string[]) => Promise<void>>> = {
  keys: runKeysCommand,
  audit: runAuditCommand,
  inspect: runInspectCommand,
  agent: runAgentCommand,
};

function fail(error: unknown): never {
  if (error instanceof ArcError) {
    process.stderr.write(`arcnet: ${error.code}: ${error.message}\n`);
    process.exit(error.code === ErrorCodes.USAGE ? 2 : 1);
  }
  process.stderr.write(`arcnet: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
}

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new ArcError(ErrorCodes.USAGE, `missing --${flag}\n\n${usage}`);
  return value;
}

function integer(value: string | undefined, flag: string, fallback?: number): number {
  if (value === undefined) {
    if (fallback !== undefined) return fallback;
    throw new ArcError(ErrorCodes.USAGE, `missing --${flag}`);
  }
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new ArcError(ErrorCodes.USAGE, `--${flag} must be a non-negative integer, got '${value}'`);
  return n;
}

function rate(value: string | undefined, fallback: number, flag = 'rate'): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new ArcError(ErrorCodes.USAGE, `--${flag} must be a non-negative number, got '${value}'`);
  return n;
}

function geozoneList(value: string | undefined): string[] {
  const list = required(value, 'geozones')
    .split(',')
    .map((g) => g.trim().toUpperCase())
    .filter((g) => g !== '');
  for (const g of list) if (!/^[A-Z0-9_-]{1,32}$/.test(g)) throw new ArcError(ErrorCodes.USAGE, `bad geozone '${g}': use letters, digits, _ or -`);
  if (list.length === 0) throw new ArcError(ErrorCodes.USAGE, '--geozones needs at least one geozone');
  return list;
}

function onOff(value: string | undefined, flag: string): boolean {
  if (value === undefined || value === 'on') return true;
  if (value === 'off') return false;
  throw new ArcError(ErrorCodes.USAGE, `--${flag} takes on or off, got '${value}'`);
}

/** The flags every command but the self-parsing ones shares (each command reads its own). */
function parseFlags(args: string[]) {
  return parseOptions({
    args,
    strict: true,
    options: {
      seed: { type: 'string' },
      nodes: { type: 'string' },
      geozones: { type: 'string' },
      duration: { type: 'string' },
      rate: { type: 'string' },
      journal: { type: 'string' },
      data: { type: 'string' },
      faults: { type: 'string' },
      json: { type: 'boolean' },
      'from-snapshot': { type: 'boolean' },
      fast: { type: 'boolean' },
      'sim-nodes': { type: 'string' },
      'status-every': { type: 'string' },
      'effects-log': { type: 'string' },
      'run-for': { type: 'string' },
      progress: { type: 'string' },
      kafka: { type: 'string' },
      group: { type: 'string' },
      port: { type: 'string' },
      until: { type: 'string' },
      'until-offset': { type: 'string' },
      geozone: { type: 'string' },
      'api-keys': { type: 'string' },
      'rate-limit': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'tls-ca': { type: 'string' },
      'tls-client-auth': { type: 'string' },
      otlp: { type: 'string' },
      'data-key-file': { type: 'string' },
      'kafka-tls-ca': { type: 'string' },
      'kafka-tls-cert': { type: 'string' },
      'kafka-tls-key': { type: 'string' },
      'node-ca': { type: 'string' },
      hpc: { type: 'string' },
      'hpc-dir': { type: 'string' },
      'sim-jobs': { type: 'string' },
      'summaries-from': { type: 'string' },
      staging: { type: 'string' },
      'train-command': { type: 'string' },
      'poll-every': { type: 'string' },
      'transfer-rate': { type: 'string' },
      'summary-every': { type: 'string' },
      'stall-timeout': { type: 'string' },
      alerts: { type: 'string' },
      'rclone-rc-url': { type: 'string' },
      'rclone-rc-credentials': { type: 'string' },
      'slurm-conf': { type: 'string' },
      'slurm-partition': { type: 'string' },
      'central-shard': { type: 'string' },
      training: { type: 'string' },
      'jobs-per-hour': { type: 'string' },
      checkpoints: { type: 'string' },
    },
  }).values;
}

type Flags = ReturnType<typeof parseFlags>;

/** `arcnet region` and `arcnet central`: flags to the process options; the process runs until a signal or --run-for. */
async function serve(command: 'region' | 'central', values: Flags): Promise<void> {
  const logger = pino({ name: 'arcnet', level: process.env['LOG_LEVEL'] ?? 'info' }, destination(2));
  const central = command === 'central';
  if (central) {
    for (const flag of ['sim-nodes', 'geozones', 'node-ca'] as const) {
      if (values[flag] !== undefined) throw new ArcError(ErrorCodes.USAGE, `--${flag} applies to arcnet region only`);
    }
  } else {
    for (const flag of ['central-shard', 'hpc', 'hpc-dir', 'sim-jobs', 'summaries-from', 'staging', 'train-command', 'poll-every', 'transfer-rate', 'summary-every', 'stall-timeout', 'alerts', 'rclone-rc-url', 'rclone-rc-credentials', 'slurm-conf', 'slurm-partition'] as const) {
      if (values[flag] !== undefined) throw new ArcError(ErrorCodes.USAGE, `--${flag} applies to arcnet central only`);
    }
  }
  const journal = regionJournal(values, central ? 'arcnet-central' : 'arcnet-region');
  // --hpc auto (the default) probes Slurm and rclone first and says which it uses.
  const centralFlags = central
    ? {
        shardId: values['central-shard'],
        hpc: values.hpc,
        hpcDir: values['hpc-dir'] ?? (journal.kind === 'lmdb' ? join(journal.dataDir, 'hpc') : '.hpc-local'),
        staging: values.staging,
        trainCommand: values['train-command'],
        pollEveryMs: values['poll-every'] === undefined ? undefined : parseDurationMs(values['poll-every']),
        transferBytesPerSec: values['transfer-rate'] === undefined ? undefined : rate(values['transfer-rate'], 0, 'transfer-rate'),
        summaryEveryMs: values['summary-every'] === undefined ? undefined : parseDurationMs(values['summary-every']),
        stallTimeoutMs: values['stall-timeout'] === undefined ? undefined : parseDurationMs(values['stall-timeout']),
        alerts: values.alerts === undefined ? undefined : parseAlertThresholds(values.alerts),
        serviceFlags: { rcUrl: values['rclone-rc-url'], rcCredentialsFile: values['rclone-rc-credentials'], slurmConf: values['slurm-conf'], partition: values['slurm-partition'] },
      }
    : undefined;
  const chosen = centralFlags === undefined ? undefined : await centralRoleFromFlags(centralFlags, (message, details) => logger.info(details, message));
  const simJobsPerMinute = values['sim-jobs'] === undefined ? 0 : rate(values['sim-jobs'], 0, 'sim-jobs');
  const role =
    chosen === undefined || centralFlags === undefined || (simJobsPerMinute === 0 && values['summaries-from'] === undefined)
      ? chosen?.role
      : withDemoFeed(chosen.role, {
          jobsPerMinute: simJobsPerMinute,
          seed: integer(values.seed, 'seed', 1),
          datasetDir: join(resolve(centralFlags.hpcDir), 'demo-datasets'),
          datasetShape: chosen.hpc === 'slurm' ? 'folder' : 'file',
          summariesFrom: values['summaries-from'],
          summaryEveryMs: centralFlags.summaryEveryMs ?? 60_000,
        });
  const { line, exitCode } = await runRegion({
    role,
    journal,
    geozones: central ? [] : geozoneList(values.geozones),
    simNodes: integer(values['sim-nodes'], 'sim-nodes', 0),
    ratePerSec: rate(values.rate, 50),
    seed: integer(values.seed, 'seed', 1),
    faults: onOff(values.faults, 'faults'),
    statusEveryMs: values['status-every'] === undefined ? 10_000 : parseDurationMs(values['status-every']),
    effectsLog: values['effects-log'],
    runForMs: values['run-for'] === undefined ? undefined : parseDurationMs(values['run-for']),
    port: values.port === 'off' ? undefined : integer(values.port, 'port', 8080),
    security: {
      apiKeysFile: values['api-keys'],
      rateLimitPerSec: rate(values['rate-limit'], defaultRateLimitPerSec, 'rate-limit'),
      tlsCert: values['tls-cert'],
      tlsKey: values['tls-key'],
      tlsCa: values['tls-ca'],
      tlsClientAuth: values['tls-client-auth'],
    },
    otlpEndpoint: values.otlp,
    logger,
  });
  process.stdout.write(`${JSON.stringify(line)}\n`);
  // kafkajs may leave sockets behind for a while after disconnecting: the final line is out, so leave now.
  process.exit(exitCode);
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(usage);
    return;
  }
  const own = selfParsing[command];
  if (own !== undefined) return own(rest);
  const values = parseFlags(rest);
  switch (command) {
    case 'sim': {
      const durationMs = parseDurationMs(required(values.duration, 'duration'));
      const training = onOff(values.training, 'training');
      if (!training) {
        for (const flag of ['jobs-per-hour', 'checkpoints'] as const) {
          if (values[flag] !== undefined) throw new ArcError(ErrorCodes.USAGE, `--${flag} applies with --training on only`);
        }
      }
      const progress = createProgress(values.progress !== 'off');
      const result = await runSimulation({
        seed: integer(values.seed, 'seed'),
        nodes: integer(values.nodes, 'nodes'),
        geozones: geozoneList(values.geozones),
        durationMs,
        ratePerSec: rate(values.rate, 100),
        faults: onOff(values.faults, 'faults'),
        journalDir: required(values.journal, 'journal'),
        encryptionKey: dataKey(values['data-key-file']),
        onProgress: progress.update,
        training,
        jobsPerHour: rate(values['jobs-per-hour'], DEFAULT_JOBS_PER_HOUR, 'jobs-per-hour'),
        checkpointDir: values.checkpoints,
      });
      progress.stop();
      print(result, values.json === true);
      if (result.invariantViolations > 0) process.exitCode = 3;
      return;
    }
    case 'replay': {
      const result = await replayJournal(required(values.journal, 'journal'), {
        useSnapshots: values['from-snapshot'] === true,
        skipEphemeral: values.fast === true,
        ...untilPoint(values.until, values['until-offset'], values.geozone),
        encryptionKey: dataKey(values['data-key-file']),
      });
      print(result, values.json === true);
      if (result.invariantViolations > 0) process.exitCode = 3;
      return;
    }
    case 'region':
    case 'central':
      return serve(command, values);
    case 'kafka:topics': {
      const brokers = (values.kafka ?? process.env['KAFKA_BROKERS'] ?? '').split(',').filter((b) => b !== '');
      const result = await kafkaTopicsCommand({ brokers, geozones: geozoneList(values.geozones), ssl: kafkaTls(values) });
      print(result, values.json === true);
      return;
    }
    case 'kafka:acls': {
      const brokers = (values.kafka ?? process.env['KAFKA_BROKERS'] ?? '').split(',').filter((b) => b !== '');
      const result = await kafkaAclsCommand({ brokers, geozones: geozoneList(values.geozones), ssl: kafkaTls(values) });
      if (values.json === true) print(result, true);
      else process.stdout.write(formatAclsResult(result));
      return;
    }
    default:
      throw new ArcError(ErrorCodes.USAGE, `unknown command '${command}'\n\n${usage}`);
  }
}

/**
 * The journal `arcnet region` runs on: `--data DIR` (LMDB) or `--kafka BROKERS`.
 * A flag that cannot apply to the chosen journal is refused, never ignored.
 */
function regionJournal(values: {
  data?: string | undefined;
  kafka?: string | undefined;
  group?: string | undefined;
  'data-key-file'?: string | undefined;
  'kafka-tls-ca'?: string | undefined;
  'kafka-tls-cert'?: string | undefined;
  'kafka-tls-key'?: string | undefined;
  'node-ca'?: string | undefined;
}, defaultGroup = 'arcnet-region'): JournalOptions {
  if (values.kafka !== undefined) {
    if (values.data !== undefined) throw new ArcError(ErrorCodes.USAGE, 'give --data DIR (the embedded LMDB journal) or --kafka BROKERS, not both');
    if (values['data-key-file'] !== undefined) {
      throw new ArcError(ErrorCodes.USAGE, '--data-key-file encrypts an LMDB data folder; a --kafka region keeps no data folder (encrypt the brokers\' disks, and use --kafka-tls-* in transit)');
    }
    const brokers = values.kafka.split(',').map((b) => b.trim()).filter((b) => b !== '');
    if (brokers.length === 0) throw new ArcError(ErrorCodes.USAGE, '--kafka needs at least one broker (host:port)');
    const nodeCa = values['node-ca'];
    return { kind: 'kafka', brokers, ssl: kafkaTls(values), groupId: values.group ?? defaultGroup, nodeCaPem: nodeCa === undefined ? undefined : readText(nodeCa, 'node-ca') };
  }
  for (const flag of ['group', 'kafka-tls-ca', 'kafka-tls-cert', 'kafka-tls-key', 'node-ca'] as const) {
    if (values[flag] !== undefined) throw new ArcError(ErrorCodes.USAGE, `--${flag} applies to a --kafka region only`);
  }
  return { kind: 'lmdb', dataDir: required(values.data, 'data'), encryptionKey: dataKey(values['data-key-file']) };
}

function readText(file: string, flag: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new ArcError(ErrorCodes.USAGE, `--${flag} ${file}: ${(error as Error).message}`);
  }
}

/** `--until TIME` or `--until-offset N --geozone G` as a replay point (none when neither is given). */
function untilPoint(until: string | undefined, untilOffset: string | undefined, geozone: string | undefined): { until?: TimePoint } {
  if (until !== undefined && untilOffset !== undefined) throw new ArcError(ErrorCodes.USAGE, 'give --until or --until-offset, not both');
  if (untilOffset !== undefined) return { until: { geozone: required(geozone, 'geozone').toUpperCase(), offset: integer(untilOffset, 'until-offset') } };
  if (geozone !== undefined) throw new ArcError(ErrorCodes.USAGE, '--geozone goes with --until-offset');
  if (until === undefined) return {};
  const atMs = /^\d+$/.test(until) ? Number(until) : Date.parse(until);
  if (!Number.isFinite(atMs)) throw new ArcError(ErrorCodes.USAGE, `--until takes a logical time in ms or an ISO-8601 time, got '${until}'`);
  return { until: { atMs } };
}

/** The data key from --data-key-file or ARCNET_DATA_KEY; undefined (no encryption) without either. */
function dataKey(file: string | undefined): Buffer | undefined {
  return loadDataKey({ ...(file === undefined ? {} : { file }), env: process.env });
}

/** TLS 1.3 to Kafka (with a client certificate when --kafka-tls-cert/--kafka-tls-key are given), or plaintext. */
function kafkaTls(values: { 'kafka-tls-ca'?: string | undefined; 'kafka-tls-cert'?: string | undefined; 'kafka-tls-key'?: string | undefined }): ConnectionOptions | undefined {
  const ca = values['kafka-tls-ca'];
  if (ca === undefined) {
    if (values['kafka-tls-cert'] !== undefined || values['kafka-tls-key'] !== undefined) throw new ArcError(ErrorCodes.USAGE, '--kafka-tls-cert and --kafka-tls-key need --kafka-tls-ca');
    return undefined;
  }
  return kafkaTlsOptions({ caFile: ca, certFile: values['kafka-tls-cert'], keyFile: values['kafka-tls-key'] });
}

/** parseArgs with its errors (unknown flag, missing value) turned into usage errors. */
function parseOptions<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (error) {
    throw new ArcError(ErrorCodes.USAGE, `${error instanceof Error ? error.message : String(error)}\n\n${usage}`);
  }
}

function print(result: object, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  for (const [key, value] of Object.entries(result)) process.stdout.write(`${key.padEnd(22)} ${JSON.stringify(value)}\n`);
}

main(process.argv.slice(2)).catch(fail);
