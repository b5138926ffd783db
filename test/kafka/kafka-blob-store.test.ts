import { randomUUID } from 'node:crypto';
import { KafkaBlobStore } from '../../adapters/kafka/kafka-blob-store.js';
import { sha256Hex } from '../../runtime/blob-store.js';
import { deleteTopicsWithPrefix, kafkaTest, testKafka } from '../helpers/kafka-broker.js';

/**
 * The Kafka region's blob store on the real broker: what one process puts,
 * another finds, whether it started before the put (it reads on after a miss)
 * or after (it reads the compacted topic at start); a message whose key is not
 * the hash of its bytes is never served.
 */
kafkaTest('kafka blob store: blobs put by one process are found by another, before or after it started', async (t) => {
  t.timeout(120_000);
  const prefix = `blobtest-${randomUUID().slice(0, 8)}`;
  const topic = `${prefix}.arc.blobs`;
  const kafka = testKafka(prefix);
  const admin = kafka.admin();
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await admin.connect();
  await producer.connect();
  try {
    const early = new KafkaBlobStore(admin, producer, kafka, `${prefix}-early`, topic);
    await early.start();
    const writer = new KafkaBlobStore(admin, producer, kafka, `${prefix}-writer`, topic);
    await writer.start();
    const bytes = new Uint8Array(3000).map((_, i) => i % 251);
    const sha = await writer.put(bytes);
    t.is(sha, sha256Hex(bytes));
    t.deepEqual(await writer.get(sha), bytes);
    t.deepEqual(await early.get(sha), bytes, 'a store started before the put reads on after a miss');
    // Someone else's message on the topic whose key is not its hash.
    await producer.send({ topic, acks: -1, messages: [{ key: 'f'.repeat(64), value: Buffer.from('not the bytes of that hash') }] });
    const late = new KafkaBlobStore(admin, producer, kafka, `${prefix}-late`, topic);
    await late.start();
    t.deepEqual(await late.get(sha), bytes, 'a store started after the put reads it at start');
    t.false(await late.has('f'.repeat(64)));
    t.is(await late.get('0'.repeat(64)), undefined);
  } finally {
    await producer.disconnect();
    await admin.disconnect();
    await deleteTopicsWithPrefix(prefix);
  }
});
