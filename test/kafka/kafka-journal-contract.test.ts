// The journal/snapshot contract on the Kafka store, against a real broker
// (test/helpers/kafka-broker.ts: skipped with a notice without one, failed under CI=true).
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { KafkaStore } from '../../adapters/kafka/kafka-store.js';
import { monotonicNowMs } from '../../runtime/clock.js';
import type { JournalRecord } from '../../runtime/journal.js';
import { CONTRACT_SHARDS, journalContract, makeRecords } from '../contract/journal-contract.js';
import { brokers, deleteTopicsWithPrefix, kafkaTest } from '../helpers/kafka-broker.js';

/** Deletes every topic whose name starts with the prefix (best effort: tests leave nothing behind). */

journalContract('kafka', kafkaTest, async () => {
  const prefix = `contract-${randomUUID().slice(0, 8)}-`;
  const open = () => KafkaStore.open({ brokers, shardIds: [...CONTRACT_SHARDS], clientId: `contract-${prefix}`, topicPrefix: prefix });
  let current = await open();
  return {
    store: current,
    reopen: async () => {
      await current.close();
      current = await open();
      return current;
    },
    close: async () => {
      await current.close();
      await deleteTopicsWithPrefix(prefix);
    },
  };
});

// ---------------------------------------------------------------- Kafka-specific behaviour

const openStore = (prefix: string, extra: Partial<Parameters<typeof KafkaStore.open>[0]> = {}) =>
  KafkaStore.open({ brokers, shardIds: ['S'], clientId: `kstore-${prefix}`, topicPrefix: prefix, ...extra });

kafkaTest('kafka store: a reopen reads only the journal after the latest snapshot; fullJournal reads all of it', async (t) => {
  const prefix = `kstore-${randomUUID().slice(0, 8)}-`;
  const stores: KafkaStore[] = [];
  try {
    const a = await openStore(prefix);
    stores.push(a);
    const written = makeRecords(0, 30);
    for (let i = 0; i < 30; i += 5) await a.journal('S').append(written.slice(i, i + 5));
    await a.save({ shardId: 'S', offset: 19, atMs: 0, actors: [], behaviourState: null });
    await a.close();
    const tail = await openStore(prefix);
    stores.push(tail);
    t.is(tail.journal('S').firstReadableOffset(), 20, 'the messages before the snapshot were not read');
    t.deepEqual([...tail.journal('S').read(20)], written.slice(20));
    t.throws(() => [...tail.journal('S').read(0)], { message: /fullJournal/ }, 'reading before the tail says how to get it');
    t.is(tail.journal('S').nextOffset(), 30);
    await tail.close();
    const full = await openStore(prefix, { fullJournal: true });
    stores.push(full);
    t.deepEqual([...full.journal('S').read()], written);
    t.is(full.latest('S')?.offset, 19);
  } finally {
    for (const s of stores) await s.close().catch(() => undefined);
    await deleteTopicsWithPrefix(prefix);
  }
});

kafkaTest('kafka store: an append larger than one message is split into several, committed in one transaction', async (t) => {
  const prefix = `kstore-${randomUUID().slice(0, 8)}-`;
  const stores: KafkaStore[] = [];
  try {
    const a = await openStore(prefix, { maxMessageBytes: 4_000 });
    stores.push(a);
    const written = makeRecords(0, 200);
    await a.journal('S').append(written.slice(0, 150));
    await a.journal('S').append(written.slice(150));
    await a.save({ shardId: 'S', offset: 120, atMs: 0, actors: [], behaviourState: null });
    const admin = new Kafka({ clientId: 'kstore-check', brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    const high = Number((await admin.fetchTopicOffsets(`${prefix}arc.journal.S`))[0]?.high);
    await admin.disconnect();
    t.true(high > 2 + 2, `more messages than appends (log end ${high})`);
    await a.close();
    const b = await openStore(prefix);
    stores.push(b);
    t.deepEqual([...b.journal('S').read(121)], written.slice(121));
    t.true(b.journal('S').firstReadableOffset() > 0 && b.journal('S').firstReadableOffset() <= 121, 'the tail starts at the chunk holding offset 121');
    await t.throwsAsync(() => b.journal('S').append(makeRecords(200, 1, 'x').map((r) => ({ ...r, event: { type: 'big', blob: 'x'.repeat(1_000_000) } }))), {
      message: /more than a journal message may hold/,
    });
    t.is(b.journal('S').nextOffset(), 200);
  } finally {
    for (const s of stores) await s.close().catch(() => undefined);
    await deleteTopicsWithPrefix(prefix);
  }
});

kafkaTest('kafka store: appendWithOffsets commits consumer offsets with the records, and not without them', async (t) => {
  const prefix = `kstore-${randomUUID().slice(0, 8)}-`;
  const groupId = `${prefix}region`;
  const input = `${prefix}input`;
  const kafka = new Kafka({ clientId: 'kstore-offsets', brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  const stores: KafkaStore[] = [];
  try {
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: input, numPartitions: 2, replicationFactor: 1 }], waitForLeaders: true });
    const a = await openStore(prefix);
    stores.push(a);
    const journal = a.journal('S');
    const offsetsOf = async (): Promise<Record<number, string>> => {
      const [topic] = await admin.fetchOffsets({ groupId, topics: [input] });
      return Object.fromEntries((topic?.partitions ?? []).map((p) => [p.partition, p.offset]));
    };
    // Offsets sent in a transaction become visible once its commit markers are written, which the
    // broker does after commit() returns: read them until they show (or 15 s pass).
    const settledOffsets = async (expected: Record<number, string>): Promise<Record<number, string>> => {
      let seen = await offsetsOf();
      for (const started = Date.now(); JSON.stringify(seen) !== JSON.stringify(expected) && Date.now() - started < 15_000; ) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        seen = await offsetsOf();
      }
      return seen;
    };
    const at = (p0: string, p1: string) => ({ groupId, topics: [{ topic: input, partitions: [{ partition: 0, offset: p0 }, { partition: 1, offset: p1 }] }] });
    await journal.appendWithOffsets(makeRecords(0, 3), at('5', '7'));
    t.deepEqual(await settledOffsets({ 0: '5', 1: '7' }), { 0: '5', 1: '7' });
    await t.throwsAsync(() => journal.appendWithOffsets(makeRecords(9, 1), at('6', '8')), { message: /expects 3/ });
    t.deepEqual(await offsetsOf(), { 0: '5', 1: '7' }, 'a rejected append commits no offsets');
    await journal.appendWithOffsets([], at('6', '7'));
    t.deepEqual(await settledOffsets({ 0: '6', 1: '7' }), { 0: '6', 1: '7' }, 'offsets alone (an input that changed nothing)');
    t.is(journal.nextOffset(), 3);
  } finally {
    for (const s of stores) await s.close().catch(() => undefined);
    await admin.deleteGroups([groupId]).catch(() => undefined);
    await admin.disconnect();
    await deleteTopicsWithPrefix(prefix);
  }
});

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN;
}

kafkaTest('kafka store: append latency with 1,000-record batches (printed, not asserted)', async (t) => {
  t.timeout(180_000);
  const prefix = `kbench-${randomUUID().slice(0, 8)}-`;
  const stores: KafkaStore[] = [];
  const kafka = new Kafka({ clientId: 'kbench-raw', brokers, logLevel: logLevel.NOTHING });
  // The same producer settings as the store's (its short first retry matters: see kafka-store.ts).
  const retry = { retries: 12, initialRetryTime: 5, maxRetryTime: 1_000 };
  const raw = kafka.producer({ transactionalId: `kbench-raw-${prefix}`, idempotent: true, maxInFlightRequests: 1, retry });
  const plain = kafka.producer({ idempotent: true, maxInFlightRequests: 1, retry });
  try {
    const store = await openStore(prefix);
    stores.push(store);
    const journal = store.journal('S');
    const batch = 1_000;
    const appends = 200;
    const batches = Array.from({ length: appends + 10 }, (_, i) => makeRecords(i * batch, batch));
    const bytes = Buffer.byteLength(JSON.stringify({ first: 0, records: batches[0]?.map((r) => [r.atMs, r.actorId, r.kind, r.event, r.state]) }));
    const timeLoop = async (count: number, one: (i: number) => Promise<unknown>): Promise<{ p50: number; p99: number; perS: number }> => {
      const latencies: number[] = [];
      const started = monotonicNowMs();
      for (let i = 0; i < count; i++) {
        const s = monotonicNowMs();
        await one(i);
        latencies.push(monotonicNowMs() - s);
      }
      const total = monotonicNowMs() - started;
      latencies.sort((x, y) => x - y);
      return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), perS: (count / total) * 1_000 };
    };
    for (let i = 0; i < 10; i++) await journal.append(batches[i] as JournalRecord[]); // warm-up
    const store$ = await timeLoop(appends, (i) => journal.append(batches[i + 10] as JournalRecord[]));
    // Raw kafkajs with the same payload: one transaction per message, and a plain idempotent acks=all send.
    await raw.connect();
    await plain.connect();
    const value = JSON.stringify({ first: 0, records: batches[0]?.map((r) => [r.atMs, r.actorId, r.kind, r.event, r.state]) });
    const topic = `${prefix}arc.journal.S`;
    const raw$ = await timeLoop(appends, async () => {
      const tx = await raw.transaction();
      await tx.send({ topic, acks: -1, messages: [{ key: 'S', value, partition: 0 }] });
      await tx.commit();
    });
    const plain$ = await timeLoop(appends, () => plain.send({ topic, acks: -1, messages: [{ key: 'S', value, partition: 0 }] }));
    const fmt = (name: string, r: { p50: number; p99: number; perS: number }) =>
      `${name}: p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, ${r.perS.toFixed(0)} appends/s = ${((r.perS * batch) / 1_000).toFixed(0)}k records/s`;
    const lines = [
      `append of ${batch} records (${(bytes / 1024).toFixed(0)} KiB per message), ${appends} sequential appends, one in flight:`,
      fmt('KafkaStore.append (transaction + commit)', store$),
      fmt('raw kafkajs transaction (send + commit)', raw$),
      fmt('raw kafkajs idempotent send, acks=all, no transaction', plain$),
    ];
    for (const line of lines) t.log(line);
    console.log(lines.join('\n'));
    t.pass();
  } finally {
    await raw.disconnect().catch(() => undefined);
    await plain.disconnect().catch(() => undefined);
    for (const s of stores) await s.close().catch(() => undefined);
    await deleteTopicsWithPrefix(prefix);
  }
});
