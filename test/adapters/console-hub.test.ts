import test from 'ava';
import Fastify from 'fastify';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { ConsoleFeed } from '../../adapters/console/console-feed.js';
import { ConsoleHub, type ConsoleAuthorization, type ConsoleHubOptions } from '../../adapters/console/console-hub.js';
import {
  consoleMessageSchema,
  errorReplySchema,
  subscribedReplySchema,
  type ConsoleMessage,
  type ConsoleMessageType,
} from '../../adapters/console/console-messages.js';
import type { JournalRecord } from '../../runtime/journal.js';
import { tempDir } from '../helpers/fixtures.js';

const T0 = 1_767_225_600_000;

/** API keys as the console's key store would answer them. */
async function authorize(request: IncomingMessage): Promise<ConsoleAuthorization> {
  await Promise.resolve(); // as a real key store would, answer asynchronously
  const key = request.headers['x-api-key'];
  if (key === 'all-key') return { ok: true, geozones: 'all' };
  if (key === 'caiso-key') return { ok: true, geozones: ['CAISO'] };
  if (key === 'no-console-key') return { ok: false, status: 403, code: 'ARC_ERR_FORBIDDEN', message: 'this key may not read the console feed' };
  if (key === 'busy-key') return { ok: false, status: 429, code: 'ARC_ERR_RATE_LIMITED', message: 'too many connections for this key', retryAfterSeconds: 7 };
  return { ok: false, status: 401, code: 'ARC_ERR_UNAUTHENTICATED', message: 'send an API key in x-api-key' };
}

interface Running {
  readonly server: Server;
  readonly hub: ConsoleHub;
  readonly port: number;
  readonly url: (pathAndQuery?: string) => string;
}

async function withHub(options: Partial<ConsoleHubOptions>, run: (running: Running) => Promise<void>): Promise<void> {
  const server = createServer((_request, response) => response.writeHead(404).end());
  const hub = new ConsoleHub({ authorize, ...options });
  hub.attach(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  try {
    await run({ server, hub, port, url: (pathAndQuery = '/telemetry') => `ws://127.0.0.1:${port}${pathAndQuery}` });
  } finally {
    await hub.close();
    server.close();
    server.closeAllConnections();
  }
}

/** A real ws client that keeps every text message it receives, in order. */
class Inbox {
  readonly received: Record<string, unknown>[] = [];
  private waiters: (() => void)[] = [];

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      this.received.push(JSON.parse(data.toString('utf8')) as Record<string, unknown>);
      this.wake();
    });
    ws.on('close', () => this.wake());
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** Console data messages only (not subscribed/error replies). */
  get data(): ConsoleMessage[] {
    return this.received.filter((m) => ['telemetry', 'inference', 'hpc', 'system'].includes(m['type'] as string)) as ConsoleMessage[];
  }

  async until(done: () => boolean): Promise<void> {
    while (!done()) {
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error('connection closed while waiting');
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Waits for the next message matching `type` after those already seen. */
  async next(type: string): Promise<Record<string, unknown>> {
    const from = this.received.length;
    const find = (): Record<string, unknown> | undefined => this.received.slice(from).find((m) => m['type'] === type);
    await this.until(() => find() !== undefined);
    return find() as Record<string, unknown>;
  }

  /**
   * Re-sends the filter in force and waits for the server's `subscribed` reply:
   * the server writes it after everything it published before, so every
   * message published until now has arrived.
   */
  async fence(filter: { geozones?: string[]; types?: ConsoleMessageType[] }): Promise<Record<string, unknown>> {
    const reply = this.next('subscribed');
    this.ws.send(JSON.stringify({ type: 'subscribe', ...filter }));
    return reply;
  }
}

async function open(url: string, key = 'all-key'): Promise<Inbox> {
  const ws = new WebSocket(url, { headers: { 'x-api-key': key } });
  const inbox = new Inbox(ws);
  await once(ws, 'open');
  await inbox.until(() => inbox.received.some((m) => m['type'] === 'subscribed'));
  return inbox;
}

/** Connects expecting a refusal: the HTTP status and JSON body the server answered the upgrade with. */
async function refused(url: string, key?: string): Promise<{ status: number; body: Record<string, unknown>; headers: IncomingMessage['headers'] }> {
  const ws = new WebSocket(url, key === undefined ? {} : { headers: { 'x-api-key': key } });
  ws.on('error', () => undefined);
  return new Promise((resolve, reject) => {
    ws.once('open', () => reject(new Error('the upgrade was accepted')));
    ws.once('unexpected-response', (_request, response: IncomingMessage) => {
      let text = '';
      response.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown>, headers: response.headers }));
    });
  });
}

/** A TCP client that completes the WebSocket handshake by hand and then reads only if told to. */
async function rawClient(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(
    'GET /telemetry HTTP/1.1\r\n' +
      `Host: 127.0.0.1:${port}\r\n` +
      'Upgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
      'X-Api-Key: all-key\r\n\r\n',
  );
  let head = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      if (head.startsWith('HTTP/1.1 101')) resolve();
      else reject(new Error(`handshake refused: ${head.split('\r\n')[0]}`));
    };
    socket.on('data', onData);
  });
  return socket;
}

async function eventually(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2_000 && !condition(); i++) await sleep(10);
  if (!condition()) throw new Error(`never happened: ${what}`);
}

const telemetry = (geozone: string, id: string): ConsoleMessage => ({
  type: 'telemetry',
  geozone,
  node: { id, geohash: '9q9hvu', energySource: 'grid', batteryLevel: 0.5, gpuUtilization: 0.25, modelsLoaded: ['llama-3-8b'], timestamp: new Date(T0).toISOString() },
});
const system = (geozone: string, message: string, details: Record<string, unknown> = {}): ConsoleMessage => ({
  type: 'system',
  geozone,
  severity: 'info',
  message,
  details,
  timestamp: new Date(T0).toISOString(),
});
const label = (m: ConsoleMessage): string => `${m.type}:${m.geozone}:${m.type === 'telemetry' ? m.node.id : m.type === 'system' ? m.message : ''}`;

test('refusals reach the client as plain HTTP before any upgrade: 401, 403, 429 with Retry-After, 400 bad filter, 404 other path', async (t) => {
  await withHub({}, async ({ hub, url }) => {
    const none = await refused(url());
    t.is(none.status, 401);
    t.deepEqual(none.body, { code: 'ARC_ERR_UNAUTHENTICATED', message: 'send an API key in x-api-key' });
    t.is((await refused(url(), 'stolen-key')).status, 401);
    const forbidden = await refused(url(), 'no-console-key');
    t.is(forbidden.status, 403);
    t.is(forbidden.body['code'], 'ARC_ERR_FORBIDDEN');
    const busy = await refused(url(), 'busy-key');
    t.is(busy.status, 429);
    t.is(busy.headers['retry-after'], '7');
    const badFilter = await refused(url('/telemetry?types=telemetry,weather'), 'all-key');
    t.is(badFilter.status, 400);
    t.is(badFilter.body['code'], 'ARC_ERR_VALIDATION');
    t.is((await refused(url('/telemetry?geozones=caiso'), 'all-key')).status, 400, 'geozone ids are upper-case');
    const elsewhere = await refused(url('/other'), 'all-key');
    t.is(elsewhere.status, 404);
    t.is(elsewhere.body['code'], 'ARC_ERR_NOT_FOUND');
    t.is(hub.stats().clients, 0);
  });
});

test('beyond maxClients the next connection gets 503 until one leaves', async (t) => {
  await withHub({ maxClients: 1 }, async ({ hub, url }) => {
    const first = await open(url());
    const full = await refused(url(), 'all-key');
    t.is(full.status, 503);
    t.is(full.body['code'], 'ARC_ERR_OVERLOADED');
    first.ws.close();
    await once(first.ws, 'close');
    await eventually(() => hub.stats().clients === 0, 'the first client is gone');
    const second = await open(url());
    t.is(second.ws.readyState, WebSocket.OPEN);
  });
});

test('filters from the query string: each client gets only the geozones and types it asked for, in publish order', async (t) => {
  await withHub({}, async ({ hub, url }) => {
    const caisoTelemetry = await open(url('/telemetry?geozones=CAISO&types=telemetry'));
    const systemAnywhere = await open(url('/telemetry?types=system'));
    const twoZones = await open(url('/telemetry?geozones=ERCOT&geozones=PJM'));
    const everything = await open(url());
    t.deepEqual(caisoTelemetry.received[0], { type: 'subscribed', geozones: ['CAISO'], types: ['telemetry'] });
    t.deepEqual(twoZones.received[0], { type: 'subscribed', geozones: ['ERCOT', 'PJM'], types: ['telemetry', 'inference', 'hpc', 'system'] });
    t.deepEqual(everything.received[0], { type: 'subscribed', geozones: 'all', types: ['telemetry', 'inference', 'hpc', 'system'] });

    const published = [telemetry('CAISO', 'c1'), telemetry('ERCOT', 'e1'), system('CAISO', 's-caiso'), system('PJM', 's-pjm'), telemetry('CAISO', 'c2')];
    hub.publish(published);
    await caisoTelemetry.fence({ geozones: ['CAISO'], types: ['telemetry'] });
    await systemAnywhere.fence({ types: ['system'] });
    await twoZones.fence({ geozones: ['ERCOT', 'PJM'] });
    await everything.fence({});
    t.deepEqual(caisoTelemetry.data.map(label), ['telemetry:CAISO:c1', 'telemetry:CAISO:c2']);
    t.deepEqual(systemAnywhere.data.map(label), ['system:CAISO:s-caiso', 'system:PJM:s-pjm']);
    t.deepEqual(twoZones.data.map(label), ['telemetry:ERCOT:e1', 'system:PJM:s-pjm']);
    t.deepEqual(everything.data.map(label), published.map(label));
    t.is(hub.stats().sent, 2 + 2 + 2 + 5);
  });
});

test('a subscribe message changes the filter; a bad one gets a coded error and the connection stays', async (t) => {
  await withHub({}, async ({ hub, url }) => {
    const client = await open(url('/telemetry?types=telemetry'));
    const invalid = client.next('error');
    client.ws.send(JSON.stringify({ type: 'subscribe', types: ['weather'] }));
    const error = await invalid;
    t.true(errorReplySchema.safeParse(error).success);
    t.is(error['code'], 'ARC_ERR_VALIDATION');
    const extraKey = client.next('error');
    client.ws.send(JSON.stringify({ type: 'subscribe', geozones: ['CAISO'], everything: true }));
    t.is((await extraKey)['code'], 'ARC_ERR_VALIDATION', 'strict: unknown keys are refused');
    const notJson = client.next('error');
    client.ws.send('subscribe to everything please');
    t.is((await notJson)['code'], 'ARC_ERR_MALFORMED_JSON');
    t.is(client.ws.readyState, WebSocket.OPEN);

    const reply = await client.fence({ geozones: ['ERCOT'], types: ['system'] });
    t.true(subscribedReplySchema.safeParse(reply).success);
    t.deepEqual(reply, { type: 'subscribed', geozones: ['ERCOT'], types: ['system'] });
    hub.publish([telemetry('ERCOT', 'e1'), system('CAISO', 'not for you'), system('ERCOT', 'for you')]);
    await client.fence({ geozones: ['ERCOT'], types: ['system'] });
    t.deepEqual(client.data.map(label), ['system:ERCOT:for you']);
  });
});

test('a key limited to CAISO never receives ERCOT, whether it asks at connect or by subscribe', async (t) => {
  await withHub({}, async ({ hub, url }) => {
    const client = await open(url('/telemetry?geozones=CAISO,ERCOT'), 'caiso-key');
    t.deepEqual(client.received[0], { type: 'subscribed', geozones: ['CAISO'], types: ['telemetry', 'inference', 'hpc', 'system'] });
    const unfiltered = await open(url(), 'caiso-key');
    t.deepEqual(unfiltered.received[0], { type: 'subscribed', geozones: ['CAISO'], types: ['telemetry', 'inference', 'hpc', 'system'] });

    hub.publish([telemetry('ERCOT', 'e1'), telemetry('CAISO', 'c1'), system('ERCOT', 'ercot news')]);
    await client.fence({ geozones: ['CAISO', 'ERCOT'] });
    await unfiltered.fence({});
    t.deepEqual(client.data.map(label), ['telemetry:CAISO:c1']);
    t.deepEqual(unfiltered.data.map(label), ['telemetry:CAISO:c1']);

    const ercotOnly = await client.fence({ geozones: ['ERCOT'] });
    t.deepEqual(ercotOnly['geozones'], [], 'the reply shows the key leaves nothing of what it asked');
    hub.publish([telemetry('ERCOT', 'e2'), system('ERCOT', 'more ercot news')]);
    await client.fence({ geozones: ['ERCOT'] });
    t.false(client.data.some((m) => m.geozone === 'ERCOT'));
  });
});

test('every message type reaches the client with exactly the seed\'s field names (plus geozone) and passes the schemas', async (t) => {
  const feed = new ConsoleFeed();
  let offset = 0;
  const record = (actorId: string, kind: string, event: JournalRecord['event'], state: string): JournalRecord => ({ offset: offset++, atMs: T0, actorId, kind, event, state });
  const report = { geohash: '9rn5m4', geozone: 'CAISO', energySource: 'battery', batteryLevel: 0.4, gpuUtilization: 0.3, gpuCount: 4, modelsLoaded: ['llama-3-70b'], reportedAtMs: T0, draining: false };
  const reservation = { requestId: 'req-1', modelId: 'llama-3-70b', contextWindow: 4096, priority: 'normal', requesterGeozone: 'CAISO', triedGeozones: [], receivedAtMs: T0, reservationTtlMs: 30_000, maxAttempts: 3 };
  const job = { jobId: 'job-1', datasetUri: 'globus://edge/ds', datasetSizeGb: 250, estimatedFlops: 5e18, urgency: 'normal', submittedAtMs: T0 };
  const messages = [
    ...feed.fromRecords('CAISO', [
      record('node/CAISO-00004', 'node', { type: 'telemetry', atMs: T0, report }, 'online'),
      record('reservation/req-1', 'reservation', { type: '@spawn', input: reservation }, 'requested'),
      record('reservation/req-1', 'reservation', { type: 'route.reserved', atMs: T0, nodeId: 'CAISO-00004', candidates: 1, reason: 'only one' }, 'reserved'),
      record('reservation/req-1', 'reservation', { type: 'dispatch', atMs: T0 }, 'dispatched'),
      record('reservation/req-1', 'reservation', { type: 'result', atMs: T0, nodeId: 'CAISO-00004', status: 'completed', latencyMs: 840 }, 'completed'),
      record('hpc-job/job-1', 'hpc-job', { type: '@spawn', input: job }, 'pending'),
    ]),
    ...feed.fromEffects('CAISO', [{ type: 'system', atMs: T0, severity: 'warn', message: 'node CAISO-00009 went offline', details: { nodeId: 'CAISO-00009' } }]),
  ];
  t.deepEqual(
    messages.map((m) => m.type),
    ['telemetry', 'inference', 'inference', 'hpc', 'system'],
  );
  await withHub({}, async ({ hub, url }) => {
    const client = await open(url());
    hub.publish(messages);
    await client.fence({});
    const received = client.data;
    t.deepEqual(received, messages, 'JSON on the wire is the message');
    for (const message of received) t.true(consoleMessageSchema.safeParse(message).success, JSON.stringify(message));
    const keys = (value: unknown): string[] => Object.keys(value as object).sort();
    const byType = (type: string): Record<string, unknown> => received.find((m) => m.type === type) as unknown as Record<string, unknown>;
    t.deepEqual(keys(byType('telemetry')), ['geozone', 'node', 'type']);
    t.deepEqual(keys(byType('telemetry')['node']), ['batteryLevel', 'energySource', 'geohash', 'gpuUtilization', 'id', 'modelsLoaded', 'timestamp']);
    t.deepEqual(keys(received[2]), ['geozone', 'latencyMs', 'modelId', 'priority', 'requestId', 'source', 'status', 'targetNodeId', 'timestamp', 'type']);
    t.deepEqual(keys(byType('hpc')), ['bytesTransferred', 'datasetSizeGb', 'geozone', 'jobId', 'progress', 'sourceNodeId', 'status', 'timestamp', 'type']);
    t.deepEqual(keys(byType('system')), ['details', 'geozone', 'message', 'severity', 'timestamp', 'type']);
  });
});

test('a stalled client is disconnected with its queued bytes kept under the bound, while another client keeps receiving everything', async (t) => {
  const maxBufferedBytes = 64 * 1024;
  await withHub({ maxBufferedBytes, slowCloseGraceMs: 200 }, async ({ hub, port, url }) => {
    const stalled = await rawClient(port);
    stalled.pause(); // completes the handshake, then never reads
    const healthy = await open(url());
    await eventually(() => hub.stats().clients === 2, 'both clients connected');

    const filler = 'x'.repeat(1_000);
    let published = 0;
    // Batches small enough for the healthy client, which reads everything before the next one.
    while (hub.stats().disconnectedSlow === 0 && published < 100_000) {
      const batch: ConsoleMessage[] = [];
      for (let i = 0; i < 20; i++) batch.push(system('CAISO', `m${published++}`, { filler }));
      hub.publish(batch);
      await healthy.until(() => healthy.data.length === published);
    }
    const stats = hub.stats();
    t.is(stats.disconnectedSlow, 1, 'the stalled client was cut off');
    t.true(stats.dropped >= 1, 'messages it could not take were dropped and counted');
    t.true(stats.peakBufferedBytes <= maxBufferedBytes, `peak ${stats.peakBufferedBytes} B queued for one client`);

    // The server ends the stalled connection (close, then terminate after the grace).
    stalled.resume();
    stalled.on('data', () => undefined);
    stalled.on('error', () => undefined);
    await once(stalled, 'close');
    await eventually(() => hub.stats().clients === 1, 'the stalled client is gone');

    for (let i = 0; i < 5; i++) hub.publish([system('CAISO', `m${published++}`)]);
    await healthy.until(() => healthy.data.length === published);
    t.deepEqual(
      healthy.data.map((m) => (m.type === 'system' ? m.message : '')),
      Array.from({ length: published }, (_, i) => `m${i}`),
      'the healthy client got every message, in order',
    );
    t.is(healthy.ws.readyState, WebSocket.OPEN);
  });
});

test('a client that never answers pings is terminated by the heartbeat', async (t) => {
  await withHub({ heartbeatMs: 50 }, async ({ hub, port }) => {
    const silent = await rawClient(port); // reads (and ignores) everything, never pongs
    silent.on('data', () => undefined);
    await eventually(() => hub.stats().clients === 1, 'connected');
    await once(silent, 'close');
    await eventually(() => hub.stats().clients === 0, 'the silent client is gone');
    t.pass();
  });
});

test('client frames over maxPayloadBytes close the connection with 1009', async (t) => {
  await withHub({ maxPayloadBytes: 1024 }, async ({ url }) => {
    const client = await open(url());
    client.ws.send(JSON.stringify({ type: 'subscribe', geozones: Array.from({ length: 60 }, (_, i) => `ZONE-${i}-${'X'.repeat(20)}`) }));
    const [code] = (await once(client.ws, 'close')) as [number];
    t.is(code, 1009);
  });
});

test('close() sends every client 1001, resolves once they are gone, and detaches from the server', async (t) => {
  const server = createServer();
  const hub = new ConsoleHub({ authorize });
  hub.attach(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  try {
    const client = await open(`ws://127.0.0.1:${port}/telemetry`);
    const closed = once(client.ws, 'close');
    await hub.close();
    const [code] = (await closed) as [number];
    t.is(code, 1001);
    t.is(hub.stats().clients, 0);
    t.is(server.listenerCount('upgrade'), 0, 'detached from the server');
  } finally {
    server.close();
    server.closeAllConnections();
  }
});

test('attached to a fastify server: /telemetry upgrades, the HTTP routes keep working', async (t) => {
  const app = Fastify();
  app.get('/healthz', () => ({ status: 'ok' }));
  const hub = new ConsoleHub({ authorize });
  hub.attach(app.server);
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  try {
    const client = await open(`${address.replace('http:', 'ws:')}/telemetry?types=system`);
    hub.publish([telemetry('CAISO', 'c1'), system('CAISO', 'over fastify')]);
    await client.fence({ types: ['system'] });
    t.deepEqual(client.data.map(label), ['system:CAISO:over fastify']);
    t.is((await fetch(`${address}/healthz`)).status, 200);
  } finally {
    await hub.close();
    await app.close();
  }
});

test('attached to an https server: wss:// with a real certificate', async (t) => {
  const { dir, cleanup } = tempDir('arcnet-console-tls-');
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    const cert = readFileSync(join(dir, 'cert.pem'));
    const server = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert });
    const hub = new ConsoleHub({ authorize });
    hub.attach(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    try {
      const ws = new WebSocket(`wss://127.0.0.1:${port}/telemetry`, { headers: { 'x-api-key': 'caiso-key' }, ca: cert });
      const client = new Inbox(ws);
      await once(ws, 'open');
      await client.until(() => client.received.some((m) => m['type'] === 'subscribed'));
      hub.publish([system('ERCOT', 'hidden'), system('CAISO', 'over TLS')]);
      await client.fence({});
      t.deepEqual(client.data.map(label), ['system:CAISO:over TLS']);
      const untrusted = new WebSocket(`wss://127.0.0.1:${port}/telemetry`, { headers: { 'x-api-key': 'all-key' } });
      const [error] = (await once(untrusted, 'error')) as [Error & { code?: string }];
      t.regex(error.code ?? error.message, /SELF_SIGNED|CERT/, 'a client that does not trust the certificate is not let in');
    } finally {
      await hub.close();
      server.close();
      server.closeAllConnections();
    }
  } finally {
    cleanup();
  }
});
