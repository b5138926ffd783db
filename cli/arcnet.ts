#!/usr/bin/env node
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { destination, pino } from 'pino';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import { parseDurationMs } from '../simulations/duration.js';
import { replayJournal } from '../simulations/replay.js';
import { runSimulation } from '../simulations/run-simulation.js';
import { createProgress } from './progress.js';
import { runKafkaRegion } from './kafka-region-command.js';
import { kafkaTopicsCommand } from './kafka-topics-command.js';
import { runRegion } from './region-command.js';

const usage = `arcnet: the ArcNet regional runtime

  arcnet sim --seed N --nodes N --geozones A,B,C --duration 1h --rate R --journal DIR [--faults on|off] [--json]
      Simulate the region on simulated time; write journal and snapshots to DIR.
  arcnet replay --journal DIR [--from-snapshot] [--fast] [--json]
      Rebuild the state from the journal alone and check its invariants.
      --fast skips re-running actors born and ended within the journal (recovery's path).
  arcnet region --data DIR --geozones A,B,C [--sim-nodes N] [--rate R] [--seed N] [--faults on|off]
                [--status-every 10s] [--effects-log FILE] [--run-for 5m] [--port 8080]
      Run the live region on the wall clock (recovers from DIR; SIGTERM stops it cleanly).
  arcnet region --kafka BROKERS --geozones A,B,C [--group arcnet-region] [--status-every 10s] [--run-for 5m]
      The same shards with journal and snapshots in Kafka; processes of one group share the geozones
      (a consumer group decides who owns which) and take over from one that dies.
  arcnet kafka:topics --kafka BROKERS --geozones A,B,C
      Create the ArcNet topics on a Kafka cluster (the seed's table and retention; idempotent).
`;

/**
 * Commands that parse their own arguments (each with its own flags), by name. The
 * commands below the shared option table share one.
 */
const selfParsing: Readonly<Record<string, (args: string[]) => Promise<void>>> = {};

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

function rate(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new ArcError(ErrorCodes.USAGE, `--rate must be a non-negative number, got '${value}'`);
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

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(usage);
    return;
  }
  const own = selfParsing[command];
  if (own !== undefined) return own(rest);
  const { values } = parseOptions({
    args: rest,
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
    },
  });
  switch (command) {
    case 'sim': {
      const durationMs = parseDurationMs(required(values.duration, 'duration'));
      const progress = createProgress(values.progress !== 'off');
      const result = await runSimulation({
        seed: integer(values.seed, 'seed'),
        nodes: integer(values.nodes, 'nodes'),
        geozones: geozoneList(values.geozones),
        durationMs,
        ratePerSec: rate(values.rate, 100),
        faults: onOff(values.faults, 'faults'),
        journalDir: required(values.journal, 'journal'),
        onProgress: progress.update,
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
      });
      print(result, values.json === true);
      if (result.invariantViolations > 0) process.exitCode = 3;
      return;
    }
    case 'region': {
      const logger = pino({ name: 'arcnet', level: process.env['LOG_LEVEL'] ?? 'info' }, destination(2));
      if (values.kafka !== undefined) {
        const line = await runKafkaRegion({
          brokers: values.kafka.split(',').filter((b) => b !== ''),
          geozones: geozoneList(values.geozones),
          groupId: values.group ?? 'arcnet-region',
          statusEveryMs: values['status-every'] === undefined ? 10_000 : parseDurationMs(values['status-every']),
          runForMs: values['run-for'] === undefined ? undefined : parseDurationMs(values['run-for']),
          logger,
        });
        process.stdout.write(`${JSON.stringify(line)}\n`);
        // kafkajs may keep sockets open briefly after disconnecting; the line is out, the process is done.
        process.exit(process.exitCode ?? 0);
      }
      const line = await runRegion({
        dataDir: required(values.data, 'data'),
        geozones: geozoneList(values.geozones),
        simNodes: integer(values['sim-nodes'], 'sim-nodes', 0),
        ratePerSec: rate(values.rate, 50),
        seed: integer(values.seed, 'seed', 1),
        faults: onOff(values.faults, 'faults'),
        statusEveryMs: values['status-every'] === undefined ? 10_000 : parseDurationMs(values['status-every']),
        effectsLog: values['effects-log'],
        runForMs: values['run-for'] === undefined ? undefined : parseDurationMs(values['run-for']),
        port: values.port === undefined ? undefined : integer(values.port, 'port'),
        logger,
      });
      process.stdout.write(`${JSON.stringify(line)}\n`);
      return;
    }
    case 'kafka:topics': {
      const brokers = (values.kafka ?? process.env['KAFKA_BROKERS'] ?? '').split(',').filter((b) => b !== '');
      const result = await kafkaTopicsCommand({ brokers, geozones: geozoneList(values.geozones) });
      print(result, values.json === true);
      return;
    }
    default:
      throw new ArcError(ErrorCodes.USAGE, `unknown command '${command}'\n\n${usage}`);
  }
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
