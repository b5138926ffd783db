import test, { type ExecutionContext } from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../helpers/repo.js';

/**
 * A Kafka broker of a test's own, to stop and start at will (the shared one
 * must never be restarted). scripts/kafka/kafka.mjs keeps everything in
 * <its repository>/.kafka, so it is copied with its pom.xml into a temporary
 * folder that plays the repository: the broker gets its own data, pid file,
 * log and certificates there, on free ports, and can never touch the checkout's
 * broker. The Kafka jars are linked from the checkout's .kafka/libs when a
 * broker was started there before (always so under .ci/run); otherwise the
 * script fetches them with Maven once, into the temporary folder.
 */
export interface OwnBroker {
  /** host:port of the PLAINTEXT listener. */
  readonly address: string;
  /** host:port of the SSL listener (TLS 1.3, client certificate required). */
  readonly tlsAddress: string;
  /** CA, client certificate and key for the SSL listener (made by the script on the first start). */
  readonly tls: { readonly caFile: string; readonly certFile: string; readonly keyFile: string };
  /** Starts the broker (again); resolves once it is ready. */
  start(): Promise<void>;
  /** Stops it (SIGTERM, then SIGKILL after 30 s); resolves once the process is gone. */
  stop(): Promise<void>;
  /** Stops it and removes its folder. */
  destroy(): Promise<void>;
}


const root = repoRoot();
const checkoutLibs = join(root, '.kafka', 'libs');

/** Why no broker of our own can run here, or undefined when one can (the script's own test, minus Maven when the jars are there). */
function unavailableReason(): string | undefined {
  if (existsSync(join(checkoutLibs, '.pom-sha256'))) return undefined;
  const java = spawnSync('java', ['-version'], { encoding: 'utf8' });
  if (java.error !== undefined || java.status !== 0) return 'no java on PATH and no Kafka jars in .kafka/libs';
  const mvn = spawnSync('mvn', ['-v'], { encoding: 'utf8' });
  if (mvn.error !== undefined || mvn.status !== 0) return 'no Kafka jars in .kafka/libs and no Maven to fetch them';
  return undefined;
}

const unavailable = unavailableReason();

/** Why a broker of a test's own cannot run here (undefined when it can). */
export function ownBrokerUnavailable(): string | undefined {
  return unavailable;
}

/** A test that needs a broker of its own: skipped with a notice without Java (a failure under CI=true). */
export function ownBrokerTest(title: string, fn: (t: ExecutionContext) => Promise<void>): void {
  if (unavailable === undefined) test.serial(title, fn);
  else if (process.env['CI'] === 'true') test(title, (t) => t.fail(`cannot start a Kafka broker of its own: ${unavailable}`));
  else {
    console.warn(`kafka test skipped: cannot start a Kafka broker of its own (${unavailable}): ${title}`);
    test.skip(`${title} (SKIPPED: ${unavailable})`, () => undefined);
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function run(script: string, command: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, command], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** Makes the broker's folder and starts it. */
export async function startOwnBroker(): Promise<OwnBroker> {
  const broker = await ownBroker();
  try {
    await broker.start();
  } catch (error) {
    await broker.destroy();
    throw error;
  }
  return broker;
}

/** Makes the broker's folder and picks its ports, without starting it (for a client that must wait for it). */
export async function ownBroker(): Promise<OwnBroker> {
  const home = mkdtempSync(join(tmpdir(), 'arcnet-own-broker-'));
  const scriptDir = join(home, 'scripts', 'kafka');
  mkdirSync(scriptDir, { recursive: true });
  mkdirSync(join(home, '.kafka'));
  copyFileSync(join(root, 'scripts', 'kafka', 'kafka.mjs'), join(scriptDir, 'kafka.mjs'));
  copyFileSync(join(root, 'scripts', 'kafka', 'pom.xml'), join(scriptDir, 'pom.xml'));
  // The process plumbing kafka.mjs imports, at the same place relative to it.
  mkdirSync(join(home, 'scripts', 'lib'));
  copyFileSync(join(root, 'scripts', 'lib', 'daemons.mjs'), join(home, 'scripts', 'lib', 'daemons.mjs'));
  // The script checks the jars against its pom.xml's hash, which the copy shares.
  if (existsSync(join(checkoutLibs, '.pom-sha256'))) symlinkSync(checkoutLibs, join(home, '.kafka', 'libs'), 'dir');
  const [port, controllerPort, tlsPort] = [await freePort(), await freePort(), await freePort()];
  const env = { ...process.env, KAFKA_PORT: String(port), KAFKA_CONTROLLER_PORT: String(controllerPort), KAFKA_TLS_PORT: String(tlsPort), KAFKA_START_TIMEOUT_MS: '120000' };
  const script = join(scriptDir, 'kafka.mjs');
  const tlsDir = join(home, '.kafka', 'tls');
  const broker: OwnBroker = {
    address: `127.0.0.1:${port}`,
    tlsAddress: `127.0.0.1:${tlsPort}`,
    tls: { caFile: join(tlsDir, 'ca.pem'), certFile: join(tlsDir, 'client.pem'), keyFile: join(tlsDir, 'client-key.pem') },
    start: async () => {
      const started = await run(script, 'start', env, 15 * 60_000);
      if (started.status !== 0) throw new Error(`own broker did not start (exit ${started.status}):\n${started.stderr}`);
    },
    stop: async () => {
      const stopped = await run(script, 'stop', env, 60_000);
      if (stopped.status !== 0) throw new Error(`own broker did not stop (exit ${stopped.status}):\n${stopped.stderr}`);
    },
    destroy: async () => {
      await broker.stop().catch(() => undefined);
      rmSync(home, { recursive: true, force: true });
    },
  };
  return broker;
}
