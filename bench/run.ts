import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connect } from 'node:net';
import { centralBench } from './central.js';
import { consoleFanoutBench } from './console-fanout.js';
import { consoleLagBench } from './console-lag.js';
import { endToEndBench } from './end-to-end.js';
import { endToEndWorkersBench } from './end-to-end-workers.js';
import { federatedBench } from './federated.js';
import { federatedRoundsBench } from './federated-rounds.js';
import { httpInferenceBench } from './http-inference.js';
import { inspectorBench } from './inspector.js';
import { kafkaBrokers, kafkaEndToEndBench } from './kafka-end-to-end.js';
import type { Figure } from './measure.js';
import { memoryBench } from './memory.js';
import { recoveryBench } from './recovery.js';
import { renderReport } from './report.js';
import { replayBench } from './replay.js';
import { routingBench } from './routing.js';
import { scaleBench } from './scale.js';
import { soakBench } from './soak.js';

/**
 * `npm run bench` (add `-- --json` for JSON lines only): every figure is printed
 * as one JSON line with the raw baseline measured in the same run and the ratio.
 * `-- --report DIR` also writes DIR/bench.jsonl (the same lines) and
 * DIR/index.html, a self-contained page with a plot for every figure that
 * carries plot fields (see PlotFields in measure.ts) and a table of all.
 * Benchmarks, not tests: these machines are shared and noisy, so read ratios.
 */
const jsonOnly = process.argv.includes('--json');
const only = process.argv.find((arg) => arg.startsWith('--only='))?.slice('--only='.length);
const reportDir = reportDirOf(process.argv);
/** A flag's value, as `--name value` or `--name=value` (`--minutes` for the soak, `--sim-seconds` for scale). */
function flagValue(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  return at >= 0 ? process.argv[at + 1] : process.argv.find((arg) => arg.startsWith(`${name}=`))?.slice(name.length + 1);
}
const dir = mkdtempSync(join(tmpdir(), 'arcnet-bench-'));
const startedAt = new Date().toISOString();
const emitted: Figure[] = [];

/** `--report DIR` or `--report=DIR`, relative to where npm was run from (INIT_CWD), not the package root it runs in. */
function reportDirOf(argv: readonly string[]): string | undefined {
  const from = process.env['INIT_CWD'] ?? process.cwd();
  const inline = argv.find((arg) => arg.startsWith('--report='));
  if (inline !== undefined) return resolve(from, inline.slice('--report='.length));
  const at = argv.indexOf('--report');
  if (at === -1) return undefined;
  const next = argv[at + 1];
  if (next === undefined || next.startsWith('--')) {
    process.stderr.write('--report needs a directory: npm run bench -- --report DIR\n');
    process.exit(2);
  }
  return resolve(from, next);
}

function emit(figures: Figure[]): void {
  for (const f of figures) process.stdout.write(`${JSON.stringify(f)}\n`);
  emitted.push(...figures);
}

/** Writes the report of what was measured (also after a bench failed: the figures before it still stand). */
function writeReport(into: string): void {
  mkdirSync(into, { recursive: true });
  writeFileSync(join(into, 'bench.jsonl'), emitted.map((f) => `${JSON.stringify(f)}\n`).join(''));
  const conditions = [
    `command: npm run bench -- ${process.argv.slice(2).join(' ')}`,
    `machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), Node ${process.version}, ${process.platform}/${process.arch}`,
    `finished: ${new Date().toISOString()}`,
  ];
  writeFileSync(join(into, 'index.html'), renderReport(emitted, { generatedAt: startedAt, conditions }));
  process.stderr.write(`report: ${join(into, 'index.html')} (${emitted.length} figures)\n`);
}

function note(text: string): void {
  if (!jsonOnly) process.stderr.write(`${text}\n`);
}

/** Whether a broker answers (the Kafka bench is skipped with a notice otherwise). */
function answers(address: string): Promise<boolean> {
  const colon = address.lastIndexOf(':');
  return new Promise((resolve) => {
    const socket = connect({ host: address.slice(0, colon), port: Number(address.slice(colon + 1)) });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1500, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

try {
  if (only === undefined || only === 'routing') {
    note('routing: index vs full scan at 1,000 and 10,000 nodes');
    emit(routingBench());
  }
  let journalDir: string | undefined;
  if (only === undefined || only === 'e2e' || only === 'replay') {
    note('end to end: requests through a shard with the durable LMDB journal');
    const e2e = await endToEndBench(dir);
    if (only !== 'replay') emit(e2e.figures);
    journalDir = e2e.journalDir;
  }
  if (only === undefined || only === 'workers') {
    note('workers: the same four-geozone LMDB region over one and two worker threads, and on one event loop (medians of 3 runs)');
    emit(await endToEndWorkersBench(join(dir, 'workers'), Number(flagValue('--requests') ?? 100_000), 3, note));
  }
  if (journalDir !== undefined && (only === undefined || only === 'replay')) {
    note('replay: the end-to-end journal rebuilt through the shards');
    emit(replayBench(journalDir));
  }
  if (only === undefined || only === 'recovery') {
    note('recovery: a 10,000-node region from its snapshot and journal tail; the input stall while a snapshot is written');
    emit(await recoveryBench(dir));
  }
  if (only === undefined || only === 'memory') {
    note('memory: heap per actor at 10,000 actors');
    emit(await memoryBench(join(dir, 'memory')));
  }
  if (only === undefined || only === 'http') {
    note('http: POST /v1/inference over 127.0.0.1 sockets vs a bare fastify route; tracing on vs off');
    emit(await httpInferenceBench(join(dir, 'http')));
  }
  if (only === undefined || only === 'console') {
    note('console: fan-out to 100 WebSocket clients through ConsoleHub vs a raw ws broadcast loop');
    emit(await consoleFanoutBench());
    note('console: telemetry input to console arrival through a live arcnet region process');
    emit(await consoleLagBench());
  }
  if (only === undefined || only === 'inspector') {
    note('inspector: first diagram and live update time in Chromium, region throughput with and without the page, 10,000 nodes');
    emit(await inspectorBench(join(dir, 'inspector')));
  }
  if (only === undefined || only === 'federated') {
    note('federated: FedAvg accuracy vs centralized training on the digits; aggregation cost vs a bare weighted average');
    emit(federatedBench());
    note('federated: round latency with 8, 32 and 128 participants through an embedded region vs the same work without it');
    emit(await federatedRoundsBench(join(dir, 'federated')));
  }
  if (only === undefined || only === 'central') {
    note('central: job intake decisions/s vs raw journal appends; summaries folded/s vs the bare fold; CPU per HPC job through the simulated mover and queue vs the same journal appends (medians of 3 runs)');
    emit(await centralBench(join(dir, 'central')));
  }
  if (only === undefined || only === 'scale') {
    note('scale: events/s at 1k, 10k and 100k nodes in the same simulation; sim speed; routing p99 and memory at 100k nodes');
    const simSeconds = flagValue('--sim-seconds');
    emit(await scaleBench(join(dir, 'scale'), { note, ...(simSeconds === undefined ? {} : { simSeconds: Number(simSeconds), loadSimSeconds: Number(simSeconds) }) }));
  }
  if (only === 'soak') {
    // Not part of the full run (it lasts half an hour): only when asked for.
    const minutes = Number(flagValue('--minutes') ?? 30);
    note(`soak: 100k nodes, 10k telemetry/s + 10k requests/s, faults on, ${minutes} minutes`);
    emit(await soakBench(join(dir, 'soak'), minutes, (line) => process.stdout.write(`${JSON.stringify(line)}\n`)));
  }
  if (only === undefined || only === 'kafka') {
    const brokers = kafkaBrokers();
    if ((await Promise.all(brokers.map(answers))).some(Boolean)) {
      note('kafka: requests through `arcnet region --kafka` on the broker vs raw kafkajs produce');
      // Extra node arguments for the region child, e.g. BENCH_KAFKA_REGION_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof'.
      const regionNodeArgs = (process.env['BENCH_KAFKA_REGION_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '');
      emit(await kafkaEndToEndBench({ regionNodeArgs, note }));
    } else {
      process.stderr.write(`kafka bench skipped: no broker at ${brokers.join(',')} (npm run kafka:start, or set KAFKA_BROKERS)\n`);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
  if (reportDir !== undefined) writeReport(reportDir);
}
