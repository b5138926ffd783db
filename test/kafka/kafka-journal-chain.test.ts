// The hash-chained Kafka journal, on the shared broker: a clean journal verifies (with the same
// heads the LMDB store computes for the same records), snapshots anchor the head, and a record
// altered, removed or reordered by someone writing or deleting at the topic behind the store's back
// is caught with the offset where it starts, by the audit and by recovery.
import { randomUUID } from 'node:crypto';
import type { Producer } from 'kafkajs';
import { verifyKafkaJournal } from '../../adapters/kafka/journal-audit.js';
import { journalTopic, journalTransactionalId, KafkaStore, snapshotsTopic, type JournalWriteStatus } from '../../adapters/kafka/kafka-store.js';
import { TopicReader } from '../../adapters/kafka/topic-reader.js';
import { journalHead } from '../../adapters/lmdb/journal-chain.js';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import { ErrorCodes } from '../../runtime/errors.js';
import { EntryEncoder, genesisHead, type EncodedEntry } from '../../runtime/journal-entry.js';
import type { JournalRecord } from '../../runtime/journal.js';
import { makeRecords } from '../contract/journal-contract.js';
import { tempDir } from '../helpers/fixtures.js';
import { brokers, deleteTopicsWithPrefix, kafkaTest, testKafka } from '../helpers/kafka-broker.js';

const S = 'S';
/** Append sizes: entries start at offsets 0, 3, 6, 7, 11, 14 (17 records), as in the LMDB chain test. */
const SIZES = [3, 3, 1, 4, 3, 3];

const newPrefix = (): string => `kchain-${randomUUID().slice(0, 8)}-`;
const openStore = (prefix: string, extra: Partial<Parameters<typeof KafkaStore.open>[0]> = {}): Promise<KafkaStore> =>
  KafkaStore.open({ brokers, shardIds: [S], clientId: `kchain-${prefix}`, topicPrefix: prefix, ...extra });

async function appendSizes(store: KafkaStore, sizes: readonly number[]): Promise<void> {
  const journal = store.journal(S);
  for (const size of sizes) await journal.append(makeRecords(journal.nextOffset(), size));
}

/** The entries a journal of these append sizes holds, chained from the genesis value. */
function chainedEntries(sizes: readonly number[], records: (from: number, count: number) => JournalRecord[] = makeRecords): EncodedEntry[] {
  const encoder = new EntryEncoder();
  const entries: EncodedEntry[] = [];
  let head = genesisHead(S);
  let next = 0;
  for (const size of sizes) {
    const [entry] = encoder.encode(records(next, size), head);
    entries.push(entry as EncodedEntry);
    head = (entry as EncodedEntry).head;
    next += size;
  }
  return entries;
}

/** A plain (non-transactional) producer: what it writes is visible to read_committed readers at once. */
async function rawProducer(prefix: string): Promise<Producer> {
  const producer = testKafka(`kchain-raw-${prefix}`).producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  return producer;
}

async function produce(producer: Producer, topic: string, values: readonly (Buffer | string)[], key = S): Promise<void> {
  for (const value of values) await producer.send({ topic, acks: -1, messages: [{ key, value, partition: 0 }] });
}

/** Creates the store's topics (and commits its claim) without writing a record. */
async function emptyJournal(prefix: string): Promise<void> {
  await (await openStore(prefix)).close();
}

async function verify(prefix: string): Promise<Awaited<ReturnType<typeof verifyKafkaJournal>>['shards'][number]> {
  const result = await verifyKafkaJournal({ brokers, shardIds: [S], topicPrefix: prefix, clientId: `kchain-audit-${prefix}` });
  return result.shards[0] as Awaited<ReturnType<typeof verifyKafkaJournal>>['shards'][number];
}

kafkaTest('kafka chain: a clean journal verifies, with the heads the LMDB store computes for the same records, and snapshots anchor it', async (t) => {
  t.timeout(240_000);
  const prefix = newPrefix();
  const { dir, cleanup } = tempDir('kchain-lmdb-');
  const stores: KafkaStore[] = [];
  try {
    const store = await openStore(prefix);
    stores.push(store);
    await appendSizes(store, SIZES);
    await store.save({ shardId: S, offset: 8, atMs: 0, actors: [], behaviourState: null }); // inside the entry 7..10
    await store.save({ shardId: S, offset: 16, atMs: 0, actors: [], behaviourState: null });
    const head = store.journal(S).head();

    const lmdb = new LmdbStore(dir);
    const lmdbJournal = lmdb.journal(S);
    for (const size of SIZES) await lmdbJournal.append(makeRecords(lmdbJournal.nextOffset(), size));
    t.deepEqual(journalHead(lmdb, S), { offset: 16, head }, 'one chain for both stores');
    await lmdb.close();

    const clean = await verify(prefix);
    t.is(clean.problem, undefined, clean.detail);
    t.is(clean.records, 17);
    t.is(clean.entries, SIZES.length);
    t.is(clean.anchors, 2);
    t.is(clean.head, head);
    await store.close();

    // A reopen continues the chain from the snapshot's anchor; a large append split over several messages chains too.
    const reopened = await openStore(prefix, { maxMessageBytes: 2_000 });
    stores.push(reopened);
    t.is(reopened.journal(S).head(), head, 'the head comes back from the tail read on opening');
    t.is(reopened.journal(S).firstReadableOffset(), 17);
    await reopened.journal(S).append(makeRecords(17, 40));
    const after = await verify(prefix);
    t.is(after.problem, undefined, after.detail);
    t.is(after.records, 57);
    t.true(after.entries > SIZES.length + 1, `the 40-record append took several messages (${after.entries - SIZES.length})`);
    t.is(after.head, reopened.journal(S).head());
  } finally {
    for (const store of stores) await store.close().catch(() => undefined);
    cleanup();
    await deleteTopicsWithPrefix(prefix);
  }
});

kafkaTest('kafka chain: a forged message with an altered record is caught at that record by the audit, and recovery refuses the journal', async (t) => {
  t.timeout(240_000);
  const prefix = newPrefix();
  const stores: KafkaStore[] = [];
  const producer = await rawProducer(prefix);
  try {
    const store = await openStore(prefix);
    stores.push(store);
    await appendSizes(store, [3, 3]);
    // Someone with write access produces records 6..8 ahead of the store, with record 7 altered but
    // the chain values of the real records: as if the bytes had been changed where they lie.
    const real = makeRecords(6, 3);
    const [genuine] = new EntryEncoder().encode(real, Buffer.from(store.journal(S).head(), 'hex'));
    const forged = Buffer.from((genuine as EncodedEntry).bytes.toString('utf8').replace('"ev-7"', '"ev-X"'), 'utf8');
    t.not(forged.toString(), (genuine as EncodedEntry).bytes.toString());
    await produce(producer, journalTopic(prefix, S), [forged]);
    await store.journal(S).append(real); // the store knows nothing of it and writes the real ones
    await store.journal(S).append(makeRecords(9, 2));

    const shard = await verify(prefix);
    t.is(shard.problem, 'altered');
    t.is(shard.firstBadOffset, 7);
    t.is(shard.records, 7, 'records 0..6 verified');
    await store.close();

    const error = await t.throwsAsync(() => openStore(prefix, { fullJournal: true }));
    t.is((error as { code?: string }).code, ErrorCodes.JOURNAL_TAMPERED);
    t.regex(error?.message ?? '', /record 7 .*does not chain/);
    t.regex(error?.message ?? '', /arcnet audit verify --kafka/);
  } finally {
    await producer.disconnect();
    for (const store of stores) await store.close().catch(() => undefined);
    await deleteTopicsWithPrefix(prefix);
  }
});

kafkaTest('kafka chain: removed records are caught at the first missing offset (deleted from the log start, an entry left out, a tail cut behind a snapshot)', async (t) => {
  t.timeout(240_000);
  const prefix = newPrefix();
  const stores: KafkaStore[] = [];
  const kafka = testKafka(`kchain-admin-${prefix}`);
  const admin = kafka.admin();
  const producer = await rawProducer(prefix);
  try {
    await admin.connect();
    // 1. Records deleted from the start of the partition (DeleteRecords, as a retention mistake would).
    const store = await openStore(prefix);
    stores.push(store);
    await appendSizes(store, SIZES);
    await store.close();
    const topic = journalTopic(prefix, S);
    let secondEntry: number | undefined;
    const reader = new TopicReader(kafka, admin, `kchain-read-${prefix}`, 60_000);
    await reader.read([{ topic, from: 0, to: await reader.endOffset(topic) }], {}, ({ kafkaOffset, value }) => {
      if (value?.toString('utf8').startsWith('J1 3 ') === true) secondEntry = kafkaOffset;
    });
    t.not(secondEntry, undefined);
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: String(secondEntry) }] });
    const fromStart = await verify(prefix);
    t.is(fromStart.problem, 'removed');
    t.is(fromStart.firstBadOffset, 0);
    const error = await t.throwsAsync(() => openStore(prefix));
    t.is((error as { code?: string }).code, ErrorCodes.JOURNAL_TAMPERED);
    t.regex(error?.message ?? '', /records 0\.\.2 are missing/);

    // 2. A journal written without the entry for 6..8 (chained as if it were there).
    const skipping = newPrefix();
    await emptyJournal(skipping);
    const entries = chainedEntries(SIZES);
    await produce(producer, journalTopic(skipping, S), entries.filter((e) => e.first !== 6).map((e) => e.bytes));
    const gap = await verify(skipping);
    t.is(gap.problem, 'removed');
    t.is(gap.firstBadOffset, 6);
    t.is(gap.records, 6);
    await deleteTopicsWithPrefix(skipping);

    // 3. A tail cut off: the journal ends at 13, but a snapshot recorded the head at 16.
    const cut = newPrefix();
    await emptyJournal(cut);
    await produce(producer, journalTopic(cut, S), entries.slice(0, 5).map((e) => e.bytes));
    const anchor = { shardId: S, offset: 16, atMs: 0, actors: [], behaviourState: null, journalKafkaOffset: 0, chainHead: (entries[5] as EncodedEntry).head.toString('hex') };
    await produce(producer, snapshotsTopic(cut), [JSON.stringify(anchor)]);
    const tail = await verify(cut);
    t.is(tail.problem, 'removed');
    t.is(tail.firstBadOffset, 14);
    t.regex(tail.detail, /snapshot/);
    await deleteTopicsWithPrefix(cut);
  } finally {
    await producer.disconnect();
    await admin.disconnect();
    for (const store of stores) await store.close().catch(() => undefined);
    await deleteTopicsWithPrefix(prefix);
  }
});

kafkaTest('kafka chain: entries in the wrong order, or an entry repeated, are caught as reordered', async (t) => {
  t.timeout(240_000);
  const prefix = newPrefix();
  const repeated = newPrefix();
  const producer = await rawProducer(prefix);
  try {
    // Entries 6..8 and 9..11 (both of 3 records) swapped.
    await emptyJournal(prefix);
    const entries = chainedEntries([3, 3, 3, 3, 3]);
    const swapped = [entries[0], entries[1], entries[3], entries[2], entries[4]] as EncodedEntry[];
    await produce(producer, journalTopic(prefix, S), swapped.map((e) => e.bytes));
    const shard = await verify(prefix);
    t.is(shard.problem, 'reordered');
    t.is(shard.firstBadOffset, 6);
    t.is(shard.records, 6);
    const error = await t.throwsAsync(() => openStore(prefix));
    t.is((error as { code?: string }).code, ErrorCodes.JOURNAL_TAMPERED);

    // A copy of an earlier entry produced again after the store's records.
    const store = await openStore(repeated);
    await appendSizes(store, [3, 3, 3]);
    await store.close();
    await produce(producer, journalTopic(repeated, S), [(chainedEntries([3, 3])[1] as EncodedEntry).bytes]);
    const copy = await verify(repeated);
    t.is(copy.problem, 'reordered');
    t.is(copy.firstBadOffset, 3);
    t.is(copy.records, 9, 'everything before the copy verified');
  } finally {
    await producer.disconnect();
    await deleteTopicsWithPrefix(prefix);
    await deleteTopicsWithPrefix(repeated);
  }
});

kafkaTest('kafka store: fenced without a newer owner (another epoch of its transactional id, no claim), the journal re-initialises and goes on', async (t) => {
  t.timeout(240_000);
  const prefix = newPrefix();
  const statuses: JournalWriteStatus[] = [];
  const stores: KafkaStore[] = [];
  // What a broker does to a transaction left open past its timeout: bump the producer epoch.
  // Here a producer with the shard's transactional id does it, and leaves a transaction of its own open.
  const bumper = testKafka(`kchain-bump-${prefix}`).producer({ transactionalId: journalTransactionalId(prefix, S), idempotent: true, maxInFlightRequests: 1 });
  try {
    const store = await openStore(prefix, { onWriteStatus: (_shardId, status) => statuses.push(status) });
    stores.push(store);
    const journal = store.journal(S);
    await journal.append(makeRecords(0, 3));
    await bumper.connect();
    const open = await bumper.transaction();
    await open.send({ topic: journalTopic(prefix, S), acks: -1, messages: [{ key: S, value: (chainedEntries([3, 2])[1] as EncodedEntry).bytes, partition: 0 }] });

    await journal.append(makeRecords(3, 2));
    t.is(journal.failure, undefined);
    t.is(journal.nextOffset(), 5);
    t.true(statuses.some((s) => s.retrying), 'the fenced append was retried');
    t.false(journal.status().retrying);
    t.regex(journal.status().lastError ?? '', /epoch|fence/i);
    await t.throwsAsync(() => open.commit(), undefined, 'the transaction left open was ended by the re-initialisation');
    await journal.append(makeRecords(5, 1));
    await store.close();

    const check = await openStore(prefix, { fullJournal: true });
    stores.push(check);
    t.deepEqual([...check.journal(S).read()], makeRecords(0, 6), 'every record once, in order');
    const audit = await verify(prefix);
    t.is(audit.problem, undefined, audit.detail);
    t.is(audit.records, 6);
  } finally {
    await bumper.disconnect().catch(() => undefined);
    for (const store of stores) await store.close().catch(() => undefined);
    await deleteTopicsWithPrefix(prefix);
  }
});
