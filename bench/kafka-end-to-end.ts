import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Admin, Kafka } from 'kafkajs';
import { topicNames } from '../adapters/kafka/topics.js';
import { benchKafka, GeozoneLoad, rawProduce, startRegionChild, until, type LoadRun, type RegionChild } from './kafka-load.js';
import { figure, round, type Figure } from './measure.js';

/** Requests per produce call (the raw baseline uses the same calls). */
const BATCH = 200;
/** Requests in flight in the closed-loop (max throughput) run. */
const MAX_OUTSTANDING = 2048;
/** Offered load for the latency figure (issue 11, goal 6: p99 <= 25 ms at 5,000/s). */
const OFFERED_PER_SEC = 5_000;
/** Issue 11, goal 6. */
const THROUGHPUT_GOAL = '>= 20,000 requests/s and >= 0.5 of raw produce';
const LATENCY_GOAL = `p99 <= 25 ms at ${OFFERED_PER_SEC}/s`;
/** Linux reports a process's CPU time in clock ticks of 10 ms (USER_HZ is 100 on every Linux ABI Node runs on). */
const PROC_TICK_MS = 10;
const NODES = 1_000;
const names = topicNames();

export interface KafkaEndToEndOptions {
  /** Default: KAFKA_BROKERS, else 127.0.0.1:9092. */
  readonly brokers?: readonly string[];
  /** Closed-loop requests (default 30,000). */
  readonly requests?: number;
  /** Paced requests at OFFERED_PER_SEC (default 50,000: 10 s). */
  readonly pacedRequests?: number;
  /** Extra node arguments for the region child (e.g. --cpu-prof, --cpu-prof-dir=...). */
  readonly regionNodeArgs?: readonly string[];
  /** Progress notes (stderr in bench/run.ts). */
  readonly note?: (text: string) => void;
}

export function kafkaBrokers(): string[] {
  return (process.env['KAFKA_BROKERS'] ?? '127.0.0.1:9092')
    .split(',')
    .map((b) => b.trim())
    .filter((b) => b.length > 0);
}

/**
 * Commits the group's offsets at the topics' ends (a transactional offset commit needs no
 * group member; kafkajs's admin.resetOffsets commits nothing for a group that never ran).
 */
async function startAtEnd(kafka: Kafka, admin: Admin, groupId: string, topics: readonly string[], run: string): Promise<void> {
  const existing = new Set(await admin.listTopics());
  const ends = await Promise.all(
    topics.filter((t) => existing.has(t)).map(async (topic) => ({ topic, partitions: (await admin.fetchTopicOffsets(topic)).map((p) => ({ partition: p.partition, offset: p.high })) })),
  );
  if (ends.length === 0) return;
  const producer = kafka.producer({ transactionalId: `bench-kafka-skip-${run}`, idempotent: true, maxInFlightRequests: 1, retry: { retries: 12, initialRetryTime: 5, maxRetryTime: 1_000 } });
  await producer.connect();
  try {
    const tx = await producer.transaction();
    await tx.sendOffsets({ consumerGroupId: groupId, topics: ends });
    await tx.commit();
  } finally {
    await producer.disconnect();
  }
}

/**
 * The region child's CPU time so far (user + system, ms) from /proc, or undefined off Linux.
 * Said next to each figure so a run shows whether the region was CPU-bound (busy ~1.0)
 * or waiting on the broker.
 */
function childCpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start after the last ')'; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * PROC_TICK_MS;
  } catch {
    return undefined;
  }
}

/** CPU the region spent in a phase: per request (µs) and as a share of one core over the phase's wall time. */
function regionCpu(beforeMs: number | undefined, afterMs: number | undefined, run: LoadRun): Record<string, unknown> {
  if (beforeMs === undefined || afterMs === undefined) return {};
  const cpuMs = afterMs - beforeMs;
  return { regionCpuMs: cpuMs, regionCpuUsPerRequest: round((cpuMs * 1000) / Math.max(1, run.requests)), regionBusy: round(cpuMs / Math.max(1, run.totalMs)) };
}

function describe(run: LoadRun): Record<string, unknown> {
  return { toRegionSendP50Ms: round(run.toEffectP50Ms), toRegionSendP99Ms: round(run.toEffectP99Ms), requests: run.requests, dispatched: run.dispatched, refused: run.refused, lost: run.lost, produceCalls: run.sends.length, seconds: round(run.totalMs / 1000) };
}

/**
 * Inference requests end to end through `arcnet region --kafka` on a real broker:
 * one region child owning one fresh geozone (the seed topics are shared by every
 * run on the broker, so each run uses a geozone and groups of its own), 1,000 nodes
 * of telemetry on arc.telemetry.node, requests on arc.request.inference in produce
 * calls of 200 (acks=all, key = geozone), each dispatch consumed from
 * arc.command.dispatch.<geozone> answered with a result on arc.result.inference.
 * Latency is from the start of a request's produce call to the moment its dispatch
 * is consumed (one process clock): the region's consume, journal transaction
 * (records + input offsets), and the effect produce are all inside it.
 *
 * Baseline, same run: the same produce calls (same messages, batches, acks=all,
 * idempotent kafkajs producer) replayed to a scratch topic, back to back for the
 * throughput figure and at the recorded times for the paced one.
 */
export async function kafkaEndToEndBench(options: KafkaEndToEndOptions = {}): Promise<Figure[]> {
  const brokers = options.brokers ?? kafkaBrokers();
  const note = options.note ?? (() => undefined);
  const requests = options.requests ?? 30_000;
  const pacedRequests = options.pacedRequests ?? 50_000;
  const run = randomUUID().slice(0, 8).toUpperCase().replace(/[^A-Z0-9]/g, 'X');
  const geozone = `B${run}`;
  const kafka = benchKafka(brokers, `bench-kafka-${run}`);
  const scratchTopic = `bench.kafka.raw.${run}`;
  let region: RegionChild | undefined;
  let load: GeozoneLoad | undefined;
  const admin = kafka.admin();
  await admin.connect();
  try {
    // The input topics are shared, and a group without offsets reads them from the beginning:
    // start the region's group at their ends, so it does not wade through earlier runs' traffic.
    const group = `bench-kafka-region-${run}`;
    await startAtEnd(kafka, admin, group, [names.telemetry, names.inference, names.result], run);
    region = startRegionChild(brokers, [geozone], group, options.regionNodeArgs);
    const child = region;
    await until('the region to take its geozone', 120_000, () => child.taken.has(geozone) || child.child.exitCode !== null, () => child.stderr().slice(-3000));
    if (!child.taken.has(geozone)) throw new Error(`the region exited before taking ${geozone}\n${child.stderr().slice(-3000)}`);
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic: scratchTopic, numPartitions: 1 }] });

    load = await GeozoneLoad.start(kafka, geozone, run);
    await load.observe();
    note(`kafka: region owns ${geozone}; telemetry for ${NODES} nodes`);
    await load.telemetry(NODES, BATCH);
    // Reflected once requests get dispatched; this also warms up both sides.
    const warmup = await load.load({ requests: 2_000, batch: BATCH, maxOutstanding: MAX_OUTSTANDING, stallMs: 60_000 });
    if (warmup.dispatched === 0) throw new Error(`no dispatch in the warm-up: ${JSON.stringify(describe(warmup))}\n${child.stderr().slice(-3000)}`);

    note(`kafka: ${requests} requests, closed loop (${MAX_OUTSTANDING} outstanding)`);
    const cpuBeforeE2e = childCpuMs(child.child.pid);
    const e2e = await load.load({ requests, batch: BATCH, maxOutstanding: MAX_OUTSTANDING });
    const cpuAfterE2e = childCpuMs(child.child.pid);
    note(`kafka: ${pacedRequests} requests at ${OFFERED_PER_SEC}/s`);
    const paced = await load.load({ requests: pacedRequests, batch: BATCH, maxOutstanding: Number.MAX_SAFE_INTEGER, offeredPerSec: OFFERED_PER_SEC });
    const cpuAfterPaced = childCpuMs(child.child.pid);
    await load.close();
    load = undefined;

    note('kafka: raw produce of the same calls');
    const raw = await rawProduce(kafka, scratchTopic, e2e.sends, false);
    const rawPaced = await rawProduce(kafka, scratchTopic, paced.sends, true);

    child.child.kill('SIGTERM');
    const exit = await child.exited;
    region = undefined;
    const line = exit.line ?? {};
    // The region's stop line: its state hash, its event counters (numbers) and its edge counters.
    const counters = Object.fromEntries(Object.entries(line).filter(([, v]) => typeof v === 'number'));
    // Each journal append is one transaction: its record message(s) and a commit marker.
    const journalEnd = (await admin.fetchTopicOffsets(names.journal(geozone))).reduce((sum, p) => sum + Number(p.high), 0);
    const regionLine = { exitCode: exit.code, stateHash: line['stateHash'], ...counters, journalKafkaOffsets: journalEnd, edge: line['edge'] };
    const callsE2e = e2e.requests / Math.max(1, e2e.sends.filter((s) => s.requests > 0).length);
    return [
      figure({
        bench: 'end_to_end_kafka',
        metric: 'requests_per_sec',
        unit: 'requests/s',
        value: e2e.perSec,
        baseline: { what: 'raw kafkajs produce (acks=all, idempotent) of the same produce calls, back to back, as requests/s', value: raw.perSec },
        extra: { ...describe(e2e), ...regionCpu(cpuBeforeE2e, cpuAfterE2e, e2e), nodes: NODES, requestsPerCall: round(callsE2e), baselineMessagesPerSec: round(raw.messagesPerSec), region: regionLine },
        goal: THROUGHPUT_GOAL,
      }),
      figure({
        bench: 'end_to_end_kafka',
        metric: 'p99_input_to_dispatch_ms_at_max_throughput',
        unit: 'ms',
        value: e2e.p99Ms,
        baseline: { what: 'raw produce call p99 (issue to acks=all), same calls back to back', value: raw.p99Ms },
        extra: { p50Ms: round(e2e.p50Ms), baselineP50Ms: round(raw.p50Ms), outstanding: MAX_OUTSTANDING },
        goal: THROUGHPUT_GOAL,
      }),
      figure({
        bench: 'end_to_end_kafka',
        metric: `p99_input_to_dispatch_ms_at_${OFFERED_PER_SEC}_per_sec`,
        unit: 'ms',
        value: paced.p99Ms,
        baseline: { what: 'raw produce call p99 (issue to acks=all), same calls at the same times', value: rawPaced.p99Ms },
        extra: { ...describe(paced), ...regionCpu(cpuAfterE2e, cpuAfterPaced, paced), p50Ms: round(paced.p50Ms), baselineP50Ms: round(rawPaced.p50Ms), achievedPerSec: round(paced.perSec) },
        goal: LATENCY_GOAL,
      }),
    ];
  } finally {
    await load?.close();
    if (region !== undefined && region.child.exitCode === null && region.child.signalCode === null) region.child.kill('SIGKILL');
    await admin.deleteTopics({ topics: [scratchTopic] }).catch(() => undefined);
    await admin.disconnect();
  }
}
