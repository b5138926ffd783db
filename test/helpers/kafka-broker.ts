import test, { type ExecutionContext } from 'ava';
import { Kafka, logLevel } from 'kafkajs';
import { connect } from 'node:net';

/**
 * Kafka tests run against a real broker: KAFKA_BROKERS (comma-separated), else
 * 127.0.0.1:9092 (`npm run kafka:start`). Without one they are skipped with a
 * notice, except under CI=true, where a missing broker is a failure.
 */
export const brokers = (process.env['KAFKA_BROKERS'] ?? `127.0.0.1:${process.env['KAFKA_PORT'] ?? '9092'}`)
  .split(',')
  .map((b) => b.trim())
  .filter((b) => b.length > 0);

/** Whether something accepts TCP connections at host:port within the time. */
export function probe(address: string, timeoutMs: number): Promise<boolean> {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(colon + 1));
  if (colon < 1 || !Number.isInteger(port)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export const brokerReachable = (await Promise.all(brokers.map((b) => probe(b, 2_000)))).some(Boolean);

/** Registers a test that needs the broker (see above for what happens without one). */
export function kafkaTest(title: string, fn: (t: ExecutionContext) => Promise<void>): void {
  if (brokerReachable) {
    test.serial(title, fn);
  } else if (process.env['CI'] === 'true') {
    test(title, (t) => {
      t.fail(`no Kafka broker reachable at ${brokers.join(',')}; under CI=true that is a failure (.ci/run starts one)`);
    });
  } else {
    console.warn(`kafka test skipped: no broker at ${brokers.join(',')} (npm run kafka:start, or set KAFKA_BROKERS): ${title}`);
    test.skip(`${title} (SKIPPED: no Kafka broker)`, () => undefined);
  }
}

/**
 * A kafkajs client for tests: generous timeouts for a 2-core machine, bounded
 * retries, and its log collected into `clientLog` (kafkajs logs retriable errors
 * at ERROR level; tests print the log only when they fail).
 */
export function testKafka(clientId: string, clientLog?: string[]): Kafka {
  return new Kafka({
    clientId,
    brokers,
    logLevel: clientLog === undefined ? logLevel.NOTHING : logLevel.WARN,
    logCreator: () => (entry) => {
      clientLog?.push(`${entry.label} [${entry.namespace}] ${entry.log.message} ${JSON.stringify({ ...entry.log, message: undefined, timestamp: undefined })}`);
    },
    connectionTimeout: 10_000,
    requestTimeout: 60_000,
    retry: { retries: 10, initialRetryTime: 300, maxRetryTime: 10_000 },
  });
}

/** Deletes a test run's topics; leftovers have unique names and harm no other test. */
export async function deleteTopicsWithPrefix(prefix: string): Promise<void> {
  const admin = testKafka(`cleanup-${prefix}`).admin();
  try {
    await admin.connect();
    const topics = (await admin.listTopics()).filter((name) => name.startsWith(prefix));
    if (topics.length > 0) await admin.deleteTopics({ topics, timeout: 30_000 });
  } catch {
    // best effort
  } finally {
    await admin.disconnect();
  }
}
