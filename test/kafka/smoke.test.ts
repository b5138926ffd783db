// Smoke test against a real Kafka broker: admin (create topic, describe its config),
// an idempotent producer, a consumer group, and transactions (commit, abort, read_committed).
//
// Brokers: KAFKA_BROKERS (comma-separated host:port), else 127.0.0.1:9092, started beforehand with
// `npm run kafka:start` (scripts/kafka/kafka.mjs). With no broker reachable the test is skipped,
// except under CI=true, where it fails: CI must start the broker.
import type { ExecutionContext } from 'ava';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { brokers, kafkaTest, testKafka } from '../helpers/kafka-broker.js';
import kafkajs, { Partitioners, type Consumer, type KafkaMessage } from 'kafkajs';

// kafkajs is CommonJS and Node's named-export detection stops before ConfigResourceTypes: take it off the default export.
const { ConfigResourceTypes } = kafkajs;

const where = brokers.join(',');

/** Resolves once `count` messages were consumed, or rejects after timeoutMs. */
async function consumeN(consumer: Consumer, topic: string, count: number, timeoutMs: number): Promise<KafkaMessage[]> {
  const got: KafkaMessage[] = [];
  let release: () => void = () => undefined;
  const enough = new Promise<void>((resolve) => {
    release = resolve;
  });
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachMessage: ({ message }) => {
      got.push(message);
      if (got.length >= count) release();
      return Promise.resolve();
    },
  });
  const timer = new AbortController();
  const timedOut = sleep(timeoutMs, 'timeout' as const, { signal: timer.signal }).catch(() => 'cancelled' as const);
  const outcome = await Promise.race([enough.then(() => 'ok' as const), timedOut]);
  timer.abort();
  if (outcome !== 'ok') throw new Error(`consumed ${got.length} of ${count} messages from ${topic} within ${timeoutMs} ms`);
  return got;
}

async function smoke(t: ExecutionContext): Promise<void> {
  t.timeout(240_000, 'Kafka smoke test');
  const run = randomUUID().slice(0, 8);
  const topic = `smoke-${run}`;
  const txTopic = `smoke-tx-${run}`;
  const retentionMs = '3600000';
  const clientLog: string[] = [];
  const kafka = testKafka(`smoke-${run}`, clientLog);
  const admin = kafka.admin();
  // Bounded retries: the idempotent default (retry forever) would hang the test on a broken broker.
  const producer = kafka.producer({ idempotent: true, createPartitioner: Partitioners.DefaultPartitioner, retry: { retries: 10 } });
  const txProducer = kafka.producer({
    transactionalId: `smoke-tx-${run}`,
    maxInFlightRequests: 1,
    idempotent: true,
    createPartitioner: Partitioners.DefaultPartitioner,
    retry: { retries: 10 },
  });
  const consumer = kafka.consumer({ groupId: `smoke-group-${run}`, sessionTimeout: 30_000, rebalanceTimeout: 60_000 });
  const txConsumer = kafka.consumer({ groupId: `smoke-tx-group-${run}`, readUncommitted: false, sessionTimeout: 30_000, rebalanceTimeout: 60_000 });

  try {
    // Admin: a 3-partition topic with a retention, read back through describeConfigs.
    await admin.connect();
    const created = await admin.createTopics({
      waitForLeaders: true,
      timeout: 60_000,
      topics: [
        { topic, numPartitions: 3, replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: retentionMs }] },
        { topic: txTopic, numPartitions: 1, replicationFactor: 1 },
      ],
    });
    t.true(created, 'createTopics reports the topics as new');
    const described = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['retention.ms'] }],
    });
    const retention = described.resources[0]?.configEntries.find((e) => e.configName === 'retention.ms');
    t.is(retention?.configValue, retentionMs, 'retention.ms as set at creation');
    const meta = await admin.fetchTopicMetadata({ topics: [topic] });
    t.is(meta.topics[0]?.partitions.length, 3);

    // Idempotent producer, acks=all: 100 keyed messages.
    await producer.connect();
    const sent = Array.from({ length: 100 }, (_, i) => ({ key: `key-${i}`, value: `value-${i}` }));
    const results = await producer.send({ topic, acks: -1, messages: sent });
    t.true(results.length > 0 && results.every((r) => r.errorCode === 0), 'every partition acknowledged the batch');

    // A consumer in a fresh group reads all 100 back.
    await consumer.connect();
    const received = await consumeN(consumer, topic, 100, 90_000);
    const pairs = (ms: { key: string; value: string }[]): string[] => ms.map((m) => `${m.key}=${m.value}`).sort();
    t.is(received.length, 100);
    t.deepEqual(pairs(received.map((m) => ({ key: m.key?.toString() ?? '', value: m.value?.toString() ?? '' }))), pairs(sent));

    // Transactions: one aborted, then one committed, both on partition 0 of txTopic. A read_committed
    // consumer must see exactly the committed messages; since the aborted ones come first in the log,
    // any aborted message it wrongly returned would arrive before the committed ones.
    await txProducer.connect();
    const aborted = await txProducer.transaction();
    await aborted.send({ topic: txTopic, acks: -1, messages: [0, 1, 2].map((i) => ({ key: `a${i}`, value: `aborted-${i}`, partition: 0 })) });
    await aborted.abort();
    const committed = await txProducer.transaction();
    await committed.send({ topic: txTopic, acks: -1, messages: [0, 1, 2].map((i) => ({ key: `c${i}`, value: `committed-${i}`, partition: 0 })) });
    await committed.commit();

    // The aborted batch and its marker are in the log. fetchTopicOffsets reports the last stable offset
    // (read_committed), and the commit markers are written after commit() returns, so the committed
    // batch may not be counted yet: only the aborted one is certain.
    const offsets = await admin.fetchTopicOffsets(txTopic);
    const high = Number(offsets.find((o) => o.partition === 0)?.high ?? 0);
    t.true(high >= 4, `high watermark ${high} counts the aborted batch and its marker`);

    await txConsumer.connect();
    const txReceived = await consumeN(txConsumer, txTopic, 3, 90_000);
    await sleep(1_000); // a moment for anything that should not come
    t.deepEqual(
      txReceived.map((m) => m.value?.toString()),
      ['committed-0', 'committed-1', 'committed-2'],
      'read_committed sees only the committed transaction',
    );
  } catch (err) {
    t.log(`kafkajs log (last 60 of ${clientLog.length} entries):\n${clientLog.slice(-60).join('\n')}`);
    throw err;
  } finally {
    const closing = [consumer, txConsumer, producer, txProducer, admin].map((c) => c.disconnect());
    for (const r of await Promise.allSettled(closing)) {
      if (r.status === 'rejected') t.log(`disconnect failed: ${String(r.reason)}`);
    }
    try {
      await admin.connect();
      await admin.deleteTopics({ topics: [topic, txTopic], timeout: 30_000 });
    } catch (err) {
      t.log(`could not delete the test topics: ${String(err)}`);
    } finally {
      await admin.disconnect();
    }
  }
}

kafkaTest(`kafka smoke: admin, idempotent producer, consumer group, transactions (${where})`, smoke);
