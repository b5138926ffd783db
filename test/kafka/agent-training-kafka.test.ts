import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startAgent, type AgentProcess } from '../helpers/agent-process.js';
import { makeCertificates } from '../helpers/certificates.js';
import { tempDir } from '../helpers/fixtures.js';
import { brokers, kafkaTest } from '../helpers/kafka-broker.js';
import { startLiveRegion, type LiveRegion } from '../helpers/live-region.js';

/**
 * `arcnet agent --kafka` in a federated job: the agents take their `train` messages
 * from arc.scheduler.training, read each round's starting weights by hash from the
 * region's blob topic (arc.blobs), train, and produce their updates on
 * arc.result.training, signed with their node certificates, to a Kafka region that
 * requires signed input (--node-ca). The job completes with every update counted.
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

interface Round {
  round: number;
  updates: { 'node-id': string }[];
  accuracy: number | null;
}

kafkaTest('arcnet agent --kafka trains a federated job: train messages from the training topic, weights by hash from the blob topic, signed updates', async (t) => {
  t.timeout(200_000, 'agents training on Kafka');
  const run = randomUUID().slice(0, 6).toUpperCase().replace(/[^A-Z0-9]/g, 'X');
  const zones = [`AT${run}A`, `AT${run}B`];
  const zone = zones[1] as string;
  const { dir, cleanup } = tempDir();
  const certificates = makeCertificates();
  const nodeIds = [1, 2, 3].map((i) => `kt-${run.toLowerCase()}-${i}`);
  const agents: AgentProcess[] = [];
  let region: LiveRegion | undefined;
  try {
    region = await startLiveRegion(['--kafka', brokers.join(','), '--geozones', zones.join(','), '--group', `agent-train-${run}`, '--node-ca', certificates.paths.caCert, '--sim-nodes', '0']);
    const origin = region.origin;
    const diagnostics = (): string => agents.map((a) => `${a.nodeId}: ${a.stderr().slice(-1500)}`).join('\n') + `\nregion: ${region?.stderr().slice(-2000) ?? ''}`;
    await until('the region to be ready', async () => (await fetch(`${origin}/readyz`)).status === 200, 120_000, diagnostics);
    for (const nodeId of nodeIds) {
      const cert = nodeCert(certificates.paths, nodeId, zone, join(dir, nodeId));
      agents.push(
        startAgent(
          nodeId,
          ['--kafka', brokers.join(','), '--kafka-geozones', zones.join(','), '--geozone', zone, '--geohash', '9q9hvu', '--node-cert', cert.certFile, '--node-key', cert.keyFile, '--report-every', '1s', '--nvidia-smi', 'off'],
          { ...process.env, LOG_LEVEL: 'warn' },
        ),
      );
    }
    const known = async (id: string): Promise<boolean> => (await fetch(`${origin}/v1/nodes/${id}`)).status === 200;
    await until('the agents to be known', async () => (await Promise.all(nodeIds.map(known))).every(Boolean), 120_000, diagnostics);

    const jobId = `kt-${run.toLowerCase()}`;
    const posted = await fetch(`${origin}/v1/training`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        'job-id': jobId,
        geozone: zone,
        'model-id': 'digits-softmax',
        'dataset-uri': 'builtin:digits',
        rounds: 3,
        'min-participants': 3,
        participants: 3,
        'round-deadline-ms': 45_000,
        'checkpoint-uri': pathToFileURL(join(dir, 'checkpoints')).href,
        'hyper-parameters': { 'learning-rate': 0.5, 'local-epochs': 3, 'batch-size': 16, seed: 7 },
      }),
    });
    t.is(posted.status, 202, await posted.clone().text());
    let job: { state: string; 'round-history': Round[] } | undefined;
    await until(
      'the job to finish',
      async () => {
        const response = await fetch(`${origin}/v1/training/${jobId}`);
        job = response.status === 200 ? ((await response.json()) as typeof job) : undefined;
        return job !== undefined && job.state !== 'training';
      },
      150_000,
      () => `${JSON.stringify(job)}\n${diagnostics()}`,
    );
    const done = job as { state: string; 'round-history': Round[] };
    t.is(done.state, 'done', JSON.stringify(done));
    t.is(done['round-history'].length, 3);
    for (const round of done['round-history']) t.deepEqual(round.updates.map((u) => u['node-id']).sort(), [...nodeIds].sort(), `round ${round.round} counted every agent`);
    const accuracies = done['round-history'].map((r) => r.accuracy as number);
    t.log('held-out accuracy per round', accuracies);
    t.true((accuracies[2] as number) > (accuracies[0] as number));
    t.true((accuracies[2] as number) > 0.85);

    for (const agent of agents) {
      const { code, line } = await agent.stop();
      t.is(code, 0);
      t.is(line['trainingsRun'], 3, JSON.stringify(line));
      t.is(line['updatesSent'], 3);
      t.is(line['updatesOwed'], 0);
    }
  } finally {
    for (const agent of agents) if (agent.child.exitCode === null) agent.child.kill('SIGKILL');
    if (region !== undefined) await region.stop().catch(() => region?.child.kill('SIGKILL'));
    certificates.cleanup();
    cleanup();
  }
});
