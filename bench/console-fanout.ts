import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { WebSocket, WebSocketServer } from 'ws';
import { ConsoleHub } from '../adapters/console/console-hub.js';
import type { ConsoleMessage } from '../adapters/console/console-messages.js';
import { figure, percentile, round, type Figure } from './measure.js';

/**
 * Console fan-out: messages delivered per second to 100 real ws clients on
 * loopback through ConsoleHub (filters, per-client buffer bound, one
 * serialization per message, frames of one publish call corked into one write
 * per client) against a raw `ws` broadcast loop (one JSON.stringify per message,
 * `send` to every open client) over the same payloads to the same number of
 * clients, in the same run. The clients live in a worker thread, so the server
 * side has its own core; the publisher keeps at most WINDOW messages ahead of
 * the slowest client, well inside the hub's 1 MiB per-client bound, so neither
 * side drops anything. Delivery delay (publish to receipt, stamped in the
 * payload, read on sampled receipts) is taken from a paced run at an offered
 * rate both sides keep up with, so it shows fan-out cost rather than queueing.
 */
const CLIENTS = 100;
const MESSAGES = 5_000;
const WARMUP_MESSAGES = 1_000;
const BATCH = 50;
const WINDOW = 500;
/** Paced run: messages/s published (x CLIENTS deliveries), and for how long. */
const PACED_PER_SEC = 500;
const PACED_MESSAGES = 1_000;
/** Each client parses every n-th message for its stamp; the others are only counted. */
const SAMPLE_EVERY = 10;
const WORKER_ROLE = 'console-fanout-clients';

interface ClientsTask {
  readonly role: typeof WORKER_ROLE;
  readonly url: string;
  readonly clients: number;
  readonly messages: number;
  /** Control messages each client gets before the data (the hub's `subscribed` reply). */
  readonly greetings: number;
}

type FromClients = { readonly kind: 'ready' } | { readonly kind: 'progress'; readonly slowest: number } | { readonly kind: 'done'; readonly delaysMs: number[] };

/** Wall-clock ms with sub-ms resolution, comparable across threads of one process. */
const stampMs = (): number => performance.timeOrigin + performance.now();

// ------------------------------------------------------------------ client side (worker thread)

async function runClients(task: ClientsTask): Promise<void> {
  const port = parentPort;
  if (port === null) return;
  const received = new Array<number>(task.clients).fill(0);
  const delaysMs: number[] = [];
  const sockets: WebSocket[] = [];
  for (let i = 0; i < task.clients; i++) {
    const ws = new WebSocket(task.url);
    ws.on('message', (data: Buffer) => {
      const count = ++received[i]!;
      if (count % SAMPLE_EVERY !== 0) return;
      const message = JSON.parse(data.toString('utf8')) as { details?: { sentAtMs?: number } };
      const sentAtMs = message.details?.sentAtMs;
      if (sentAtMs !== undefined) delaysMs.push(stampMs() - sentAtMs);
    });
    sockets.push(ws);
  }
  await Promise.all(sockets.map((ws) => once(ws, 'open')));
  port.postMessage({ kind: 'ready' } satisfies FromClients);
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      let slowest = Number.POSITIVE_INFINITY;
      for (const count of received) slowest = Math.min(slowest, count - task.greetings);
      if (slowest >= task.messages) {
        clearInterval(timer);
        resolve();
      } else {
        port.postMessage({ kind: 'progress', slowest } satisfies FromClients);
      }
    }, 2);
  });
  port.postMessage({ kind: 'done', delaysMs } satisfies FromClients);
  for (const ws of sockets) ws.close();
}

if (!isMainThread && (workerData as Partial<ClientsTask> | null)?.role === WORKER_ROLE) void runClients(workerData as ClientsTask);

// ------------------------------------------------------------------ server side

interface FanoutRun {
  readonly deliveriesPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

function message(seq: number): ConsoleMessage {
  return {
    type: 'system',
    geozone: 'CAISO',
    severity: 'info',
    message: `node CAISO-${String(seq % 1000).padStart(5, '0')} reported`,
    details: { seq, sentAtMs: stampMs(), gpuUtilization: 0.42, modelsLoaded: ['llama-3-70b', 'mistral-7b'] },
    timestamp: '2026-01-01T00:00:00.000Z',
  };
}

/**
 * Publishes `messages` in batches, never more than WINDOW ahead of the slowest
 * client, until all have them: as fast as that allows (closed loop), or at
 * `offeredPerSec` (paced, for the delay a console sees when nothing queues).
 */
async function drive(url: string, messages: number, greetings: number, publish: (batch: ConsoleMessage[]) => void, offeredPerSec?: number): Promise<FanoutRun> {
  const task: ClientsTask = { role: WORKER_ROLE, url, clients: CLIENTS, messages, greetings };
  const worker = new Worker(new URL(import.meta.url), { workerData: task });
  let slowest = 0;
  let done: number[] | undefined;
  let wake: (() => void) | undefined;
  worker.on('message', (event: FromClients) => {
    if (event.kind === 'progress') slowest = Math.max(slowest, event.slowest);
    else if (event.kind === 'done') done = event.delaysMs;
    wake?.();
  });
  const failed = once(worker, 'error');
  const next = (): Promise<void> => new Promise<void>((resolve) => (wake = resolve));
  await Promise.race([once(worker, 'message'), failed]);
  const start = performance.now();
  let seq = 0;
  while (seq < messages) {
    if (seq - slowest >= WINDOW) {
      await next();
      continue;
    }
    const due = offeredPerSec === undefined ? messages : Math.min(messages, Math.floor(((performance.now() - start) / 1000) * offeredPerSec));
    const batch: ConsoleMessage[] = [];
    for (let i = 0; i < BATCH && seq < due; i++) batch.push(message(seq++));
    if (batch.length > 0) publish(batch);
    if (offeredPerSec === undefined) await nextTurn();
    else await sleep(1);
  }
  while (done === undefined) await next();
  const elapsedMs = performance.now() - start;
  await worker.terminate();
  return { deliveriesPerSec: ((messages * CLIENTS) / elapsedMs) * 1000, p50Ms: percentile(done, 50), p99Ms: percentile(done, 99) };
}

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

async function hubRun(messages: number, offeredPerSec?: number): Promise<FanoutRun> {
  const server = createServer();
  const hub = new ConsoleHub({ authorize: () => Promise.resolve({ ok: true, geozones: 'all' }), maxClients: CLIENTS * 2 });
  hub.attach(server);
  const port = await listen(server);
  try {
    const run = await drive(`ws://127.0.0.1:${port}/telemetry`, messages, 1, (batch) => hub.publish(batch), offeredPerSec);
    const stats = hub.stats();
    if (stats.dropped > 0 || stats.disconnectedSlow > 0) throw new Error(`console hub dropped messages in the bench: ${JSON.stringify(stats)}`);
    return run;
  } finally {
    await hub.close();
    server.closeAllConnections();
    server.close();
  }
}

/** The raw cost underneath: ws's own broadcast loop, one JSON.stringify per message. */
async function rawRun(messages: number, offeredPerSec?: number): Promise<FanoutRun> {
  const server = createServer();
  const wss = new WebSocketServer({ server, perMessageDeflate: false });
  const port = await listen(server);
  try {
    return await drive(`ws://127.0.0.1:${port}/`, messages, 0, (batch) => {
      for (const m of batch) {
        const data = JSON.stringify(m);
        for (const client of wss.clients) if (client.readyState === WebSocket.OPEN) client.send(data);
      }
    }, offeredPerSec);
  } finally {
    for (const client of wss.clients) client.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
    server.closeAllConnections();
    server.close();
  }
}

export async function consoleFanoutBench(): Promise<Figure[]> {
  await hubRun(WARMUP_MESSAGES);
  await rawRun(WARMUP_MESSAGES);
  const hub = await hubRun(MESSAGES);
  const raw = await rawRun(MESSAGES);
  const hubPaced = await hubRun(PACED_MESSAGES, PACED_PER_SEC);
  const rawPaced = await rawRun(PACED_MESSAGES, PACED_PER_SEC);
  return [
    figure({
      bench: 'console_fanout',
      metric: 'deliveries_per_sec',
      unit: 'messages/s',
      value: hub.deliveriesPerSec,
      baseline: { what: 'raw ws broadcast loop, same payloads and clients', value: raw.deliveriesPerSec },
      extra: { clients: CLIENTS, messages: MESSAGES, window: WINDOW, p99DelayMs: round(hub.p99Ms), baselineP99DelayMs: round(raw.p99Ms) },
    }),
    figure({
      bench: 'console_fanout',
      metric: `p99_delivery_delay_ms_at_${PACED_PER_SEC}_per_sec`,
      unit: 'ms',
      value: hubPaced.p99Ms,
      baseline: { what: 'raw ws broadcast loop p99, same pace', value: rawPaced.p99Ms },
      extra: { clients: CLIENTS, messages: PACED_MESSAGES, p50Ms: round(hubPaced.p50Ms), baselineP50Ms: round(rawPaced.p50Ms) },
    }),
  ];
}
