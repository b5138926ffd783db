import test from 'ava';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import kafkajs, { Kafka, logLevel, Partitioners } from 'kafkajs';
import { KafkaEdgeStatus, type EdgeStatus } from '../../adapters/kafka/edge-status.js';
import { backoffDelayMs, describeKafkaError, isRetriableKafkaError, retry } from '../../adapters/kafka/retry.js';
import { Prng } from '../../runtime/random.js';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { brokers, kafkaTest } from '../helpers/kafka-broker.js';

// kafkajs is CommonJS; Node's named-export detection misses its error classes: take them off the default export.
const { KafkaJSConnectionError, KafkaJSError, KafkaJSNonRetriableError, KafkaJSNumberOfRetriesExceeded, KafkaJSProtocolError, KafkaJSSASLAuthenticationError } = kafkajs;

/** kafkajs builds its protocol errors from the broker's error table; these are the entries it uses. */
const protocolError = (type: string, retriable: boolean, message: string) => new KafkaJSProtocolError({ type, code: 0, retriable, message } as unknown as string);
const notHosted = () => protocolError('UNKNOWN_TOPIC_OR_PARTITION', true, 'This server does not host this topic-partition');
const retriesExceeded = (cause: Error) => new KafkaJSNumberOfRetriesExceeded(cause, { retryCount: 5, retryTime: 3_200 });
/** kafkajs's type declarations leave out constructor arguments its classes take (a message, a cause). */
const construct = (errorClass: unknown, ...args: unknown[]): Error => new (errorClass as new (...a: unknown[]) => Error)(...args);
const saslFailed = () => construct(KafkaJSSASLAuthenticationError, 'SASL PLAIN authentication failed');

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

// ------------------------------------------------------------------ backoff

test('backoff doubles from the initial delay up to the cap, the same every time without a random source', (t) => {
  const policy = { initialDelayMs: 100, maxDelayMs: 1_000, multiplier: 2 };
  t.deepEqual(
    [1, 2, 3, 4, 5, 6, 50, 10_000].map((n) => backoffDelayMs(n, policy)),
    [100, 200, 400, 800, 1_000, 1_000, 1_000, 1_000],
  );
  t.is(backoffDelayMs(1), 200, 'the default policy starts at 200 ms');
  t.is(backoffDelayMs(100), 10_000, 'and stops at 10 s');
});

test('jitter comes only from the random source given, takes off at most its fraction, and never exceeds the cap', (t) => {
  const policy = { initialDelayMs: 100, maxDelayMs: 1_000, multiplier: 2, jitter: 0.5 };
  t.is(backoffDelayMs(3, policy, () => 0), 400);
  t.is(backoffDelayMs(3, policy, () => 0.5), 300);
  t.is(backoffDelayMs(3, policy, () => 0.999_999), 200);
  t.is(backoffDelayMs(9, policy, () => 0), 1_000);
  // A seeded source: the same seed gives the same delays.
  const delays = (seed: number) => {
    const prng = new Prng(seed);
    return [1, 2, 3, 4, 5, 6, 7].map((n) => backoffDelayMs(n, policy, () => prng.next()));
  };
  t.deepEqual(delays(7), delays(7));
  for (const [i, d] of delays(7).entries()) {
    const full = backoffDelayMs(i + 1, policy);
    t.true(d <= full && d >= full / 2, `attempt ${i + 1}: ${d} within [${full / 2}, ${full}]`);
  }
  t.throws(() => backoffDelayMs(1, { jitter: 2 }), { instanceOf: RangeError });
  t.throws(() => backoffDelayMs(1, { initialDelayMs: 10, maxDelayMs: 5 }), { instanceOf: RangeError });
});

// ------------------------------------------------------------------ retry

test('retry: retriable failures are waited out, each reported with its attempt, error and delay', async (t) => {
  const seen: [number, string, number][] = [];
  let calls = 0;
  const result = await retry(
    (attempt) => {
      calls++;
      t.is(attempt, calls);
      return attempt < 4 ? Promise.reject(notHosted()) : Promise.resolve('served');
    },
    { backoff: { initialDelayMs: 1, maxDelayMs: 4, multiplier: 2 }, onRetry: (attempt, error, delayMs) => seen.push([attempt, (error as Error).message, delayMs]) },
  );
  t.is(result, 'served');
  t.deepEqual(seen, [
    [1, 'This server does not host this topic-partition', 1],
    [2, 'This server does not host this topic-partition', 2],
    [3, 'This server does not host this topic-partition', 4],
  ]);
});

test('retry: a fatal error is thrown at once; maxAttempts gives up with the last error', async (t) => {
  let retried = 0;
  const fatal = new ArcError(ErrorCodes.USAGE, 'bad topic name');
  t.is(await t.throwsAsync(retry(() => Promise.reject(fatal), { onRetry: () => retried++ })), fatal);
  t.is(retried, 0);

  let attempts = 0;
  const last = await t.throwsAsync(
    retry(
      () => {
        attempts++;
        return Promise.reject(new KafkaJSConnectionError(`Connection error ${attempts}`));
      },
      { maxAttempts: 3, backoff: { initialDelayMs: 1, maxDelayMs: 1 } },
    ),
  );
  t.is(attempts, 3);
  t.is(last?.message, 'Connection error 3');
});

test('retry: aborting the signal ends a long wait at once with the signal reason', async (t) => {
  const stop = new AbortController();
  const waiting = retry(() => Promise.reject(notHosted()), { signal: stop.signal, backoff: { initialDelayMs: 600_000, maxDelayMs: 600_000 }, onRetry: () => stop.abort(new Error('region stopping')) });
  const error = await t.throwsAsync(waiting);
  t.is(error?.message, 'region stopping');
  const already = await t.throwsAsync(retry(() => Promise.resolve(1), { signal: stop.signal }));
  t.is(already?.message, 'region stopping', 'an aborted signal starts nothing');
});

// ------------------------------------------------------------------ classification

test('kafkajs errors: broker down, leaders moving and topics not yet served are retriable; configuration, auth and our own errors are fatal', (t) => {
  const retriable: [string, unknown][] = [
    ['does not host this topic-partition', notHosted()],
    ['the same, after kafkajs gave up', retriesExceeded(notHosted())],
    ['wrapped twice', construct(KafkaJSNonRetriableError, retriesExceeded(notHosted()), { cause: retriesExceeded(notHosted()) })],
    ['leader not available', protocolError('LEADER_NOT_AVAILABLE', true, 'There is no leader for this topic-partition')],
    ['not leader', protocolError('NOT_LEADER_FOR_PARTITION', true, 'This server is not the leader for that topic-partition')],
    ['coordinator not available', protocolError('GROUP_COORDINATOR_NOT_AVAILABLE', true, 'The group coordinator is not available')],
    ['connection refused', new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:9', { code: 'ECONNREFUSED' })],
    ['connection refused, retries exceeded', retriesExceeded(new KafkaJSConnectionError('Connection error', { code: 'ECONNREFUSED' }))],
    ['a generic kafkajs error flagged retriable', construct(KafkaJSError, 'Broker not connected', { retriable: true })],
    ['only the message says so', Object.assign(new Error('This server does not host this topic-partition'), { name: 'KafkaJSProtocolError' })],
  ];
  const fatal: [string, unknown][] = [
    ['topic authorization', protocolError('TOPIC_AUTHORIZATION_FAILED', false, 'Not authorized to access topics')],
    ['message too large', protocolError('MESSAGE_TOO_LARGE', false, 'The request included a message larger than the max message size the server will accept')],
    ['SASL', saslFailed()],
    ['TLS certificate', new KafkaJSConnectionError('Connection error: self-signed certificate', { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' })],
    ['our partitioner refusing a key, after kafkajs retried it', retriesExceeded(new ArcError(ErrorCodes.VALIDATION, "keyed by unknown geozone 'MISO'"))],
    ['a bug', new TypeError("Cannot read properties of undefined (reading 'partitions')")],
    ['a plain error from a callback', new Error('shard refused')],
    ['not an error', 'oops'],
  ];
  for (const [what, error] of retriable) t.true(isRetriableKafkaError(error), what);
  for (const [what, error] of fatal) t.false(isRetriableKafkaError(error), what);
});

test('describeKafkaError: the chain of names and the message once, with the protocol type', (t) => {
  t.is(
    describeKafkaError(retriesExceeded(notHosted())),
    'KafkaJSNumberOfRetriesExceeded > KafkaJSProtocolError: This server does not host this topic-partition (UNKNOWN_TOPIC_OR_PARTITION)',
  );
  t.is(describeKafkaError('plain'), 'plain');
});

test('a real connection to a port where no broker listens fails with an error classified retriable', async (t) => {
  const port = await closedPort();
  const kafka = new Kafka({ clientId: 'retry-test', brokers: [`127.0.0.1:${port}`], logLevel: logLevel.NOTHING, connectionTimeout: 1_000, retry: { retries: 1, initialRetryTime: 50 } });
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  const error = await t.throwsAsync(producer.connect());
  t.log(describeKafkaError(error));
  t.true(isRetriableKafkaError(error), describeKafkaError(error));
  t.regex(describeKafkaError(error), /ECONNREFUSED/);
  await producer.disconnect();
});

kafkaTest('a real "does not host this topic-partition" from the broker is classified retriable', async (t) => {
  const kafka = new Kafka({ clientId: 'retry-test', brokers, logLevel: logLevel.NOTHING, retry: { retries: 1, initialRetryTime: 50 } });
  const producer = kafka.producer({ allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner });
  try {
    await producer.connect();
    const error = await t.throwsAsync(producer.send({ topic: `no-such-topic-${randomUUID()}`, messages: [{ value: 'x' }] }));
    t.log(describeKafkaError(error));
    t.regex(describeKafkaError(error), /does not host this topic-partition/);
    t.true(isRetriableKafkaError(error));
  } finally {
    await producer.disconnect();
  }
});

// ------------------------------------------------------------------ status

test('edge status: connected only when every part is; a retry or failure shows with its error; listeners hear each change', (t) => {
  const status = new KafkaEdgeStatus();
  const heard: EdgeStatus[] = [];
  const unsubscribe = status.subscribe((s) => heard.push(s));
  t.false(status.current.connected, 'nothing registered: not connected');
  const consumer = status.part('consumer');
  const effects = status.part('effects');
  consumer.connected();
  t.false(status.current.connected, 'one part still starting');
  effects.connected();
  t.true(status.current.connected);
  consumer.retrying(retriesExceeded(new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:9092', { code: 'ECONNREFUSED' })));
  t.like(status.current, { connected: false, retrying: true, failed: false });
  t.regex(status.current.lastError ?? '', /^consumer: .*ECONNREFUSED/);
  t.is(status.current.parts['consumer']?.failures, 1);
  consumer.connected();
  t.like(status.current, { connected: true, retrying: false });
  t.regex(status.current.lastError ?? '', /ECONNREFUSED/, 'the last error stays on record');
  t.is(status.current.parts['consumer']?.failures, 0);
  effects.failed(saslFailed());
  t.like(status.current, { connected: false, failed: true });
  const count = heard.length;
  effects.failed(saslFailed());
  t.is(heard.length, count + 1, 'a repeated failure is a change (its count grows)');
  consumer.connected();
  t.is(heard.length, count + 1, 'no change, no call');
  unsubscribe();
  effects.stopped();
  t.is(heard.length, count + 1);
});
