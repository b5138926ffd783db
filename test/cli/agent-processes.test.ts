import test from 'ava';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import WebSocket from 'ws';
import { freePort, startAgent, type AgentProcess } from '../helpers/agent-process.js';
import { makeCertificates } from '../helpers/certificates.js';
import { startCompletionsServer, type CompletionsServer } from '../helpers/completions-server.js';
import { tempDir } from '../helpers/fixtures.js';
import { arcnetSync, createKeyWithCli, startLiveRegion, type LiveRegion } from '../helpers/live-region.js';

/**
 * Real `arcnet agent` processes against a real `arcnet region` process: telemetry
 * makes the nodes known, requests posted to the region run on the agents' model
 * servers (a small OpenAI-shaped server in the test: no model weights can be
 * downloaded here) and end with the agents' latencies; a failing model server
 * means `failed`; a region killed with -9 mid-traffic and restarted gets every
 * owed result from the reconnected agents, and every request ends exactly once;
 * SIGTERM stops an agent with its JSON line and exit 0.
 */

const until = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 90_000, detail: () => string = () => ''): Promise<void> => {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}\n${detail()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
};

interface InferenceMessage {
  readonly requestId: string;
  readonly targetNodeId: string;
  readonly status: string;
  readonly latencyMs?: number;
}

/** The console feed's inference messages (completed and failed ones carry the node's latency). */
function watchInference(origin: string, key: string): { messages: InferenceMessage[]; close: () => void; opened: Promise<void> } {
  const messages: InferenceMessage[] = [];
  const socket = new WebSocket(`${origin.replace(/^http/, 'ws')}/telemetry?types=inference`, { headers: { authorization: `Bearer ${key}` } });
  socket.on('message', (data: Buffer) => {
    const message = JSON.parse(data.toString()) as InferenceMessage & { type: string };
    if (message.type === 'inference') messages.push(message);
  });
  socket.on('error', () => undefined);
  const opened = new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('unexpected-response', (_request, response) => reject(new Error(`console refused: ${response.statusCode}`)));
  });
  return { messages, close: () => socket.terminate(), opened };
}

test('arcnet agent processes: telemetry, dispatches run on the model server, failures, region kill -9 and restart, SIGTERM', async (t) => {
  t.timeout(170_000, 'agents against a region');
  const run = randomUUID().slice(0, 6).toUpperCase().replace(/[^A-Z0-9]/g, 'X');
  const zone = `AG${run}`;
  const { dir, cleanup } = tempDir();
  const keys = join(dir, 'keys.json');
  const agentKey = createKeyWithCli(keys, 'agent', zone);
  const developer = createKeyWithCli(keys, 'developer', zone);
  const viewer = createKeyWithCli(keys, 'viewer', zone);
  const keyFile = join(dir, 'agent.key');
  writeFileSync(keyFile, `${agentKey}\n`, { mode: 0o600 });
  const model = `llama-${run.toLowerCase()}`;
  const brokenModel = `broken-${run.toLowerCase()}`;
  const good = await startCompletionsServer([model, 'not-offered'], { delayMs: 40 });
  const broken = await startCompletionsServer([brokenModel], { failing: true });
  const servers: CompletionsServer[] = [good, broken];
  const port = await freePort();
  const data = join(dir, 'data');
  const regionArgs = ['--data', data, '--geozones', zone, '--api-keys', keys, '--sim-nodes', '0', '--port', String(port)];
  let region: LiveRegion | undefined = await startLiveRegion(regionArgs);
  const origin = region.origin;
  const agents: AgentProcess[] = [];
  const agentEnv = { ...process.env, ARCNET_AGENT_KEY: agentKey, LOG_LEVEL: 'warn' };
  const common = ['--region', origin, '--geozone', zone, '--geohash', '9q9hvu', '--report-every', '1s', '--reconnect-max', '2s', '--nvidia-smi', 'off'];
  const nodeIds = [1, 2, 3].map((i) => `node-${run}-${i}`);
  const brokenNode = `node-${run}-broken`;
  let watch: ReturnType<typeof watchInference> | undefined;
  try {
    agents.push(startAgent(nodeIds[0] as string, [...common, '--model-server', good.url, '--models', model, '--energy-source', 'cogen'], agentEnv));
    agents.push(startAgent(nodeIds[1] as string, [...common, '--model-server', good.url, '--models', model], agentEnv));
    // One agent takes its key from a file instead of the environment.
    agents.push(startAgent(nodeIds[2] as string, [...common, '--model-server', good.url, '--models', model, '--key-file', keyFile], { ...process.env, LOG_LEVEL: 'warn' }));
    // The site's battery file, re-read before each report.
    const batteryFile = join(dir, 'battery');
    writeFileSync(batteryFile, '0.8\n');
    agents.push(startAgent(brokenNode, [...common, '--model-server', broken.url, '--energy-source', 'battery', '--battery-level', '0.3', '--battery-file', batteryFile], agentEnv));
    const diagnostics = (): string => agents.map((a) => `${a.nodeId}: ${a.stderr().slice(-1500)}`).join('\n') + `\nregion: ${region?.stderr().slice(-2000) ?? ''}`;

    // Telemetry makes every node known, with what its model server serves and it offers.
    const node = async (id: string): Promise<Record<string, unknown> | undefined> => {
      const response = await fetch(`${origin}/v1/nodes/${id}`, { headers: { authorization: `Bearer ${viewer}` } });
      return response.status === 200 ? ((await response.json()) as Record<string, unknown>) : undefined;
    };
    await until('every agent node to be known', async () => (await Promise.all([...nodeIds, brokenNode].map(node))).every((n) => n !== undefined), 90_000, diagnostics);
    for (const id of nodeIds) {
      const known = (await node(id)) as Record<string, unknown>;
      t.deepEqual(known['modelsLoaded'], [model], 'a node advertises the offered models its model server lists');
      t.is(known['geozone'], zone);
      t.is(known['status'], 'online');
    }
    const brokenKnown = (await node(brokenNode)) as Record<string, unknown>;
    t.deepEqual(brokenKnown['modelsLoaded'], [brokenModel], 'without --models, everything the server lists');
    t.is(brokenKnown['energySource'], 'battery');
    t.is(brokenKnown['batteryLevel'], 0.8, 'the battery file wins over --battery-level');
    writeFileSync(batteryFile, JSON.stringify({ 'battery-level': 0.55, 'energy-source': 'grid' }));
    await until('the new battery reading to be reported', async () => (await node(brokenNode))?.['batteryLevel'] === 0.55, 30_000, diagnostics);
    t.is((await node(brokenNode))?.['energySource'], 'grid');

    watch = watchInference(origin, viewer);
    await watch.opened;
    const messages = watch.messages;
    /** Posts a request; resolves with the node it was reserved on. */
    const infer = async (requestId: string, modelId: string): Promise<string> => {
      const response = await fetch(`${origin}/v1/inference`, {
        method: 'POST',
        headers: { authorization: `Bearer ${developer}`, 'content-type': 'application/json' },
        body: JSON.stringify({ 'request-id': requestId, 'model-id': modelId, 'context-window': 4096, priority: 'normal', 'requester-geozone': zone }),
      });
      t.is(response.status, 202, `request ${requestId} is reserved`);
      return ((await response.json()) as { 'node-id': string })['node-id'];
    };
    const ended = (id: string): InferenceMessage | undefined => messages.find((m) => m.requestId === id && (m.status === 'completed' || m.status === 'failed'));

    // Requests run on the agents' model server and end completed, with the agents' latencies.
    const first = Array.from({ length: 9 }, (_, i) => `req-${run}-a${i}`);
    for (const id of first) await infer(id, model);
    await until('the first requests to complete', () => first.every((id) => ended(id) !== undefined), 60_000, diagnostics);
    for (const id of first) {
      const end = ended(id) as InferenceMessage;
      t.is(end.status, 'completed');
      t.true(nodeIds.includes(end.targetNodeId), 'ran on a node with the model');
      t.true((end.latencyMs ?? 0) >= 40, `the latency is the agent's measurement (the model server takes 40 ms), got ${end.latencyMs}`);
    }
    t.true(first.every((id) => good.completions.some((c) => typeof c['prompt'] === 'string' && c['prompt'].includes(id))), 'each request reached the model server');
    t.true(good.completions.every((c) => c['model'] === model), 'with the dispatched model');

    // A model server that fails: the request ends failed, not silent.
    const doomed = [`req-${run}-x0`, `req-${run}-x1`];
    for (const id of doomed) await infer(id, brokenModel);
    await until('the broken model requests to end', () => doomed.every((id) => ended(id) !== undefined), 60_000, diagnostics);
    for (const id of doomed) {
      t.is(ended(id)?.status, 'failed');
      t.is(ended(id)?.targetNodeId, brokenNode);
    }

    // kill -9 of the region while the agents hold dispatches; the agents reconnect to the restarted region and deliver.
    good.delayMs = 2_500;
    const inCrash = Array.from({ length: 6 }, (_, i) => `req-${run}-k${i}`);
    const callsBefore = good.completions.length;
    for (const id of inCrash) await infer(id, model);
    await until('the agents to be running the dispatches', () => good.completions.length - callsBefore >= 3, 60_000, diagnostics);
    watch.close();
    region.child.kill('SIGKILL');
    await new Promise<void>((resolve) => region?.child.once('exit', () => resolve()));
    region = undefined;
    good.delayMs = 40;
    region = await startLiveRegion(regionArgs);
    t.is(region.origin, origin, 'back on the same address');
    const live = async (id: string): Promise<boolean> => (await fetch(`${origin}/v1/reservations/${id}`, { headers: { authorization: `Bearer ${viewer}` } })).status === 200;
    await until('every request of the crash to end', async () => (await Promise.all(inCrash.map(live))).every((isLive) => !isLive), 90_000, diagnostics);

    // SIGTERM while a dispatch is in hand: the agent finishes it, delivers its result, prints its line, exits 0.
    good.delayMs = 1_500;
    const drained = `req-${run}-drain`;
    const callsBeforeDrain = good.completions.length;
    const holderId = await infer(drained, model);
    const holder = agents.find((a) => a.nodeId === holderId) as AgentProcess;
    await until('the holder to call its model server', () => good.completions.length > callsBeforeDrain, 60_000, diagnostics);
    const firstStop = await holder.stop();
    t.is(firstStop.code, 0, 'SIGTERM exits 0');
    t.is(firstStop.line['nodeId'], holderId);
    t.is(firstStop.line['stoppedBy'], 'SIGTERM');
    t.is(firstStop.line['abandonedOnStop'], 0, 'the dispatch in hand was finished, not abandoned');
    for (const field of ['dispatchesRun', 'resultsSent', 'reconnects']) t.is(typeof firstStop.line[field], 'number', `the line has ${field}`);
    t.false(await live(drained), 'its result reached the region before it exited');
    const lines = [firstStop.line];
    for (const agent of agents.filter((a) => a !== holder)) {
      const stopped = await agent.stop();
      t.is(stopped.code, 0, `${agent.nodeId} exits 0`);
      lines.push(stopped.line);
    }
    const total = (field: string): number => lines.reduce((sum, line) => sum + (line[field] as number), 0);
    const requests = first.length + doomed.length + inCrash.length + 1;
    t.is(total('dispatchesRun'), requests, 'every dispatch ran once, on one agent, redeliveries included');
    t.is(total('resultsOwed'), 0, 'no result left owed');
    t.is(total('resultsDropped'), 0);
    t.true(lines.every((line) => (line['reconnects'] as number) >= 1), 'every agent reconnected after the region was killed');
    t.true(total('resultsSent') >= requests, 'every result was accepted (some twice: sent before the crash, again after it)');

    const final = await region.stop();
    region = undefined;
    t.is(final['expired'], 0, 'no reservation waited out its expiry');
    // The journal alone: every request ended exactly once, with the outcome the agents reported.
    const replay = arcnetSync('replay', '--journal', data, '--json');
    t.is(replay.status, 0, replay.stderr);
    const replayed = JSON.parse(replay.stdout) as Record<string, unknown>;
    t.is(replayed['requests'], requests);
    t.is(replayed['completed'], first.length + inCrash.length + 1);
    t.is(replayed['failed'], doomed.length);
    t.is(replayed['expired'], 0);
    t.is(replayed['inFlight'], 0);
    t.is(replayed['invariantViolations'], 0, JSON.stringify(replayed['violationsByRule']));
  } finally {
    watch?.close();
    for (const agent of agents) if (agent.child.exitCode === null) agent.child.kill('SIGKILL');
    if (region !== undefined) region.child.kill('SIGKILL');
    for (const server of servers) await server.close();
    cleanup();
  }
});

/** One HTTPS request with the test CA and client certificate: status and JSON body. */
function httpsJson(url: string, tls: { ca: string; cert: string; key: string }, init: { method?: string; key?: string; body?: unknown } = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const payload = init.body === undefined ? undefined : JSON.stringify(init.body);
    const headers: Record<string, string> = {};
    if (init.key !== undefined) headers['authorization'] = `Bearer ${init.key}`;
    if (payload !== undefined) headers['content-type'] = 'application/json';
    const req = httpsRequest(url, { method: init.method ?? 'GET', headers, ...tls }, (response) => {
      let text = '';
      response.on('data', (chunk: Buffer) => (text += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) }));
    });
    req.once('error', reject);
    req.end(payload);
  });
}

test('arcnet agent over TLS with a client certificate (--ca, --tls-cert, --tls-key); a refused key stops the agent with exit 1', async (t) => {
  t.timeout(150_000, 'agent over TLS');
  const certs = makeCertificates();
  const { dir, cleanup } = tempDir();
  const keys = join(dir, 'keys.json');
  const agentKey = createKeyWithCli(keys, 'agent', 'CAISO');
  const developer = createKeyWithCli(keys, 'developer', 'CAISO');
  const p = certs.paths;
  const tls = { ca: certs.pem.caCert, cert: certs.pem.clientCert, key: certs.pem.clientKey };
  const server = await startCompletionsServer(['tls-model'], { delayMs: 20 });
  const region = await startLiveRegion(['--data', join(dir, 'data'), '--geozones', 'CAISO', '--sim-nodes', '0', '--api-keys', keys, '--tls-cert', p.serverCert, '--tls-key', p.serverKey, '--tls-ca', p.caCert, '--tls-client-auth', 'required']);
  const agents: AgentProcess[] = [];
  try {
    const common = ['--region', region.origin, '--geozone', 'CAISO', '--ca', p.caCert, '--tls-cert', p.clientCert, '--tls-key', p.clientKey, '--nvidia-smi', 'off', '--report-every', '1s'];
    const refused = startAgent('tls-wrong-key', common, { ...process.env, ARCNET_AGENT_KEY: 'arc_notakeynotakeynotakeynotakeynotakeynotake', LOG_LEVEL: 'warn' });
    agents.push(refused);
    const good = startAgent('tls-node', [...common, '--model-server', server.url], { ...process.env, ARCNET_AGENT_KEY: agentKey, LOG_LEVEL: 'warn' });
    agents.push(good);
    const wrong = await refused.finished();
    t.is(wrong.code, 1, 'a refused key is final: exit 1');
    t.is(wrong.line['stoppedBy'], 'ARC_ERR_UNAUTHENTICATED');
    t.regex(refused.stderr(), /refused the agent key/);

    await until('the TLS node to be known', async () => (await httpsJson(`${region.origin}/v1/nodes/tls-node`, tls, { key: developer })).status === 200, 90_000, () => good.stderr());
    const reserved = await httpsJson(`${region.origin}/v1/inference`, tls, {
      method: 'POST',
      key: developer,
      body: { 'request-id': 'tls-r1', 'model-id': 'tls-model', 'context-window': 1024, priority: 'critical', 'requester-geozone': 'CAISO' },
    });
    t.is(reserved.status, 202);
    t.is(reserved.body['node-id'], 'tls-node');
    await until('the request to end', async () => (await httpsJson(`${region.origin}/v1/reservations/tls-r1`, tls, { key: developer })).status === 404, 60_000, () => good.stderr());
    const stopped = await good.stop();
    t.is(stopped.code, 0);
    t.is(stopped.line['completed'], 1);
    t.is(stopped.line['resultsSent'], 1);
    const final = await region.stop();
    t.is(final['completed'], 1);
  } finally {
    for (const agent of agents) if (agent.child.exitCode === null) agent.child.kill('SIGKILL');
    if (region.child.exitCode === null) region.child.kill('SIGKILL');
    await server.close();
    cleanup();
    certs.cleanup();
  }
});
