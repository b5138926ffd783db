import test from 'ava';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { limits } from '../../actors/wire.js';
import { dispatchMessageSchema, regionToAgentSchema } from '../../adapters/agent/agent-messages.js';
import type { Refusal, RefusalContext } from '../../adapters/http/access.js';
import { ApiKeyStore, createKey, type Role } from '../../adapters/security/api-keys.js';
import { createKeyGuard, type KeyGuard } from '../../adapters/security/key-guard.js';
import { RateLimiter } from '../../adapters/security/rate-limiter.js';
import { TicketBook } from '../../adapters/security/tickets.js';
import { AgentClient, refusedUpgrade, withAgentRegion } from '../helpers/agent-region.js';
import { telemetryBody } from '../helpers/http-region.js';

/** A telemetry message as an agent sends it on the socket: the seed's NodeTelemetry v2 plus `type`. */
const telemetry = (nodeId: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ type: 'telemetry', ...(JSON.parse(telemetryBody(nodeId, extra)) as Record<string, unknown>) });
const result = (requestId: string, nodeId: string, status = 'completed'): Record<string, unknown> => ({ type: 'result', 'request-id': requestId, 'node-id': nodeId, 'latency-ms': 120, status });

interface Keys {
  readonly guard: KeyGuard;
  readonly key: (name: string) => string;
  readonly refusals: { refusal: Refusal; context: RefusalContext }[];
}

function keys(): Keys {
  const made = new Map<string, string>();
  const stored = [];
  const specs: [string, Role, string[]][] = [
    ['agent-caiso', 'agent', ['CAISO']],
    ['agent-ercot', 'agent', ['ERCOT']],
    ['operator-all', 'operator', ['*']],
    ['viewer-all', 'viewer', ['*']],
  ];
  for (const [name, role, geozones] of specs) {
    const { key, stored: entry } = createKey({ role, geozones, label: name });
    made.set(name, key);
    stored.push(entry);
  }
  const refusals: { refusal: Refusal; context: RefusalContext }[] = [];
  const guard = createKeyGuard({
    keys: new ApiKeyStore(stored),
    limiter: new RateLimiter({ ratePerSec: 1_000, burst: 1_000 }),
    tickets: new TicketBook(),
    nowMs: () => Date.now(),
    onRefused: (refusal, context) => refusals.push({ refusal, context }),
  });
  return { guard, key: (name) => made.get(name) ?? 'arc_unknown', refusals };
}

function allConform(t: { true: (value: boolean, message?: string) => void }, client: AgentClient): void {
  for (const message of client.received) t.true(regionToAgentSchema.safeParse(message).success, `conforms: ${JSON.stringify(message)}`);
}

test('telemetry over the socket creates the node; an inference routed to it arrives as a dispatch; its result completes the reservation', async (t) => {
  await withAgentRegion({}, async ({ region, channel, url, infer, effect }) => {
    const agent = await AgentClient.hello(url(), 'c1');
    t.deepEqual(agent.of('welcome'), [{ type: 'welcome', id: 'm1', 'node-id': 'c1', pending: 0 }]);
    t.deepEqual(await agent.request(telemetry('c1')), { type: 'accepted', id: 'm2', kind: 'telemetry' });
    t.is(region.supervisor.shard('CAISO').snapshotOf('node/c1')?.value, 'online', 'the node exists once the answer came: it is durable');

    const decision = await infer('r1');
    t.is(decision.outcome, 'reserved');
    t.is(decision.nodeId, 'c1');
    await agent.until(() => agent.of('dispatch').length === 1, 'the dispatch');
    const [dispatch] = agent.of('dispatch');
    t.true(dispatchMessageSchema.safeParse(dispatch).success);
    t.deepEqual(dispatch, {
      type: 'dispatch',
      'request-id': 'r1',
      'node-id': 'c1',
      'model-id': 'llama-3-70b',
      'context-window': 4096,
      priority: 'normal',
      'expires-at': new Date(decision.expiresAtMs ?? 0).toISOString(),
    });

    t.deepEqual(await agent.request({ type: 'ack', 'request-id': 'r1' }), { type: 'acked', id: 'm3', 'request-id': 'r1' });
    t.deepEqual(await agent.request(result('r1', 'c1')), { type: 'accepted', id: 'm4', kind: 'result', 'request-id': 'r1' });
    const ended = await effect('ended', (e) => e.requestId === 'r1');
    t.is(ended.outcome, 'completed');
    t.is(ended.nodeId, 'c1');

    t.like(channel.stats(), { connections: 1, connectedAgents: 1, deliveries: 1, redeliveries: 0, acks: 1, accepted: 2, pendingDispatches: 0, refusedMessages: 0 });
    allConform(t, agent);
    await agent.close();
  });
});

test('at least once: a dispatch not acknowledged is sent again when the node reconnects, and not once it was acknowledged; one made while it was away arrives on hello', async (t) => {
  await withAgentRegion({}, async ({ channel, url, infer }) => {
    const first = await AgentClient.hello(url(), 'c2');
    await first.request(telemetry('c2'));
    await infer('r-unacked');
    await first.until(() => first.of('dispatch').length === 1, 'the dispatch');
    await first.close();

    // Reserved while no agent was connected for the node.
    t.is((await infer('r-away')).nodeId, 'c2');
    t.like(channel.stats(), { connectedAgents: 0, pendingDispatches: 2, deliveries: 1 });

    const second = await AgentClient.hello(url(), 'c2');
    t.like(second.of('welcome')[0], { pending: 2 });
    await second.until(() => second.of('dispatch').length === 2, 'both dispatches');
    t.deepEqual(second.of('dispatch').map((d) => d['request-id']), ['r-unacked', 'r-away'], 'oldest first');
    t.like(channel.stats(), { deliveries: 2, redeliveries: 1 });

    await second.request({ type: 'ack', 'request-id': 'r-unacked' });
    // A result counts as an acknowledgement of its dispatch.
    await second.request(result('r-away', 'c2'));
    t.like(channel.stats(), { acks: 2, pendingDispatches: 0 });
    await second.close();

    const third = await AgentClient.hello(url(), 'c2');
    t.like(third.of('welcome')[0], { pending: 0 });
    // Answers leave in order after the welcome: any dispatch would be here by now.
    await third.request(telemetry('c2'));
    t.deepEqual(third.of('dispatch'), []);
    t.like(channel.stats(), { deliveries: 2, redeliveries: 1 });
    await third.close();
  });
});

test('a dispatch whose reservation has expired is not sent again', async (t) => {
  await withAgentRegion({ config: { reservationTtlMs: 1_000 } }, async ({ channel, clock, url, infer, effect }) => {
    const agent = await AgentClient.hello(url(), 'c3');
    await agent.request(telemetry('c3'));
    const decision = await infer('r-expiring');
    await agent.until(() => agent.of('dispatch').length === 1, 'the dispatch');
    await agent.close();

    // The region's clock is past the reservation's expiry (and the region has expired it).
    const ended = await effect('ended', (e) => e.requestId === 'r-expiring');
    t.is(ended.outcome, 'expired');
    while (clock.nowMs() <= (decision.expiresAtMs ?? 0)) await sleep(20);

    const again = await AgentClient.hello(url(), 'c3');
    t.like(again.of('welcome')[0], { pending: 0 });
    await again.request(telemetry('c3'));
    t.deepEqual(again.of('dispatch'), []);
    t.like(channel.stats(), { redeliveries: 0, expiredDispatches: 1, pendingDispatches: 0 });
    await again.close();
  });
});

test('keys: an agent key reaches only its geozone (403 before the upgrade when known, close 1008 after a hello), a viewer key is refused, and each refusal is reported', async (t) => {
  const { guard, key, refusals } = keys();
  await withAgentRegion({ channel: { guard } }, async ({ channel, url }) => {
    // No key, a viewer key: refused before the upgrade.
    t.is((await refusedUpgrade(url())).status, 401);
    const viewer = await refusedUpgrade(url(), key('viewer-all'));
    t.is(viewer.status, 403);
    t.is(viewer.body['code'], 'ARC_ERR_FORBIDDEN');

    // A CAISO node, known to the region; with ?node-id the URL is the hello.
    const c1 = await AgentClient.open(url('?node-id=c1&geozone=CAISO'), key('agent-caiso'));
    await c1.until(() => c1.of('welcome').length === 1, 'the welcome');
    t.like(await c1.request(telemetry('c1')), { type: 'accepted' });

    // ERCOT's key, for CAISO: known before the upgrade from the URL's geozone or the region's knowledge.
    const byGeozone = await refusedUpgrade(url('?geozone=CAISO'), key('agent-ercot'));
    t.is(byGeozone.status, 403);
    t.is(byGeozone.body['code'], 'ARC_ERR_FORBIDDEN');
    t.is((await refusedUpgrade(url('?node-id=c1'), key('agent-ercot'))).status, 403);
    t.is((await refusedUpgrade(url('?node-id=c1&geozone=ERCOT'), key('agent-ercot'))).status, 403, 'the region knows better than the URL');

    // Known only from the hello: the hello is answered with an error and the connection closed 1008.
    for (const hello of [{ 'node-id': 'c1' }, { 'node-id': 'c1', geozone: 'ERCOT' }, { 'node-id': 'new-node', geozone: 'CAISO' }]) {
      const intruder = await AgentClient.open(url(), key('agent-ercot'));
      const answer = await intruder.request({ type: 'hello', ...hello });
      t.like(answer, { type: 'error', code: 'ARC_ERR_FORBIDDEN' });
      const closed = await intruder.whenClosed();
      t.is(closed.code, 1008);
      t.regex(closed.reason, /^ARC_ERR_FORBIDDEN/);
    }
    // A node nobody knows yet: admitted, but its telemetry is checked against the key like any other.
    const unknown = await AgentClient.hello(url(), 'x9', key('agent-ercot'));
    t.like(await unknown.request(telemetry('x9', { geozone: 'CAISO' })), { type: 'error', code: 'ARC_ERR_FORBIDDEN' });
    t.is((await unknown.whenClosed()).code, 1008);

    // A CAISO dispatch never reaches a connection scoped to ERCOT, even for the node it names.
    const ghost = await AgentClient.hello(url(), 'ghost', key('agent-ercot'));
    channel.onDispatch({ 'request-id': 'r-ghost', 'node-id': 'ghost', 'model-id': 'm', 'context-window': 1, priority: 'normal', 'expires-at': new Date(Date.now() + 60_000).toISOString() }, 'CAISO');
    await ghost.request({ type: 'ack', 'request-id': 'nothing' });
    t.deepEqual(ghost.of('dispatch'), []);

    // ERCOT's key for ERCOT's node works.
    const e1 = await AgentClient.hello(url(), 'e1', key('agent-ercot'));
    t.like(await e1.request(telemetry('e1', { geozone: 'ERCOT' })), { type: 'accepted' });

    const reported = refusals.map((r) => [r.refusal.status, r.refusal.code, r.context.path]);
    t.deepEqual(reported, [
      [401, 'ARC_ERR_UNAUTHENTICATED', '/v1/agent'],
      [403, 'ARC_ERR_FORBIDDEN', '/v1/agent'],
      [403, 'ARC_ERR_FORBIDDEN', '/v1/agent'],
      [403, 'ARC_ERR_FORBIDDEN', '/v1/agent'],
      [403, 'ARC_ERR_FORBIDDEN', '/v1/agent'],
      [403, 'ARC_ERR_FORBIDDEN', '/v1/agent'],
      [403, 'ARC_ERR_FORBIDDEN', '/v1/agent'],
      [403, 'ARC_ERR_FORBIDDEN', '/v1/agent'],
      [403, 'ARC_ERR_FORBIDDEN', '/v1/agent'],
    ]);
    t.true(refusals.slice(1).every((r) => typeof r.context.keyId === 'string'), 'a refused valid key is named by its id');
    const reportedText = JSON.stringify(refusals);
    t.false(['agent-ercot', 'viewer-all'].some((name) => reportedText.includes(key(name))), 'never the key itself');
    for (const client of [c1, ghost, e1]) await client.close();
  });
});

test('invalid messages get coded errors, keep the connection, and never reach an actor; protocol errors close it with 1008', async (t) => {
  await withAgentRegion({}, async ({ channel, region, url, actorRecords }) => {
    const agent = await AgentClient.open(url());
    // Before the hello, what cannot be read as a message is answered like any bad message.
    agent.send('{not json');
    await agent.until(() => agent.of('error').length === 1);
    t.like(agent.of('error')[0], { code: 'ARC_ERR_MALFORMED_JSON' });
    t.like(await agent.request({ type: 'hello', 'node-id': 'bad id with spaces' }), { type: 'error', code: 'ARC_ERR_VALIDATION' });
    t.like(await agent.request({ type: 'hello', 'node-id': 'v1' }), { type: 'welcome' });
    const before = actorRecords();

    // Just over the wire limit once `type` and `id` are taken off: refused by the region's own size check.
    const base = Buffer.byteLength(telemetryBody('v1', { 'node-name': '' }));
    const justOver = telemetry('v1', { 'node-name': 'x'.repeat(limits.maxMessageBytes + 10 - base) });
    const refusals: [Record<string, unknown>, string][] = [
      [telemetry('v1', { colour: 'blue' }), 'ARC_ERR_VALIDATION'],
      [telemetry('v1', { 'gpu-utilization': 1.5 }), 'ARC_ERR_VALIDATION'],
      [{ type: 'telemetry' }, 'ARC_ERR_VALIDATION'],
      [justOver, 'ARC_ERR_PAYLOAD_TOO_LARGE'],
      [telemetry('someone-else'), 'ARC_ERR_NODE_MISMATCH'],
      [result('r1', 'v1', 'maybe'), 'ARC_ERR_VALIDATION'],
      [result('r1', 'someone-else'), 'ARC_ERR_NODE_MISMATCH'],
      [{ type: 'ack' }, 'ARC_ERR_VALIDATION'],
      [{ type: 'ack', 'request-id': 'r1', extra: true }, 'ARC_ERR_VALIDATION'],
      [{ type: 'subscribe' }, 'ARC_ERR_VALIDATION'],
    ];
    for (const [message, code] of refusals) {
      const answer = await agent.request(message);
      t.like(answer, { type: 'error', code }, JSON.stringify(message).slice(0, 80));
    }
    // Refused before they are read as JSON, so without the id: far over the limit, binary, an unreadable id.
    const unread: [Buffer | string, string][] = [
      [JSON.stringify(telemetry('v1', { 'node-name': 'x'.repeat(20_000) })), 'ARC_ERR_PAYLOAD_TOO_LARGE'],
      [Buffer.from('{"type":"ack","request-id":"r1"}'), 'ARC_ERR_VALIDATION'],
      [JSON.stringify({ type: 'ack', 'request-id': 'r1', id: { nested: true } }), 'ARC_ERR_VALIDATION'],
    ];
    for (const [frame, code] of unread) {
      const errors = agent.of('error').length;
      agent.ws.send(frame, { binary: Buffer.isBuffer(frame) });
      await agent.until(() => agent.of('error').length === errors + 1, code);
      t.like(agent.of('error').at(-1), { code });
      t.false('id' in (agent.of('error').at(-1) ?? {}));
    }
    t.is(actorRecords(), before, 'nothing reached an actor');
    t.is(region.supervisor.shard('CAISO').snapshotOf('node/someone-else'), undefined);
    t.is(region.supervisor.shard('CAISO').snapshotOf('node/v1'), undefined, 'none of its telemetry was taken');

    // The connection is still there, and a valid message still goes through.
    t.like(await agent.request(telemetry('v1')), { type: 'accepted' });
    t.is(actorRecords(), before + 1);
    t.like(channel.stats(), { refusedMessages: 2 + refusals.length + unread.length, accepted: 1 });
    allConform(t, agent);

    // Protocol errors: a second hello; anything but a hello first.
    t.like(await agent.request({ type: 'hello', 'node-id': 'v2' }), { type: 'error', code: 'ARC_ERR_PROTOCOL' });
    const second = await agent.whenClosed();
    t.is(second.code, 1008);
    t.regex(second.reason, /^ARC_ERR_PROTOCOL/);
    const early = await AgentClient.open(url());
    t.like(await early.request(telemetry('v1')), { type: 'error', code: 'ARC_ERR_PROTOCOL' });
    t.is((await early.whenClosed()).code, 1008);
    // With ?node-id on the URL, the URL was the hello: a hello message is a second one.
    const viaUrl = await AgentClient.open(url('?node-id=u1'));
    await viaUrl.until(() => viaUrl.of('welcome').length === 1, 'the welcome');
    t.like(await viaUrl.request({ type: 'hello', 'node-id': 'u1' }), { type: 'error', code: 'ARC_ERR_PROTOCOL' });
    t.is((await viaUrl.whenClosed()).code, 1008);
    t.is(actorRecords(), before + 1);
  });
});

test('a connection that says no hello in time is closed 1008', async (t) => {
  await withAgentRegion({ channel: { helloTimeoutMs: 200 } }, async ({ url }) => {
    const mute = await AgentClient.open(url());
    const closed = await mute.whenClosed();
    t.is(closed.code, 1008);
    t.regex(closed.reason, /^ARC_ERR_PROTOCOL: no hello/);
    t.like(mute.of('error')[0], { code: 'ARC_ERR_PROTOCOL' });
  });
});

test('a connection that answers no pings is terminated by the heartbeat', async (t) => {
  await withAgentRegion({ channel: { heartbeatMs: 100 } }, async ({ channel, server }) => {
    // Hand-made handshake: reads everything, never answers a ping.
    const port = (server.address() as AddressInfo).port;
    const silent = await rawAgent(port, '/v1/agent?node-id=silent');
    silent.on('data', () => undefined);
    await once(silent, 'close');
    for (let i = 0; i < 500 && channel.stats().connections > 0; i++) await sleep(10);
    t.is(channel.stats().connections, 0);
  });
});

test('a newer connection for the same node replaces the older one (closed 4000) and receives its dispatches', async (t) => {
  await withAgentRegion({}, async ({ channel, url, infer }) => {
    const old = await AgentClient.hello(url(), 'c5');
    await old.request(telemetry('c5'));
    const fresh = await AgentClient.hello(url(), 'c5');
    t.deepEqual(await old.whenClosed(), { code: 4000, reason: 'replaced' });
    await infer('r-fresh');
    await fresh.until(() => fresh.of('dispatch').length === 1, 'the dispatch');
    t.like(channel.stats(), { connections: 1, connectedAgents: 1, replaced: 1 });
    await fresh.close();
  });
});

test('an agent that does not read is cut off with ARC_ERR_SLOW_CONSUMER and 1013; its dispatches wait for its return', async (t) => {
  await withAgentRegion({ channel: { maxBufferedBytes: 16 * 1024, closeGraceMs: 30_000 } }, async ({ channel, clock, url }) => {
    const slow = await AgentClient.hello(url(), 's1');
    slow.ws.pause(); // stops reading its socket
    const expiresAt = new Date(clock.nowMs() + 60_000).toISOString();
    let sent = 0;
    while (channel.stats().disconnectedSlow === 0 && sent < 1_000_000) {
      for (let i = 0; i < 500; i++) {
        channel.onDispatch({ 'request-id': `s-${sent++}`, 'node-id': 's1', 'model-id': 'llama-3-70b', 'context-window': 4096, priority: 'normal', 'expires-at': expiresAt }, 'CAISO');
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    t.is(channel.stats().disconnectedSlow, 1);
    slow.ws.resume();
    t.is((await slow.whenClosed()).code, 1013);
    t.like(slow.received.at(-1), { type: 'error', code: 'ARC_ERR_SLOW_CONSUMER' });

    // At most maxPendingPerNode (64) wait, the newest; the rest were dropped and counted.
    const stats = channel.stats();
    t.is(stats.pendingDispatches, 64);
    t.is(stats.droppedDispatches, sent - 64);
    const back = await AgentClient.hello(url(), 's1');
    t.like(back.of('welcome')[0], { pending: 64 });
    await back.until(() => back.of('dispatch').length === 64, 'the pending dispatches');
    t.is(back.of('dispatch').at(-1)?.['request-id'], `s-${sent - 1}`);
    await back.close();
  });
});

test('beyond maxAgents the next connection gets 503 until one leaves', async (t) => {
  await withAgentRegion({ channel: { maxAgents: 2 } }, async ({ channel, url }) => {
    const a = await AgentClient.hello(url(), 'n1');
    const b = await AgentClient.open(url());
    const third = await refusedUpgrade(url());
    t.is(third.status, 503);
    t.is(third.body['code'], 'ARC_ERR_OVERLOADED');
    await a.close();
    for (let i = 0; i < 500 && channel.stats().connections > 1; i++) await sleep(10);
    const c = await AgentClient.hello(url(), 'n3');
    t.like(channel.stats(), { connections: 2, refusedConnections: 1 });
    await b.close();
    await c.close();
  });
});

test('shares the server with the console feed: each path reaches its endpoint, any other path is answered 404', async (t) => {
  await withAgentRegion({ console: true }, async ({ url }) => {
    const feed = new WebSocket(url('?types=system', '/telemetry'));
    const [first] = (await once(feed, 'message')) as [Buffer];
    t.like(JSON.parse(first.toString('utf8')), { type: 'subscribed' });
    const agent = await AgentClient.hello(url(), 'c7');
    t.like(await agent.request(telemetry('c7')), { type: 'accepted' });
    const elsewhere = await refusedUpgrade(url('', '/v1/agents'));
    t.is(elsewhere.status, 404);
    t.is(elsewhere.body['code'], 'ARC_ERR_NOT_FOUND');
    feed.close();
    await agent.close();
  });
});

test('bad upgrade queries are refused with 400 before the upgrade', async (t) => {
  await withAgentRegion({}, async ({ url }) => {
    const lower = await refusedUpgrade(url('?geozone=caiso'));
    t.is(lower.status, 400);
    t.is(lower.body['code'], 'ARC_ERR_VALIDATION');
    t.is((await refusedUpgrade(url('?node-id=has%20space'))).status, 400);
  });
});

/** A TCP client that completes the WebSocket handshake by hand. */
async function rawAgent(port: number, path: string): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
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
