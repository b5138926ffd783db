import test, { type ExecutionContext } from 'ava';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import WebSocket from 'ws';
import { tempDir } from '../helpers/fixtures.js';
import { brokers, kafkaTest } from '../helpers/kafka-broker.js';
import { createKeyWithCli, startLiveRegion, type LiveRegion } from '../helpers/live-region.js';

/**
 * A real node agent's path through `arcnet region`, on either journal: it
 * connects to /v1/agent with an agent key, reports telemetry, receives the
 * dispatch of a request routed to its node (again after a reconnect, until it
 * acknowledges it; again after the region restarts), and its result completes
 * the reservation.
 */
interface Agent {
  readonly socket: WebSocket;
  readonly received: Record<string, unknown>[];
  next(type: string, match?: (m: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  send(message: Record<string, unknown>): void;
  close(): Promise<void>;
}

async function connectAgent(origin: string, key: string, nodeId: string): Promise<Agent> {
  const socket = new WebSocket(`${origin.replace(/^http/, 'ws')}/v1/agent`, { headers: { authorization: `Bearer ${key}` } });
  const received: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  socket.on('message', (data: Buffer) => {
    received.push(JSON.parse(data.toString()) as Record<string, unknown>);
    for (const wake of waiters.splice(0)) wake();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  socket.send(JSON.stringify({ type: 'hello', 'node-id': nodeId }));
  let seen = 0;
  const agent: Agent = {
    socket,
    received,
    async next(type, match = () => true) {
      const deadline = Date.now() + 60_000;
      for (;;) {
        for (; seen < received.length; seen++) {
          const message = received[seen] as Record<string, unknown>;
          if (message['type'] === type && match(message)) {
            seen++;
            return message;
          }
        }
        if (Date.now() > deadline) throw new Error(`no '${type}' message within 60 s; got ${JSON.stringify(received)}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 500);
        });
      }
    },
    send: (message) => socket.send(JSON.stringify(message)),
    close: () =>
      new Promise<void>((resolve) => {
        if (socket.readyState === WebSocket.CLOSED) return resolve();
        socket.once('close', () => resolve());
        socket.close();
      }),
  };
  await agent.next('welcome');
  return agent;
}

async function agentScenario(t: ExecutionContext, journalArgs: (run: string) => string[], geozone: (run: string) => string): Promise<void> {
  t.timeout(240_000, 'agent channel through the region');
  const run = randomUUID().slice(0, 6).toUpperCase().replace(/[^A-Z0-9]/g, 'X');
  const zone = geozone(run);
  const { dir, cleanup } = tempDir();
  const keys = join(dir, 'keys.json');
  const agentKey = createKeyWithCli(keys, 'agent', zone);
  const developer = createKeyWithCli(keys, 'developer', zone);
  const viewer = createKeyWithCli(keys, 'viewer', zone);
  const args = [...journalArgs(run), '--geozones', zone, '--api-keys', keys, '--sim-nodes', '0'];
  let region: LiveRegion | undefined = await startLiveRegion(args);
  const agents: Agent[] = [];
  const ready = async (r: LiveRegion): Promise<void> => {
    const deadline = Date.now() + 120_000;
    while ((await fetch(`${r.origin}/readyz`)).status !== 200) {
      if (Date.now() > deadline) throw new Error(`not ready:\n${r.stderr()}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  };
  try {
    await ready(region);
    const nodeId = `agent-node-${run}`;
    let agent = await connectAgent(region.origin, agentKey, nodeId);
    agents.push(agent);
    agent.send({
      type: 'telemetry',
      id: 1,
      'node-id': nodeId,
      geozone: zone,
      geohash: '9q9hvu',
      'energy-source': 'cogen',
      'battery-level': 0.9,
      'gpu-utilization': 0.1,
      'models-loaded': ['llama-3-70b'],
      timestamp: new Date().toISOString(),
    });
    await agent.next('accepted', (m) => m['id'] === 1);

    const reservationsOf = async (id: string): Promise<unknown> => {
      const response = await fetch(`${region?.origin}/v1/nodes/${id}`, { headers: { authorization: `Bearer ${viewer}` } });
      return ((await response.json()) as { reservations: unknown }).reservations;
    };
    const infer = async (requestId: string): Promise<Record<string, unknown>> => {
      const response = await fetch(`${region?.origin}/v1/inference`, {
        method: 'POST',
        headers: { authorization: `Bearer ${developer}`, 'content-type': 'application/json' },
        body: JSON.stringify({ 'request-id': requestId, 'model-id': 'llama-3-70b', 'context-window': 4096, priority: 'normal', 'requester-geozone': zone }),
      });
      t.is(response.status, 202);
      return (await response.json()) as Record<string, unknown>;
    };
    const first = `req-${run}-1`;
    t.is((await infer(first))['node-id'], nodeId);
    const dispatch = await agent.next('dispatch', (m) => m['request-id'] === first);
    t.is(dispatch['node-id'], nodeId);
    t.is(dispatch['model-id'], 'llama-3-70b');

    // Not acknowledged: a reconnect gets it again.
    await agent.close();
    agent = await connectAgent(region.origin, agentKey, nodeId);
    agents.push(agent);
    await agent.next('dispatch', (m) => m['request-id'] === first);
    agent.send({ type: 'ack', 'request-id': first });
    await agent.next('acked');
    // Acknowledged: the next reconnect does not get it.
    await agent.close();
    agent = await connectAgent(region.origin, agentKey, nodeId);
    agents.push(agent);
    agent.send({ type: 'result', id: 2, 'request-id': first, 'node-id': nodeId, 'latency-ms': 120, status: 'completed' });
    await agent.next('accepted', (m) => m['id'] === 2);
    t.false(agent.received.some((m) => m['type'] === 'dispatch' && m['request-id'] === first), 'an acknowledged dispatch is not sent again');
    t.deepEqual(await reservationsOf(nodeId), [], 'the result ended the reservation');

    // A dispatch outstanding when the region stops is offered again by the restarted region.
    const second = `req-${run}-2`;
    t.is((await infer(second))['node-id'], nodeId);
    await agent.next('dispatch', (m) => m['request-id'] === second);
    await agent.close();
    await region.stop();
    region = await startLiveRegion(args);
    await ready(region);
    agent = await connectAgent(region.origin, agentKey, nodeId);
    agents.push(agent);
    await agent.next('dispatch', (m) => m['request-id'] === second);
    agent.send({ type: 'result', id: 3, 'request-id': second, 'node-id': nodeId, 'latency-ms': 80, status: 'completed' });
    await agent.next('accepted', (m) => m['id'] === 3);
    t.deepEqual(await reservationsOf(nodeId), [], 'the result ended the reservation after the restart');
    const line = await region.stop();
    region = undefined;
    t.true(Number(line['completed']) >= 1, 'the second request completed after the restart');
  } finally {
    for (const agent of agents) agent.socket.terminate();
    region?.child.kill('SIGKILL');
    cleanup();
  }
}

test('agent channel (LMDB region): telemetry in, the dispatch out at least once across reconnects and a restart, the result completes it', async (t) => {
  const { dir, cleanup } = tempDir();
  try {
    await agentScenario(
      t,
      () => ['--data', join(dir, 'data')],
      () => 'CAISO',
    );
  } finally {
    cleanup();
  }
});

kafkaTest('agent channel (Kafka region): the same path with the journal in Kafka', async (t) => {
  await agentScenario(
    t,
    (run) => ['--kafka', brokers.join(','), '--group', `agents-${run}`],
    (run) => `AG${run}`,
  );
});
