import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { MAX_MESSAGES_PER_PRODUCE_CALL, startEffectProducer, type EffectProducer } from '../../adapters/kafka/effect-producer.js';
import { KafkaEdgeStatus } from '../../adapters/kafka/edge-status.js';
import { kafkaClient } from '../../adapters/kafka/kafka-client.js';
import { ensureTopics, topicNames, topicSpecs } from '../../adapters/kafka/topics.js';
import { ArcError } from '../../runtime/errors.js';
import { brokers, kafkaTest, testKafka } from '../helpers/kafka-broker.js';

/**
 * The effect producer on the shared broker, with a retriable failure that needs
 * no broker restart: a batch for a topic that does not exist yet is refused
 * ("does not host this topic-partition") until the topic is made.
 */

const GEOZONES = ['CAISO', 'ERCOT'];
const BACKOFF = { initialDelayMs: 100, maxDelayMs: 500 };

async function until(what: string, timeoutMs: number, condition: () => boolean): Promise<void> {
  for (let waited = 0; !condition(); waited += 50) {
    if (waited >= timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

kafkaTest('effect producer: a batch waiting out a retriable error holds back the later batches of its geozone, not those of others; all arrive once the topic exists', async (t) => {
  t.timeout(180_000);
  const run = randomUUID().slice(0, 8);
  const prefix = `t${run}.`;
  const names = topicNames({ prefix });
  const specs = topicSpecs(GEOZONES, { prefix });
  const late = specs.filter((s) => s.name === names.telemetry);
  const admin = testKafka(`effect-producer-${run}`).admin();
  const status = new KafkaEdgeStatus();
  const retries: string[] = [];
  let producer: EffectProducer | undefined;
  try {
    await admin.connect();
    await ensureTopics(
      admin,
      specs.filter((s) => s.name !== names.telemetry),
    );
    producer = await startEffectProducer(kafkaClient(brokers, `effect-producer-${run}`), GEOZONES, { status, backoff: BACKOFF, onRetry: (attempt, error) => retries.push(`${attempt} ${String(error)}`) });
    t.true(status.current.connected);

    const settled: string[] = [];
    const track = (name: string, sending: Promise<void>) =>
      sending.then(
        () => settled.push(name),
        (error: unknown) => settled.push(`${name} failed: ${String(error)}`),
      );
    const a = track('CAISO 1 (topic missing)', producer.send([{ topic: names.telemetry, key: 'CAISO', value: 'a' }]));
    const b = track('CAISO 2', producer.send([{ topic: names.summary, key: 'CAISO', value: 'b' }]));
    const c = track('ERCOT 1', producer.send([{ topic: names.summary, key: 'ERCOT', value: 'c' }]));
    await c;
    await until('the missing topic to be retried twice', 60_000, () => retries.length >= 2);
    t.deepEqual(settled, ['ERCOT 1'], 'ERCOT goes on; CAISO 2 waits behind CAISO 1');
    t.true(status.current.retrying, 'the wait shows in status');
    t.regex(status.current.lastError ?? '', /does not host this topic-partition/);
    t.is(producer.pending, 2);

    await ensureTopics(admin, late);
    await Promise.all([a, b]);
    t.deepEqual(settled, ['ERCOT 1', 'CAISO 1 (topic missing)', 'CAISO 2'], 'CAISO in the order sent');
    t.true(status.current.connected, 'connected again');
    t.is(producer.pending, 0);
  } finally {
    await producer?.close();
    await admin.deleteTopics({ topics: specs.map((s) => s.name), timeout: 30_000 }).catch(() => undefined);
    await admin.disconnect();
  }
});

kafkaTest('effect producer: beyond maxPendingSends a send is refused at once (ARC_ERR_OVERLOADED); close ends the waiting ones', async (t) => {
  t.timeout(120_000);
  const run = randomUUID().slice(0, 8);
  const missing = `t${run}.never-made`;
  const producer = await startEffectProducer(kafkaClient(brokers, `effect-producer-limit-${run}`), GEOZONES, { backoff: BACKOFF, maxPendingSends: 2 });
  const waiting = [producer.send([{ topic: missing, key: 'CAISO', value: '1' }]), producer.send([{ topic: missing, key: 'ERCOT', value: '2' }])];
  for (const w of waiting) w.catch(() => undefined);
  const refused = await t.throwsAsync(producer.send([{ topic: missing, key: 'CAISO', value: '3' }]), { instanceOf: ArcError });
  t.is(refused.code, 'ARC_ERR_OVERLOADED');
  await producer.close();
  for (const w of waiting) {
    const error = await t.throwsAsync(w, { instanceOf: ArcError });
    t.is(error.code, 'ARC_ERR_EFFECT_DELIVERY', 'closed: not sent');
  }
  const afterClose = await t.throwsAsync(producer.send([{ topic: missing, key: 'CAISO', value: '4' }]), { instanceOf: ArcError });
  t.is(afterClose.code, 'ARC_ERR_EFFECT_DELIVERY');
});

kafkaTest('effect producer: a batch still failing maxSendWaitMs after its send is given up (ARC_ERR_EFFECT_DELIVERY); the next batch of its geozone goes out', async (t) => {
  t.timeout(120_000);
  const run = randomUUID().slice(0, 8);
  const prefix = `t${run}.`;
  const names = topicNames({ prefix });
  const specs = topicSpecs(GEOZONES, { prefix }).filter((s) => s.name === names.summary);
  const admin = testKafka(`effect-producer-deadline-${run}`).admin();
  let producer: EffectProducer | undefined;
  try {
    await admin.connect();
    await ensureTopics(admin, specs);
    producer = await startEffectProducer(kafkaClient(brokers, `effect-producer-deadline-${run}`), GEOZONES, { backoff: BACKOFF, maxSendWaitMs: 1_000 });
    const lost = producer.send([{ topic: `${prefix}never-made`, key: 'CAISO', value: 'lost' }]);
    const next = producer.send([{ topic: names.summary, key: 'CAISO', value: 'next' }]);
    const error = await t.throwsAsync(lost, { instanceOf: ArcError });
    t.is(error.code, 'ARC_ERR_EFFECT_DELIVERY');
    t.regex(error.message, /not acknowledged within 1000 ms.*does not host this topic-partition/);
    await t.notThrowsAsync(next, 'the batch behind it is sent (a gap, not a reordering)');
  } finally {
    await producer?.close();
    await admin.deleteTopics({ topics: specs.map((s) => s.name), timeout: 30_000 }).catch(() => undefined);
    await admin.disconnect();
  }
});

kafkaTest('effect producer: a release larger than one produce call arrives whole, each partition in the order sent, after the batch before it', async (t) => {
  t.timeout(120_000);
  const run = randomUUID().slice(0, 8);
  const prefix = `t${run}.`;
  const names = topicNames({ prefix });
  const specs = topicSpecs(GEOZONES, { prefix }).filter((s) => s.name === names.summary || s.name === names.decision);
  const kafka = testKafka(`effect-producer-chunks-${run}`);
  const admin = kafka.admin();
  const consumer = kafka.consumer({ groupId: `effect-producer-chunks-${run}`, maxWaitTimeInMs: 100 });
  let producer: EffectProducer | undefined;
  try {
    await admin.connect();
    await ensureTopics(admin, specs);
    producer = await startEffectProducer(kafkaClient(brokers, `effect-producer-chunks-${run}`), GEOZONES, { backoff: BACKOFF });
    // Two topics and both geozones interleaved, over three produce calls and a bit.
    const count = 3 * MAX_MESSAGES_PER_PRODUCE_CALL + 10;
    const release = Array.from({ length: count }, (_, i) => ({ topic: i % 3 === 0 ? names.decision : names.summary, key: GEOZONES[i % 2] as string, value: String(i) }));
    const first = producer.send([{ topic: names.summary, key: 'CAISO', value: 'before' }]);
    const big = producer.send(release);
    await Promise.all([first, big]);

    const seen = new Map<string, string[]>();
    await consumer.connect();
    await consumer.subscribe({ topics: specs.map((s) => s.name), fromBeginning: true });
    let total = 0;
    await consumer.run({
      eachMessage: ({ topic, partition, message }) => {
        const key = `${topic}:${partition}:${message.key?.toString() ?? ''}`;
        seen.set(key, [...(seen.get(key) ?? []), message.value?.toString() ?? '']);
        total++;
        return Promise.resolve();
      },
    });
    await until('every message to be read back', 60_000, () => total >= count + 1);
    t.is(total, count + 1, 'nothing lost, nothing doubled');
    for (const [key, values] of seen) {
      const [topic, , geozone] = key.split(':');
      const expected = release.filter((m) => m.topic === topic && m.key === geozone).map((m) => m.value);
      if (topic === names.summary && geozone === 'CAISO') expected.unshift('before');
      t.deepEqual(values, expected, `${key} in the order sent`);
    }
    t.is(seen.size, 4, 'both geozones on both topics');
  } finally {
    await consumer.disconnect().catch(() => undefined);
    await producer?.close();
    await admin.deleteTopics({ topics: specs.map((s) => s.name), timeout: 30_000 }).catch(() => undefined);
    await admin.disconnect();
  }
});
