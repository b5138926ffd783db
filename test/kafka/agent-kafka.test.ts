import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startAgent, type AgentProcess } from '../helpers/agent-process.js';
import { startCompletionsServer } from '../helpers/completions-server.js';
import { tempDir } from '../helpers/fixtures.js';
import { brokers, kafkaTest } from '../helpers/kafka-broker.js';
import { startLiveRegion, type LiveRegion } from '../helpers/live-region.js';
import { makeCertificates } from '../helpers/certificates.js';

/**
 * `arcnet agent --kafka`: agents that speak Kafka as the seed draws Layer 1 (telemetry
 * and results produced, signed with their node certificates; dispatches consumed from
 * their geozone's topic in groups of their own) against a Kafka region that accepts
 * only signed input (--node-ca). Requests posted to the region run on the agents'
 * model server and end completed, each run once.
 */

/**
 * A node certificate (subject O=arcnet-node, OU=<geozone>, CN=<node-id>, as `kafka.mjs node-cert` makes)
 * from a throw-away CA: the agents reach the broker on its loopback listener here, so the CA only has to
 * be the one the region trusts with --node-ca.
 */
function nodeCert(ca: { caCert: string; caKey: string }, nodeId: string, geozone: string, outDir: string): { certFile: string; keyFile: string } {
  mkdirSync(outDir, { recursive: true });
  const keyFile = join(outDir, 'node-key.pem');
  const csr = join(outDir, 'node.csr');
  const certFile = join(outDir, 'node.pem');
  const ext = join(outDir, 'ext.cnf');
  writeFileSync(ext, 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n');
  execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', csr, '-subj', `/O=arcnet-node/OU=${geozone}/CN=${nodeId}`], { stdio: 'ignore' });
  execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', ca.caCert, '-CAkey', ca.caKey, '-CAcreateserial', '-days', '2', '-out', certFile, '-extfile', ext], { stdio: 'ignore' });
  return { certFile, keyFile };
}

const until = async (what: string, check: () => Promise<boolean>, timeoutMs: number, detail: () => string): Promise<void> => {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}\n${detail()}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
};

kafkaTest('arcnet agent --kafka: signed telemetry makes the nodes known, dispatches from the geozone topic run on the model server, results complete the requests', async (t) => {
  t.timeout(170_000, 'agents on Kafka');
  const run = randomUUID().slice(0, 6).toUpperCase().replace(/[^A-Z0-9]/g, 'X');
  // Two geozones, the agents in the second: partition 0 of the shared input topics carries every
  // one-geozone test's traffic (a new region group reads it from the start), partition 1 little.
  const zones = [`AK${run}A`, `AK${run}B`];
  const zone = zones[1] as string;
  const { dir, cleanup } = tempDir();
  const certificates = makeCertificates();
  const model = `llama-${run.toLowerCase()}`;
  const server = await startCompletionsServer([model], { delayMs: 50 });
  const nodeIds = [1, 2].map((i) => `kafka-node-${run}-${i}`);
  const agents: AgentProcess[] = [];
  let region: LiveRegion | undefined;
  try {
    region = await startLiveRegion(['--kafka', brokers.join(','), '--geozones', zones.join(','), '--group', `agent-kafka-${run}`, '--node-ca', certificates.paths.caCert, '--sim-nodes', '0']);
    const origin = region.origin;
    const diagnostics = (): string => agents.map((a) => `${a.nodeId}: ${a.stderr().slice(-1500)}`).join('\n') + `\nregion: ${region?.stderr().slice(-2000) ?? ''}`;
    await until('the region to be ready', async () => (await fetch(`${origin}/readyz`)).status === 200, 120_000, diagnostics);
    for (const nodeId of nodeIds) {
      const cert = nodeCert(certificates.paths, nodeId, zone, join(dir, nodeId));
      agents.push(
        startAgent(
          nodeId,
          ['--kafka', brokers.join(','), '--kafka-geozones', zones.join(','), '--geozone', zone, '--geohash', '9q9hvu', '--node-cert', cert.certFile, '--node-key', cert.keyFile, '--model-server', server.url, '--report-every', '1s', '--nvidia-smi', 'off'],
          { ...process.env, LOG_LEVEL: 'warn' },
        ),
      );
    }
    const known = async (id: string): Promise<boolean> => {
      const response = await fetch(`${origin}/v1/nodes/${id}`);
      return response.status === 200 && ((await response.json()) as { modelsLoaded: string[] }).modelsLoaded.includes(model);
    };
    await until('the agents\' signed telemetry to make their nodes known', async () => (await Promise.all(nodeIds.map(known))).every(Boolean), 120_000, diagnostics);

    const requests = Array.from({ length: 6 }, (_, i) => `kreq-${run}-${i}`);
    for (const id of requests) {
      const response = await fetch(`${origin}/v1/inference`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ 'request-id': id, 'model-id': model, 'context-window': 2048, priority: 'normal', 'requester-geozone': zone }),
      });
      t.is(response.status, 202, `${id} reserved`);
    }
    const live = async (id: string): Promise<boolean> => (await fetch(`${origin}/v1/reservations/${id}`)).status === 200;
    await until('every request to end', async () => (await Promise.all(requests.map(live))).every((isLive) => !isLive), 120_000, diagnostics);
    t.true(requests.every((id) => server.completions.some((c) => typeof c['prompt'] === 'string' && c['prompt'].includes(id))), 'each request reached the model server');

    const lines: Record<string, unknown>[] = [];
    for (const agent of agents) {
      const stopped = await agent.stop();
      t.is(stopped.code, 0);
      lines.push(stopped.line);
    }
    const total = (field: string): number => lines.reduce((sum, line) => sum + (line[field] as number), 0);
    t.is(total('dispatchesRun'), requests.length, 'each dispatch ran once');
    t.is(total('completed'), requests.length);
    t.is(total('resultsOwed'), 0);
    t.true(total('telemetryAccepted') > 0);
    const final = await region.stop();
    region = undefined;
    t.is(final['completed'], requests.length, `the region saw every request completed: ${JSON.stringify(final)}\n${diagnostics().slice(-3000)}`);
    t.is(final['expired'], 0);
  } finally {
    for (const agent of agents) if (agent.child.exitCode === null) agent.child.kill('SIGKILL');
    if (region !== undefined) await region.stop().catch(() => region?.child.kill('SIGKILL'));
    await server.close();
    certificates.cleanup();
    cleanup();
  }
});
