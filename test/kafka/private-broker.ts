import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/**
 * A Kafka broker of a test's own, to stop and start at will (the shared broker
 * on 9092 is never touched). scripts/kafka/kafka.mjs keeps everything in
 * <checkout>/.kafka, where the shared broker of this checkout may live too, so
 * the script is copied into a temporary checkout root of its own: its .kafka
 * (data, pid file, log) is private, and its libs/ links to the checkout's, which
 * holds the jars once any broker has been started from this checkout (no Maven).
 */

const run = promisify(execFile);
const checkoutRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const libs = join(checkoutRoot, '.kafka', 'libs');

/** Why a private broker cannot be made here, or undefined when it can. */
export function privateBrokerUnavailable(): string | undefined {
  if (!existsSync(join(libs, '.pom-sha256'))) return `no Kafka jars in ${libs} (npm run kafka:start fetches them once)`;
  return undefined;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address();
  await new Promise<void>((done) => server.close(() => done()));
  if (address === null || typeof address === 'string') throw new Error('no free port');
  return address.port;
}

export interface PrivateBroker {
  /** host:port of its plaintext listener (nothing listens there until start()). */
  readonly address: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Stops it and removes its directory. */
  dispose(): Promise<void>;
  /** The script's own lines (start, ready, stop), for a failing test's log. */
  readonly log: string[];
}

export async function privateBroker(): Promise<PrivateBroker> {
  const root = mkdtempSync(join(tmpdir(), 'arcnet-private-broker-'));
  mkdirSync(join(root, 'scripts', 'kafka'), { recursive: true });
  for (const file of ['kafka.mjs', 'pom.xml']) copyFileSync(join(checkoutRoot, 'scripts', 'kafka', file), join(root, 'scripts', 'kafka', file));
  mkdirSync(join(root, '.kafka'));
  symlinkSync(libs, join(root, '.kafka', 'libs'));
  const [port, controllerPort, tlsPort] = [await freePort(), await freePort(), await freePort()];
  const env = { ...process.env, KAFKA_PORT: String(port), KAFKA_CONTROLLER_PORT: String(controllerPort), KAFKA_TLS_PORT: String(tlsPort) };
  const script = join(root, 'scripts', 'kafka', 'kafka.mjs');
  const log: string[] = [];
  const kafkaMjs = async (command: 'start' | 'stop'): Promise<void> => {
    try {
      const { stderr } = await run(process.execPath, [script, command], { env, timeout: 180_000 });
      log.push(...stderr.trim().split('\n'));
    } catch (error) {
      const { stderr } = error as { stderr?: string };
      log.push(...(stderr ?? String(error)).trim().split('\n'));
      throw new Error(`kafka.mjs ${command} failed:\n${log.slice(-20).join('\n')}`);
    }
  };
  return {
    address: `127.0.0.1:${port}`,
    start: () => kafkaMjs('start'),
    stop: () => kafkaMjs('stop'),
    async dispose() {
      await kafkaMjs('stop').catch(() => undefined);
      rmSync(root, { recursive: true, force: true });
    },
    log,
  };
}
