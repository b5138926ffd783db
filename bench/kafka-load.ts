import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel, type Consumer, type Producer } from 'kafkajs';
import { geozonePartitioner, topicNames } from '../adapters/kafka/topics.js';
import { monotonicNowMs } from '../runtime/clock.js';
import { inputToWire } from '../adapters/bus/input-wire.js';
import { benchModels, fleetTelemetry } from './fleet-fixture.js';
import { percentile } from './measure.js';

/**
 * Load for `arcnet region --kafka` through a real broker: a region child process,
 * a producer of the seed's wire format keyed by geozone, and an observer of the
 * geozone's dispatch topic (and the shared decision topic, for requests that get
 * no dispatch) that answers each dispatch with a result so capacity frees.
 */

const entry = fileURLToPath(new URL('../cli/arcnet.js', import.meta.url));
const names = topicNames();

export interface RegionChild {
  readonly child: ChildProcess;
  readonly stderr: () => string;
  /** Resolves with the JSON line the process printed when it exited. */
  readonly exited: Promise<{ code: number | null; signal: string | null; line: Record<string, unknown> | undefined }>;
  readonly taken: Set<string>;
}

/** Spawns `node [nodeArgs] dist/cli/arcnet.js region --kafka ...` (nodeArgs: e.g. --cpu-prof). */
export function startRegionChild(brokers: readonly string[], zones: readonly string[], group: string, nodeArgs: readonly string[] = []): RegionChild {
  const child = spawn(
    process.execPath,
    [...nodeArgs, entry, 'region', '--kafka', brokers.join(','), '--geozones', zones.join(','), '--group', group, '--status-every', '60s', '--port', '0'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  const taken = new Set<string>();
  child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => {
    const text = chunk.toString();
    err = (err + text).slice(-20_000);
    for (const line of text.split('\n')) {
      if (!line.includes('geozone taken')) continue;
      try {
        const parsed = JSON.parse(line) as { geozone?: string };
        if (parsed.geozone !== undefined) taken.add(parsed.geozone);
      } catch {
        // not a log line of ours
      }
    }
  });
  const exited = new Promise<{ code: number | null; signal: string | null; line: Record<string, unknown> | undefined }>((resolve) => {
    child.on('exit', (code, signal) => {
      const last = out.trim().split('\n').pop();
      let line: Record<string, unknown> | undefined;
      try {
        line = last === undefined || last === '' ? undefined : (JSON.parse(last) as Record<string, unknown>);
      } catch {
        line = undefined;
      }
      resolve({ code, signal, line });
    });
  });
  return { child, stderr: () => err, exited, taken };
}

export async function until(what: string, timeoutMs: number, check: () => boolean, detail: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail() === '' ? '' : `\n${detail()}`}`);
    await sleep(20);
  }
}

export function benchKafka(brokers: readonly string[], clientId: string): Kafka {
  return new Kafka({ clientId, brokers: [...brokers], logLevel: logLevel.NOTHING, retry: { retries: 10 } });
}

/** One produce call: messages per topic, acks=all. */
export type SendBatch = { topic: string; messages: { key: string; value: string }[] }[];

/** A closed-loop or paced run's outcome. */
export interface LoadRun {
  readonly requests: number;
  readonly perSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /**
   * The region's share: produce start to the moment the region's producer stamped the
   * dispatch (its CreateTime, ms resolution); the rest is the produce and the observer's fetch.
   */
  readonly toEffectP50Ms: number;
  readonly toEffectP99Ms: number;
  readonly dispatched: number;
  /** Requests answered with a decision other than reserved (no dispatch). */
  readonly refused: number;
  /** Requests neither dispatched nor refused when the run gave up waiting. */
  readonly lost: number;
  /** The produce calls of the run, with their issue time relative to its start (the raw baseline replays them). */
  readonly sends: { atMs: number; batch: SendBatch; requests: number }[];
  readonly totalMs: number;
}

export interface LoadOptions {
  readonly requests: number;
  /** Requests per produce call at most. */
  readonly batch: number;
  /** Closed loop: requests outstanding at most. */
  readonly maxOutstanding: number;
  /** Open loop: requests offered per second (closed loop when undefined). */
  readonly offeredPerSec?: number | undefined;
  /** Give up when nothing was dispatched or refused for this long. */
  readonly stallMs?: number;
}

/**
 * The bench's client side of one geozone: produces telemetry and requests,
 * follows the dispatch topic and the decision topic, queues a result per dispatch.
 */
export class GeozoneLoad {
  private readonly producedAt = new Map<string, number>();
  private latencies: number[] = [];
  /** Per dispatch: produce start to the dispatch's CreateTime (set by the region's producer, same host clock). */
  private toEffect: number[] = [];
  private results: { key: string; value: string }[] = [];
  private dispatched = 0;
  private refused = 0;
  private wake: (() => void) | undefined;
  private consumer: Consumer | undefined;
  private joined = false;
  private nextId = 0;

  private constructor(
    private readonly producer: Producer,
    private readonly kafka: Kafka,
    readonly geozone: string,
    private readonly run: string,
  ) {}

  static async start(kafka: Kafka, geozone: string, run: string): Promise<GeozoneLoad> {
    const producer = kafka.producer({ idempotent: true, allowAutoTopicCreation: false, createPartitioner: geozonePartitioner([geozone]) });
    await producer.connect();
    return new GeozoneLoad(producer, kafka, geozone, run);
  }

  /** Starts following the dispatch and decision topics from their ends (call once the region created them). */
  async observe(): Promise<void> {
    const consumer = this.kafka.consumer({ groupId: `bench-kafka-observer-${this.run}`, sessionTimeout: 30_000, maxWaitTimeInMs: 5, minBytes: 1 });
    this.consumer = consumer;
    consumer.on(consumer.events.GROUP_JOIN, () => (this.joined = true));
    await consumer.connect();
    await consumer.subscribe({ topics: [names.dispatch(this.geozone), names.decision], fromBeginning: false });
    const dispatchTopic = names.dispatch(this.geozone);
    const prefix = `r-${this.run}-`;
    await consumer.run({
      eachBatch: ({ batch }) => {
        const now = monotonicNowMs();
        for (const message of batch.messages) {
          const raw = message.value?.toString() ?? '';
          if (batch.topic !== dispatchTopic && !raw.includes(prefix)) continue; // the decision topic is shared
          const value = JSON.parse(raw) as Record<string, unknown>;
          const requestId = String(value['request-id']);
          const at = this.producedAt.get(requestId);
          if (at === undefined) continue;
          if (batch.topic === dispatchTopic) {
            this.producedAt.delete(requestId);
            this.latencies.push(now - at);
            this.toEffect.push(Number(message.timestamp) - (performance.timeOrigin + at));
            this.dispatched++;
            this.results.push({ key: this.geozone, value: JSON.stringify({ 'request-id': requestId, 'node-id': value['node-id'], 'latency-ms': 1, status: 'completed' }) });
          } else if (value['outcome'] !== 'reserved') {
            this.producedAt.delete(requestId);
            this.refused++;
          }
        }
        this.wake?.();
        return Promise.resolve();
      },
    });
    await until('the observer to join its group', 30_000, () => this.joined);
  }

  /** Telemetry for `nodes` nodes of the geozone (the seed wire format), in produce calls of `batch`. */
  async telemetry(nodes: number, batch: number): Promise<void> {
    const messages = fleetTelemetry(nodes, this.geozone, Date.now()).map((input) => ({ key: this.geozone, value: JSON.stringify(inputToWire(input)?.message) }));
    for (let i = 0; i < messages.length; i += batch) await this.producer.send({ topic: names.telemetry, acks: -1, messages: messages.slice(i, i + batch) });
  }

  private request(i: number): { key: string; value: string } {
    const input = inputToWire({
      type: 'inference',
      request: { requestId: `r-${this.run}-${i}`, modelId: benchModels[i % benchModels.length] as string, contextWindow: 4096, priority: 'normal', requesterGeozone: this.geozone },
      triedGeozones: [],
    });
    return { key: this.geozone, value: JSON.stringify(input?.message) };
  }

  private nextWake(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => done(), ms);
      const done = (): void => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      this.wake = done;
    });
  }

  /**
   * Requests in produce calls of at most `batch`, each call also carrying the results
   * queued since the last one; latency per request from the start of its produce call
   * to the moment its dispatch was consumed.
   */
  async load(options: LoadOptions): Promise<LoadRun> {
    const { requests, batch, maxOutstanding, offeredPerSec } = options;
    const stallMs = options.stallMs ?? 30_000;
    this.latencies = [];
    this.toEffect = [];
    this.dispatched = 0;
    this.refused = 0;
    const sends: { atMs: number; batch: SendBatch; requests: number }[] = [];
    const base = this.nextId;
    let sent = 0;
    let lastProgress = monotonicNowMs();
    let progress = 0;
    const start = monotonicNowMs();
    while (sent < requests || this.producedAt.size > 0 || this.results.length > 0) {
      const now = monotonicNowMs();
      if (this.dispatched + this.refused !== progress) {
        progress = this.dispatched + this.refused;
        lastProgress = now;
      } else if (now - lastProgress > stallMs) {
        break;
      }
      const due = offeredPerSec === undefined ? requests : Math.min(requests, Math.floor(((now - start) / 1000) * offeredPerSec));
      const room = offeredPerSec === undefined ? maxOutstanding - this.producedAt.size : batch;
      const n = Math.max(0, Math.min(batch, due - sent, room));
      const answers = this.results;
      if (n === 0 && answers.length === 0) {
        // Nothing to send: wait for a dispatch, or until the next request is due.
        const untilDue = offeredPerSec === undefined || sent >= requests ? 50 : Math.max(0, ((sent + 1) * 1000) / offeredPerSec - (now - start));
        await this.nextWake(Math.min(50, Math.max(1, untilDue)));
        continue;
      }
      this.results = [];
      const call: SendBatch = [];
      if (n > 0) {
        const messages: { key: string; value: string }[] = [];
        for (let i = 0; i < n; i++) messages.push(this.request(base + sent + i));
        call.push({ topic: names.inference, messages });
      }
      if (answers.length > 0) call.push({ topic: names.result, messages: answers });
      const issued = monotonicNowMs();
      for (let i = 0; i < n; i++) this.producedAt.set(`r-${this.run}-${base + sent + i}`, issued);
      sent += n;
      sends.push({ atMs: issued - start, batch: call, requests: n });
      await this.producer.sendBatch({ acks: -1, topicMessages: call });
    }
    const totalMs = monotonicNowMs() - start;
    this.nextId += sent;
    const lost = this.producedAt.size;
    this.producedAt.clear();
    return {
      requests: sent,
      perSec: ((this.dispatched + this.refused) / totalMs) * 1000,
      p50Ms: percentile(this.latencies, 50),
      p99Ms: percentile(this.latencies, 99),
      toEffectP50Ms: percentile(this.toEffect, 50),
      toEffectP99Ms: percentile(this.toEffect, 99),
      dispatched: this.dispatched,
      refused: this.refused,
      lost,
      sends,
      totalMs,
    };
  }

  async close(): Promise<void> {
    await this.consumer?.disconnect().catch(() => undefined);
    await this.producer.disconnect().catch(() => undefined);
  }
}

/**
 * The raw cost underneath: the same produce calls (same messages, same batches,
 * acks=all, the same idempotent kafkajs producer) to a scratch topic, one after
 * another, or at the times the run issued them. Reported as requests/s at the
 * same requests per call; latency is issue to acknowledged.
 */
export async function rawProduce(
  kafka: Kafka,
  scratchTopic: string,
  sends: readonly { atMs: number; batch: SendBatch; requests: number }[],
  paced: boolean,
): Promise<{ perSec: number; p50Ms: number; p99Ms: number; messagesPerSec: number }> {
  const producer = kafka.producer({ idempotent: true, allowAutoTopicCreation: false });
  await producer.connect();
  try {
    const latencies: number[] = [];
    let requests = 0;
    let messages = 0;
    const start = monotonicNowMs();
    for (const send of sends) {
      while (paced && monotonicNowMs() - start < send.atMs) await sleep(Math.max(0, Math.min(1, send.atMs - (monotonicNowMs() - start))));
      const issued = monotonicNowMs();
      await producer.sendBatch({ acks: -1, topicMessages: send.batch.map((t) => ({ topic: scratchTopic, messages: t.messages })) });
      latencies.push(monotonicNowMs() - issued);
      requests += send.requests;
      messages += send.batch.reduce((sum, t) => sum + t.messages.length, 0);
    }
    const totalMs = monotonicNowMs() - start;
    return { perSec: (requests / totalMs) * 1000, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), messagesPerSec: (messages / totalMs) * 1000 };
  } finally {
    await producer.disconnect();
  }
}
