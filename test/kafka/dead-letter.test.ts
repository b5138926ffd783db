import type { ExecutionContext } from 'ava';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Kafka, Producer } from 'kafkajs';
import type { RegionInput } from '../../actors/region-io.js';
import { parseWire, type WireKind } from '../../actors/wire.js';
import { systemEventSchema } from '../../actors/wire-out.js';
import { ensureTopics, geozonePartitioner, topicNames, topicSpecs } from '../../adapters/kafka/topics.js';
import { deadLetterHeaders, startValidatingConsumer, type MessageSource, type ValidatingConsumer } from '../../adapters/kafka/validating-consumer.js';
import { kafkaTest, testKafka } from '../helpers/kafka-broker.js';

const GEOZONES = ['CAISO', 'ERCOT', 'PJM'];
const T0 = Date.parse('2026-01-01T00:00:00.000Z');

const telemetry = (nodeId: string, geozone: string) => ({
  'node-id': nodeId,
  geozone,
  geohash: '9q9hvu',
  'energy-source': 'grid',
  'battery-level': 0.5,
  'gpu-utilization': 0.25,
  'models-loaded': ['llama-3-70b'],
  timestamp: '2026-01-01T00:00:00Z',
});
const request = (requestId: string, geozone: string) => ({ 'request-id': requestId, 'model-id': 'llama-3-70b', 'context-window': 2048, priority: 'normal', 'requester-geozone': geozone });
const result = (requestId: string) => ({ 'request-id': requestId, 'node-id': 'n-1', 'latency-ms': 42, status: 'completed' });

interface Sent {
  readonly name: string;
  readonly kind: WireKind;
  readonly topic: string;
  readonly key: string;
  readonly value: string | null;
  readonly partition: number;
  readonly offset: string;
  /** For a poison message: the error code its dead letter must carry. */
  readonly code?: string;
}

interface Collected {
  readonly topic: string;
  readonly partition: number;
  readonly key: string | null;
  readonly value: Buffer | null;
  readonly headers: Record<string, string>;
}

function makeKafka(run: string, clientLog: string[]): Kafka {
  return testKafka(`dead-letter-${run}`, clientLog);
}

async function waitFor(what: string, condition: () => boolean, timeoutMs: number): Promise<void> {
  for (let waited = 0; !condition(); waited += 100) {
    if (waited >= timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

/** Reads `count` messages from the topics with a fresh group, from the beginning. */
async function collect(kafka: Kafka, groupId: string, topics: string[], count: number, timeoutMs: number): Promise<Collected[]> {
  const got: Collected[] = [];
  const consumer = kafka.consumer({ groupId, sessionTimeout: 30_000, rebalanceTimeout: 60_000 });
  try {
    await consumer.connect();
    await consumer.subscribe({ topics, fromBeginning: true });
    await consumer.run({
      eachMessage: ({ topic, partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) if (v !== undefined) headers[k] = v.toString();
        got.push({ topic, partition, key: message.key?.toString() ?? null, value: message.value, headers });
        return Promise.resolve();
      },
    });
    await waitFor(`${count} messages on ${topics.join(', ')} (have ${got.length})`, () => got.length >= count, timeoutMs);
    await sleep(500); // anything extra that should not be there
    return got;
  } finally {
    await consumer.disconnect();
  }
}

async function send(producer: Producer, sent: Sent[], m: Omit<Sent, 'partition' | 'offset'>): Promise<void> {
  const [meta] = await producer.send({ topic: m.topic, acks: -1, messages: [{ key: m.key, value: m.value }] });
  if (meta === undefined || meta.baseOffset === undefined) throw new Error(`no offset for ${m.name}`);
  sent.push({ ...m, partition: meta.partition, offset: meta.baseOffset });
}

async function withTopics(t: ExecutionContext, fn: (ctx: { kafka: Kafka; run: string; names: ReturnType<typeof topicNames> }) => Promise<void>): Promise<void> {
  const run = randomUUID().slice(0, 8);
  const prefix = `t${run}.`;
  const clientLog: string[] = [];
  const kafka = makeKafka(run, clientLog);
  const admin = kafka.admin();
  const specs = topicSpecs(GEOZONES, { prefix });
  try {
    await admin.connect();
    await ensureTopics(admin, specs);
    await fn({ kafka, run, names: topicNames({ prefix }) });
  } catch (err) {
    t.log(`kafkajs log (last 40 of ${clientLog.length}):\n${clientLog.slice(-40).join('\n')}`);
    throw err;
  } finally {
    try {
      await admin.deleteTopics({ topics: specs.map((s) => s.name), timeout: 30_000 });
    } catch (err) {
      t.log(`could not delete the test topics: ${String(err)}`);
    }
    await admin.disconnect();
  }
}

kafkaTest('poison messages go to the dead-letter topic with their reason and a system event; good ones keep flowing in order', async (t) => {
  t.timeout(240_000);
  await withTopics(t, async ({ kafka, run, names }) => {
    const received: { input: RegionInput; source: MessageSource }[] = [];
    const producer = kafka.producer({ createPartitioner: geozonePartitioner(GEOZONES), idempotent: true, retry: { retries: 5 } });
    let consumer: ValidatingConsumer | undefined;
    try {
      consumer = await startValidatingConsumer({
        kafka,
        groupId: `dead-letter-${run}`,
        topics: { telemetry: names.telemetry, inference: names.inference, result: names.result },
        deadLetterTopic: names.deadLetter,
        systemTopic: names.system,
        fromBeginning: true,
        nowMs: () => T0,
        onInput: (input, source) => {
          received.push({ input, source });
        },
      });
      await producer.connect();

      const sent: Sent[] = [];
      const good = (name: string, kind: WireKind, topic: string, key: string, message: object) =>
        send(producer, sent, { name, kind, topic, key, value: JSON.stringify(message) });
      const poison = (name: string, kind: WireKind, topic: string, key: string, value: string | null, code: string) =>
        send(producer, sent, { name, kind, topic, key, value, code });

      // A mix, interleaved on the same partitions.
      await good('telemetry c1', 'telemetry', names.telemetry, 'CAISO', telemetry('c1', 'CAISO'));
      await good('telemetry e1', 'telemetry', names.telemetry, 'ERCOT', telemetry('e1', 'ERCOT'));
      await poison('bad JSON', 'inference', names.inference, 'PJM', '{"request-id": "r-x", ', 'ARC_ERR_MALFORMED_JSON');
      await good('request p1', 'inference', names.inference, 'PJM', request('p1', 'PJM'));
      await poison('wrong types', 'telemetry', names.telemetry, 'CAISO', JSON.stringify({ ...telemetry('c9', 'CAISO'), 'battery-level': 'full', 'models-loaded': 'llama' }), 'ARC_ERR_VALIDATION');
      await good('telemetry c2', 'telemetry', names.telemetry, 'CAISO', telemetry('c2', 'CAISO'));
      await poison('unknown enum', 'result', names.result, 'ERCOT', JSON.stringify({ ...result('e-r1'), status: 'timeout' }), 'ARC_ERR_VALIDATION');
      await good('result e1', 'result', names.result, 'ERCOT', result('e-r2'));
      await poison('oversized', 'inference', names.inference, 'CAISO', JSON.stringify({ ...request('c-big', 'CAISO'), 'model-id': 'x'.repeat(17 * 1024) }), 'ARC_ERR_PAYLOAD_TOO_LARGE');
      await poison('null value', 'telemetry', names.telemetry, 'PJM', null, 'ARC_ERR_VALIDATION');
      await poison('extra key', 'inference', names.inference, 'ERCOT', JSON.stringify({ ...request('e9', 'ERCOT'), 'node-id': 'pick-me' }), 'ARC_ERR_VALIDATION');
      await poison('not an object', 'result', names.result, 'PJM', '42', 'ARC_ERR_VALIDATION');
      await good('request c1', 'inference', names.inference, 'CAISO', request('c1', 'CAISO'));
      await good('telemetry p1', 'telemetry', names.telemetry, 'PJM', telemetry('p1', 'PJM'));

      const c = consumer.counters;
      const poisons = sent.filter((m) => m.code !== undefined);
      const goodsBefore = sent.filter((m) => m.code === undefined).length;
      await waitFor('the first batch to be consumed', () => c.accepted >= goodsBefore && c.deadLettered >= poisons.length, 90_000);

      // Still consuming after the poison: good messages published now arrive too, on every topic.
      await good('telemetry c3 (after)', 'telemetry', names.telemetry, 'CAISO', telemetry('c3', 'CAISO'));
      await good('request e2 (after)', 'inference', names.inference, 'ERCOT', request('e2', 'ERCOT'));
      await good('result p2 (after)', 'result', names.result, 'PJM', result('p-r2'));
      await good('request p3 (after)', 'inference', names.inference, 'PJM', request('p3', 'PJM'));
      const goods = sent.filter((m) => m.code === undefined);
      await waitFor('the good messages published after the poison ones', () => c.accepted >= goods.length, 90_000);
      t.is(c.accepted, goods.length, 'every good message accepted once');
      t.is(c.deadLettered, poisons.length, 'every poison message dead-lettered once');

      // Every good one reached onInput, as sent, in order per partition.
      const key = (m: { topic: string; partition: number }) => `${m.topic}/${m.partition}`;
      const partitions = new Set(goods.map(key));
      for (const p of partitions) {
        t.deepEqual(
          received.filter((r) => key(r.source) === p).map((r) => r.source.offset),
          goods.filter((g) => key(g) === p).map((g) => g.offset),
          `offsets in order on ${p}`,
        );
      }
      for (const g of goods) {
        const r = received.find((x) => x.source.topic === g.topic && x.source.partition === g.partition && x.source.offset === g.offset);
        t.deepEqual(r?.input, parseWire(g.kind, g.value), `${g.name} reached onInput`);
      }
      t.false(
        received.some((r) => poisons.some((p) => p.topic === r.source.topic && p.partition === r.source.partition && p.offset === r.source.offset)),
        'no poison message reached onInput',
      );

      // Every poison one is on the dead-letter topic: original key and value, reason and origin in headers, its source partition.
      const dead = await collect(kafka, `dead-letter-check-${run}`, [names.deadLetter], poisons.length, 60_000);
      t.is(dead.length, poisons.length, 'one dead letter per poison message');
      for (const p of poisons) {
        const d = dead.find((m) => m.headers[deadLetterHeaders.sourceTopic] === p.topic && m.headers[deadLetterHeaders.sourceOffset] === p.offset && m.headers[deadLetterHeaders.sourcePartition] === String(p.partition));
        if (d === undefined) {
          t.fail(`${p.name}: no dead letter`);
          continue;
        }
        t.is(d.headers[deadLetterHeaders.code], p.code, `${p.name}: x-error-code`);
        t.true((d.headers[deadLetterHeaders.message] ?? '').length > 0, `${p.name}: x-error-message`);
        t.is(d.key, p.key, `${p.name}: key kept`);
        t.is(d.value === null ? null : d.value.toString('utf8'), p.value, `${p.name}: value kept byte for byte`);
        t.is(d.partition, p.partition, `${p.name}: on its source partition (its geozone's)`);
      }
      t.log(poisons.map((p) => `${p.name}: ${dead.find((d) => d.headers[deadLetterHeaders.sourceOffset] === p.offset && d.headers[deadLetterHeaders.sourceTopic] === p.topic && d.partition === p.partition)?.headers[deadLetterHeaders.message] ?? '?'}`).join('\n'));

      // A SystemEvent v1 per poison message.
      const events = await collect(kafka, `system-check-${run}`, [names.system], poisons.length, 60_000);
      t.is(events.length, poisons.length, 'one system event per poison message');
      const parsed = events.map((e) => systemEventSchema.parse(JSON.parse(e.value?.toString('utf8') ?? 'null')));
      for (const p of poisons) {
        const e = parsed.find((x) => x.details['topic'] === p.topic && x.details['offset'] === p.offset && x.details['partition'] === p.partition);
        t.deepEqual(
          e,
          { severity: 'warn', message: 'poison message', details: { code: p.code ?? '', topic: p.topic, partition: p.partition, offset: p.offset }, timestamp: new Date(T0).toISOString() },
          `${p.name}: system event`,
        );
      }
    } finally {
      await Promise.allSettled([consumer?.stop(), producer.disconnect()]);
    }
  });
});

kafkaTest('an onInput failure is not a poison message: the message is retried, not dead-lettered, and order is kept', async (t) => {
  t.timeout(240_000);
  await withTopics(t, async ({ kafka, run, names }) => {
    const received: string[] = [];
    let failuresLeft = 1;
    const producer = kafka.producer({ createPartitioner: geozonePartitioner(GEOZONES), idempotent: true, retry: { retries: 5 } });
    let consumer: ValidatingConsumer | undefined;
    try {
      consumer = await startValidatingConsumer({
        kafka,
        groupId: `dead-letter-retry-${run}`,
        topics: { telemetry: names.telemetry, inference: names.inference, result: names.result },
        deadLetterTopic: names.deadLetter,
        systemTopic: names.system,
        fromBeginning: true,
        onInput: (input) => {
          if (input.type !== 'inference') return;
          if (input.request.requestId === 'r2' && failuresLeft-- > 0) throw new Error('shard overloaded (test)');
          received.push(input.request.requestId);
        },
      });
      await producer.connect();
      for (const id of ['r1', 'r2', 'r3']) {
        await producer.send({ topic: names.inference, acks: -1, messages: [{ key: 'CAISO', value: JSON.stringify(request(id, 'CAISO')) }] });
      }
      const c = consumer.counters;
      await waitFor('r1, r2 and r3', () => received.length >= 3, 120_000);
      t.deepEqual(received, ['r1', 'r2', 'r3'], 'r2 delivered after its failure, before r3');
      t.is(c.deadLettered, 0);
      t.is(c.accepted, 3);
    } finally {
      await Promise.allSettled([consumer?.stop(), producer.disconnect()]);
    }
  });
});
