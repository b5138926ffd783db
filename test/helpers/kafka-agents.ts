import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startAgent, type AgentProcess } from './agent-process.js';
import { makeCertificates } from './certificates.js';
import { tempDir } from './fixtures.js';
import { brokers } from './kafka-broker.js';
import { startLiveRegion, type LiveRegion } from './live-region.js';

/**
 * The setup the `arcnet agent --kafka` tests share: a Kafka region that accepts only
 * signed input (--node-ca, no simulated nodes) for two fresh geozones, and agents in
 * the second, each with its own node certificate. Partition 0 of the shared input
 * topics carries every one-geozone test's traffic (a new region group reads it from
 * the start), partition 1 little: hence two geozones and the agents in the second.
 */

/** A short id for this run's geozones, groups and names (upper-case letters and digits). */
export const newRun = (): string => randomUUID().slice(0, 6).toUpperCase().replace(/[^A-Z0-9]/g, 'X');

/**
 * A node certificate (subject O=arcnet-node, OU=<geozone>, CN=<node-id>, as `kafka.mjs node-cert` makes)
 * from a throw-away CA: the agents reach the broker on its loopback listener here, so the CA only has to
 * be the one the region trusts with --node-ca.
 */
export function nodeCert(ca: { caCert: string; caKey: string }, nodeId: string, geozone: string, outDir: string): { certFile: string; keyFile: string } {
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

export const until = async (what: string, check: () => Promise<boolean>, timeoutMs: number, detail: () => string): Promise<void> => {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}\n${detail()}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
};

export interface KafkaAgents {
  readonly zones: readonly string[];
  /** The geozone the agents are in. */
  readonly zone: string;
  /** A temporary folder, removed by close(). */
  readonly dir: string;
  readonly origin: string;
  readonly agents: readonly AgentProcess[];
  /** The node CA the region trusts (--node-ca), to make more node certificates with nodeCert. */
  readonly nodeCa: { readonly caCert: string; readonly caKey: string };
  /** Each agent's certificate and key files (made with nodeCert), by node id. */
  readonly nodeCerts: ReadonlyMap<string, { certFile: string; keyFile: string }>;
  /** The agents' and the region's last stderr, for failure messages. */
  readonly diagnostics: () => string;
  /** Stops the region (its final line); close() then leaves it be. */
  stopRegion(): Promise<Record<string, unknown>>;
  /** Kills what still runs and removes the certificates and the folder. */
  close(): Promise<void>;
}

export interface KafkaAgentsOptions {
  /** Two geozones, `${zonePrefix}A` and `${zonePrefix}B`; the agents are in the second. */
  readonly zonePrefix: string;
  /** The region's consumer group. */
  readonly group: string;
  readonly nodeIds: readonly string[];
  /** Agent flags beside the Kafka, geozone and certificate ones (e.g. --model-server). */
  readonly agentArgs: readonly string[];
}

/** Starts the region, waits until it is ready, then starts one agent per node id. */
export async function startKafkaAgents(options: KafkaAgentsOptions): Promise<KafkaAgents> {
  const zones = [`${options.zonePrefix}A`, `${options.zonePrefix}B`];
  const zone = zones[1] as string;
  const { dir, cleanup } = tempDir();
  const certificates = makeCertificates();
  const agents: AgentProcess[] = [];
  const nodeCerts = new Map<string, { certFile: string; keyFile: string }>();
  let region: LiveRegion | undefined;
  const diagnostics = (): string => agents.map((a) => `${a.nodeId}: ${a.stderr().slice(-1500)}`).join('\n') + `\nregion: ${region?.stderr().slice(-2000) ?? ''}`;
  const close = async (): Promise<void> => {
    for (const agent of agents) if (agent.child.exitCode === null) agent.child.kill('SIGKILL');
    if (region !== undefined) await region.stop().catch(() => region?.child.kill('SIGKILL'));
    certificates.cleanup();
    cleanup();
  };
  try {
    region = await startLiveRegion(['--kafka', brokers.join(','), '--geozones', zones.join(','), '--group', options.group, '--node-ca', certificates.paths.caCert, '--sim-nodes', '0']);
    const origin = region.origin;
    await until('the region to be ready', async () => (await fetch(`${origin}/readyz`)).status === 200, 120_000, diagnostics);
    for (const nodeId of options.nodeIds) {
      const cert = nodeCert(certificates.paths, nodeId, zone, join(dir, nodeId));
      nodeCerts.set(nodeId, cert);
      agents.push(
        startAgent(
          nodeId,
          ['--kafka', brokers.join(','), '--kafka-geozones', zones.join(','), '--geozone', zone, '--geohash', '9q9hvu', '--node-cert', cert.certFile, '--node-key', cert.keyFile, ...options.agentArgs, '--report-every', '1s', '--nvidia-smi', 'off'],
          { ...process.env, LOG_LEVEL: 'warn' },
        ),
      );
    }
    const stopRegion = async (): Promise<Record<string, unknown>> => {
      const running = region;
      if (running === undefined) throw new Error('the region was already stopped');
      const final = await running.stop();
      region = undefined;
      return final;
    };
    return { zones, zone, dir, origin, agents, nodeCa: certificates.paths, nodeCerts, diagnostics, stopRegion, close };
  } catch (error) {
    await close();
    throw error;
  }
}
