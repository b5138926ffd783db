import type { ExecutionContext } from 'ava';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { IHeaders, Kafka, Producer } from 'kafkajs';
import { parseWire, type WireKind } from '../../actors/wire.js';
import { systemEventSchema } from '../../actors/wire-out.js';
import { deadLetterHeaders } from '../../adapters/kafka/dead-letter.js';
import { startGeozoneConsumer, type GeozoneConsumer, type GeozoneMessage } from '../../adapters/kafka/geozone-consumer.js';
import { inputSchemas, SCHEMA_HEADER, TRIED_HEADER } from '../../adapters/kafka/input-decoder.js';
import { ensureTopics, geozonePartition, geozonePartitioner, topicNames, topicSpecs } from '../../adapters/kafka/topics.js';
import { kafkaTest, testKafka } from '../helpers/kafka-broker.js';

/**
 * The dead-letter path of the consumer the Kafka region runs (startGeozoneConsumer),
 * on the real broker: every kind of poison message on every input topic goes to
 * arc.deadletter with its code and a system event, reaches onMessage as an offset
 * without input, and never stops the messages behind it.
 */

const GEOZONES = ['CAISO', 'ERCOT', 'PJM'];
const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const KINDS: readonly WireKind[] = ['telemetry', 'inference', 'result'];

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
const valid = (kind: WireKind, id: string, geozone: string): object => (kind === 'telemetry' ? telemetry(id, geozone) : kind === 'inference' ? request(id, geozone) : result(id));

interface Sent {
  readonly name: string;
  readonly kind: WireKind;
  readonly topic: string;
  readonly key: string;
  readonly value: string | null;
  readonly headers: Record<string, string>;
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

interface Outgoing {
  readonly name: string;
  readonly kind: WireKind;
  readonly key: string;
  readonly value: string | null;
  readonly headers?: Record<string, string>;
  /** Sent to this partition explicitly, whatever the key. */
  readonly partition?: number;
  readonly code?: string;
}

async function send(producer: Producer, names: ReturnType<typeof topicNames>, sent: Sent[], m: Outgoing): Promise<void> {
  const topic = names[m.kind];
  const headers: IHeaders = { ...m.headers };
  const [meta] = await producer.send({ topic, acks: -1, messages: [{ key: m.key, value: m.value, headers, ...(m.partition === undefined ? {} : { partition: m.partition }) }] });
  if (meta === undefined || meta.baseOffset === undefined) throw new Error(`no offset for ${m.name}`);
  sent.push({ ...m, topic, headers: m.headers ?? {}, partition: meta.partition, offset: meta.baseOffset });
}

async function withTopics(t: ExecutionContext, fn: (ctx: { kafka: Kafka; run: string; names: ReturnType<typeof topicNames> }) => Promise<void>): Promise<void> {
  const run = randomUUID().slice(0, 8);
  const prefix = `t${run}.`;
  const clientLog: string[] = [];
  const kafka = testKafka(`dead-letter-${run}`, clientLog);
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

const key = (m: { topic: string; partition: number }) => `${m.topic}/${m.partition}`;

kafkaTest('startGeozoneConsumer: poison messages of every kind on every input topic go to the dead-letter topic with their code and a system event; their offsets reach onMessage; later messages keep flowing', async (t) => {
  t.timeout(240_000);
  await withTopics(t, async ({ kafka, run, names }) => {
    const received: GeozoneMessage[] = [];
    const assigned: string[][] = [];
    const producer = kafka.producer({ createPartitioner: geozonePartitioner(GEOZONES), idempotent: true, retry: { retries: 5 } });
    let consumer: GeozoneConsumer | undefined;
    try {
      consumer = await startGeozoneConsumer({
        kafka,
        groupId: `dead-letter-${run}`,
        geozones: GEOZONES,
        topics: { telemetry: names.telemetry, inference: names.inference, result: names.result },
        deadLetterTopic: names.deadLetter,
        systemTopic: names.system,
        nowMs: () => T0,
        onAssigned: (geozones) => assigned.push([...geozones]),
        onMessage: (message) => {
          received.push(message);
          return Promise.resolve();
        },
      });
      t.deepEqual(assigned.at(-1), GEOZONES, 'the only member owns every geozone');
      t.true(consumer.status.current.connected, 'connected once joined');
      await producer.connect();

      const sent: Sent[] = [];
      const out = (m: Outgoing) => send(producer, names, sent, m);
      // On each input topic, each geozone's partition: good ones around each kind of poison.
      for (const [k, kind] of KINDS.entries()) {
        const g = GEOZONES[k] as string;
        const other = GEOZONES[(k + 1) % GEOZONES.length] as string;
        await out({ name: `${kind} good 1`, kind, key: g, value: JSON.stringify(valid(kind, `${kind}-g1`, g)) });
        await out({ name: `${kind} malformed JSON`, kind, key: g, value: '{"request-id": "r-x", ', code: 'ARC_ERR_MALFORMED_JSON' });
        await out({ name: `${kind} good 2`, kind, key: other, value: JSON.stringify(valid(kind, `${kind}-g2`, other)) });
        await out({ name: `${kind} oversized`, kind, key: g, value: JSON.stringify({ ...valid(kind, `${kind}-big`, g), pad: 'x'.repeat(17 * 1024) }), code: 'ARC_ERR_PAYLOAD_TOO_LARGE' });
        await out({ name: `${kind} schema-invalid`, kind, key: other, value: JSON.stringify({ ...valid(kind, `${kind}-bad`, other), 'node-id': 42, extra: true }), code: 'ARC_ERR_VALIDATION' });
        await out({
          name: `${kind} unknown version`,
          kind,
          key: g,
          value: JSON.stringify(valid(kind, `${kind}-v9`, g)),
          headers: { [SCHEMA_HEADER]: inputSchemas[kind].replace(/v\d+$/, 'v9') },
          code: 'ARC_ERR_UNSUPPORTED_VERSION',
        });
        await out({ name: `${kind} good 3 (declares its version)`, kind, key: g, value: JSON.stringify(valid(kind, `${kind}-g3`, g)), headers: { [SCHEMA_HEADER]: inputSchemas[kind] } });
      }
      await out({ name: 'tombstone', kind: 'telemetry', key: 'PJM', value: null, code: 'ARC_ERR_VALIDATION' });
      await out({ name: 'not an object', kind: 'result', key: 'PJM', value: '42', code: 'ARC_ERR_VALIDATION' });
      await out({ name: 'bad tried header', kind: 'inference', key: 'ERCOT', value: JSON.stringify(request('fw-bad', 'CAISO')), headers: { [TRIED_HEADER]: '["CAISO"' }, code: 'ARC_ERR_MALFORMED_JSON' });
      await out({ name: 'forward', kind: 'inference', key: 'ERCOT', value: JSON.stringify(request('fw-1', 'CAISO')), headers: { [TRIED_HEADER]: '["CAISO"]' } });
      await out({ name: 'odd key, explicit partition', kind: 'telemetry', key: 'not-a-geozone', partition: 1, value: 'nope', code: 'ARC_ERR_MALFORMED_JSON' });

      const c = consumer.counters;
      const poisons = sent.filter((m) => m.code !== undefined);
      await waitFor('the first batch to be consumed', () => received.length >= sent.length, 90_000);

      // Still consuming after the poison: good messages published now arrive too, on every topic and geozone.
      for (const kind of KINDS) for (const g of GEOZONES) await out({ name: `${kind} ${g} after`, kind, key: g, value: JSON.stringify(valid(kind, `${kind}-after-${g}`, g)) });
      const goods = sent.filter((m) => m.code === undefined);
      await waitFor('the good messages published after the poison ones', () => received.length >= sent.length, 90_000);
      await sleep(500); // anything doubled has time to show
      t.is(c.accepted, goods.length, 'every good message accepted once');
      t.is(c.deadLettered, poisons.length, 'every poison message dead-lettered once');
      t.is(received.length, sent.length, 'every message reached onMessage once');

      // Every offset of every partition reached onMessage, in order: poison ones too (without input), so they are committed with the rest.
      for (const p of new Set(sent.map(key))) {
        t.deepEqual(
          received.filter((r) => key(r) === p).map((r) => r.offset),
          sent.filter((s) => key(s) === p).map((s) => s.offset),
          `offsets in order on ${p}`,
        );
      }
      const at = (m: Sent) => received.find((r) => r.topic === m.topic && r.partition === m.partition && r.offset === m.offset);
      for (const g of goods) {
        const expected = parseWire(g.kind, g.value);
        const input = g.name === 'forward' && expected.type === 'inference' ? { ...expected, triedGeozones: ['CAISO'], targetGeozone: 'ERCOT' } : expected;
        t.deepEqual(at(g)?.input, input, `${g.name} reached onMessage as its input`);
        t.is(at(g)?.geozone, GEOZONES[g.partition], `${g.name}: its partition's geozone`);
      }
      for (const p of poisons) t.is(at(p)?.input, undefined, `${p.name}: offset handed on without input`);

      // Every poison one is on the dead-letter topic: original key, value and headers, reason and origin in headers, on its source partition.
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
        t.is(d.headers[deadLetterHeaders.wireKind], p.kind, `${p.name}: x-wire-kind`);
        t.is(d.headers[deadLetterHeaders.refusedBy], `dead-letter-${run}`, `${p.name}: x-refused-by names the group`);
        t.is(d.headers[deadLetterHeaders.sourceGeozone], GEOZONES[p.partition], `${p.name}: x-source-geozone`);
        for (const [name, value] of Object.entries(p.headers)) t.is(d.headers[name], value, `${p.name}: its own header ${name} kept`);
        t.is(d.key, p.key, `${p.name}: key kept`);
        t.is(d.value === null ? null : d.value.toString('utf8'), p.value, `${p.name}: value kept byte for byte`);
        t.is(d.partition, p.partition, `${p.name}: on its source partition (its geozone's)`);
      }
      t.is(dead.find((d) => d.key === 'not-a-geozone')?.partition, geozonePartition('ERCOT', GEOZONES), 'routed by where it came from, not by its key');
      t.log(dead.map((d) => `${d.headers[deadLetterHeaders.sourceTopic]}@${d.headers[deadLetterHeaders.sourceOffset]} ${d.headers[deadLetterHeaders.code]}: ${d.headers[deadLetterHeaders.message]}`).join('\n'));

      // A SystemEvent v1 per poison message, keyed and partitioned by its geozone.
      const events = await collect(kafka, `system-check-${run}`, [names.system], poisons.length, 60_000);
      t.is(events.length, poisons.length, 'one system event per poison message');
      for (const p of poisons) {
        const e = events.find((x) => {
          const details = systemEventSchema.parse(JSON.parse(x.value?.toString('utf8') ?? 'null')).details;
          return details['topic'] === p.topic && details['offset'] === p.offset && details['partition'] === p.partition;
        });
        if (e === undefined) {
          t.fail(`${p.name}: no system event`);
          continue;
        }
        const geozone = GEOZONES[p.partition] ?? '';
        t.deepEqual(
          JSON.parse(e.value?.toString('utf8') ?? 'null'),
          { severity: 'warn', message: 'poison message', details: { code: p.code ?? '', topic: p.topic, partition: p.partition, offset: p.offset, geozone }, timestamp: new Date(T0).toISOString() },
          `${p.name}: system event`,
        );
        t.like(e, { key: geozone, partition: p.partition, headers: { 'x-schema': 'SystemEvent/v1', 'x-wire-kind': p.kind } }, `${p.name}: system event key, partition and headers`);
      }
    } finally {
      await Promise.allSettled([consumer?.stop(), producer.disconnect()]);
    }
  });
});

kafkaTest('startGeozoneConsumer: an onMessage failure is not a poison message: the message is delivered again, not dead-lettered, and order is kept', async (t) => {
  t.timeout(240_000);
  await withTopics(t, async ({ kafka, run, names }) => {
    const received: string[] = [];
    let failuresLeft = 1;
    const producer = kafka.producer({ createPartitioner: geozonePartitioner(GEOZONES), idempotent: true, retry: { retries: 5 } });
    let consumer: GeozoneConsumer | undefined;
    try {
      consumer = await startGeozoneConsumer({
        kafka,
        groupId: `dead-letter-retry-${run}`,
        geozones: GEOZONES,
        topics: { telemetry: names.telemetry, inference: names.inference, result: names.result },
        deadLetterTopic: names.deadLetter,
        systemTopic: names.system,
        onAssigned: () => undefined,
        onMessage: ({ input }) => {
          if (input?.type !== 'inference') return Promise.resolve();
          if (input.request.requestId === 'r2' && failuresLeft-- > 0) return Promise.reject(new Error('shard overloaded (test)'));
          received.push(input.request.requestId);
          return Promise.resolve();
        },
      });
      await producer.connect();
      for (const id of ['r1', 'r2', 'r3']) {
        await producer.send({ topic: names.inference, acks: -1, messages: [{ key: 'CAISO', value: JSON.stringify(request(id, 'CAISO')) }] });
      }
      await waitFor('r1, r2 and r3', () => received.length >= 3, 120_000);
      t.deepEqual(received, ['r1', 'r2', 'r3'], 'r2 delivered after its failure, before r3');
      t.is(consumer.counters.deadLettered, 0);
      t.is(consumer.counters.accepted, 3);
      t.is(consumer.counters.crashes, 0, 'one failure is retried in place, without a crash');
    } finally {
      await Promise.allSettled([consumer?.stop(), producer.disconnect()]);
    }
  });
});
