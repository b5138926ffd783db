import { randomUUID } from 'node:crypto';
import type { ConnectionOptions } from 'node:tls';
import { Kafka, logLevel, type Admin, type LogEntry, type Producer } from 'kafkajs';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import type { JournalStore } from '../../runtime/journal.js';
import { chainThrough, ChainHasher, decodeEntry, genesisHead } from '../../runtime/journal-entry.js';
import type { ShardSnapshot, SnapshotStore } from '../../runtime/snapshot-store.js';
import { isFenced, KafkaJournal, type JournalWriteStatus, type Tail } from './kafka-journal.js';
import { claimValue, classifyJournalMessage, WRITER_HEADER } from './journal-message.js';
import { TopicReader } from './topic-reader.js';
import { waitForTopicsReady } from './topics.js';

export { KafkaJournal, type ConsumerOffsets, type JournalWriteStatus } from './kafka-journal.js';

/**
 * The production store: each shard's journal is a Kafka topic, snapshots are a
 * compacted topic keyed by shard id. Mirrors adapters/lmdb/lmdb-store.ts.
 *
 * Layout: the journal of shard S is `${prefix}arc.journal.${S}` (1 partition,
 * kept forever). Each Kafka message holds one append (or one chunk of a large
 * one) as a hash-chained J1 entry, the format the LMDB store keeps per append
 * (journal-message.ts), or a claim. Record offsets are ours, gap-free from 0;
 * Kafka offsets are not (transaction markers and claims take offsets too), so
 * the store never confuses the two.
 *
 * Write-ahead: an append is one transaction of the shard's transactional
 * producer; its promise resolves once the broker acknowledged the commit
 * (kafka-journal.ts, which also rides out broker restarts). Opening a store for
 * S initialises a producer with S's transactional id, which fences every older
 * owner of S, and commits a claim to S's journal before reading it: the older
 * owner's next write fails, it finds the claim, and its journal stays closed.
 *
 * Snapshots carry `journalKafkaOffset`, the Kafka offset of the first journal
 * message holding a record after the snapshot, so opening reads only the tail,
 * and `chainHead`, the journal's chain head at the snapshot's offset: the
 * anchor the tail's chain continues from, and that an audit checks.
 *
 * Recovery checks the chain: every record of the tail read on opening is
 * re-hashed from the snapshot's anchor (or the genesis value) and checked
 * against the heads stored with it; a tail that does not chain, or has gaps,
 * fails the open with ARC_ERR_JOURNAL_TAMPERED (arcnet audit verify --kafka
 * then says where). Verifying the whole journal is journal-audit.ts.
 *
 * Reads are synchronous (the ports say so): opening preloads each shard's tail
 * (from its latest snapshot on) into memory, kept as the message bytes, and
 * appends are added to it. After a snapshot lands, what precedes the oldest
 * kept snapshot leaves memory; read() from before what memory holds throws.
 */
export interface KafkaStoreOptions {
  readonly brokers: readonly string[];
  /** TLS to the brokers (kafkaTlsOptions); plaintext without it. */
  readonly ssl?: ConnectionOptions | undefined;
  /** The shards this store owns (and fences other owners of). */
  readonly shardIds: readonly string[];
  readonly clientId: string;
  /** Prepended to every topic name and transactional id (tests, several regions on one cluster). */
  readonly topicPrefix?: string;
  /** Snapshots kept in memory per shard; the journal is kept in memory from the oldest on. Default 2. */
  readonly keepSnapshots?: number;
  /** One attempt at an append (or snapshot save) that takes longer is abandoned and retried with a new producer. Default 30 s. */
  readonly appendTimeoutMs?: number;
  /** A write keeps being retried for this long after its first failure (broker unreachable, restarting). Default 5 minutes. */
  readonly retryForMs?: number;
  /** Told whenever a journal's write status changes (retrying, recovered, failed): the region's readiness. */
  readonly onWriteStatus?: (shardId: string, status: JournalWriteStatus) => void;
  /** Opening fails if preloading the journals takes longer. Default 120 s. */
  readonly preloadTimeoutMs?: number;
  /** Largest journal message; larger appends are split into several messages of one transaction. Default 900 KB. */
  readonly maxMessageBytes?: number;
  /** Read each journal from its beginning instead of from the latest snapshot (full replay, audits). */
  readonly fullJournal?: boolean;
}

export interface StoredSnapshot {
  readonly snapshot: ShardSnapshot;
  readonly journalKafkaOffset: number;
  /** The journal's chain head after the snapshot's offset, hex. */
  readonly chainHead: string;
}

export const journalTopic = (prefix: string, shardId: string): string => `${prefix}arc.journal.${shardId}`;
export const snapshotsTopic = (prefix: string): string => `${prefix}arc.snapshots`;
export const journalTransactionalId = (prefix: string, shardId: string): string => `arcnet-journal-${prefix}${shardId}`;

const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,200}$/;
/** Snapshots are one message each; a large region's snapshot is several MB of JSON before gzip. */
const SNAPSHOT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
const CLIENT_LOG_ENTRIES = 200;
/** Claims fenced by an older owner re-initialising at the same moment are made again this often at most. */
const CLAIM_ATTEMPTS = 3;

/**
 * A kafkajs client whose log is kept rather than printed: kafkajs logs retriable
 * errors (coordinator moving, CONCURRENT_TRANSACTIONS, a broker restarting) at
 * ERROR level; failures surface as rejections, the last entries as diagnostics.
 */
export function quietKafka(options: { clientId: string; brokers: readonly string[]; ssl?: ConnectionOptions | undefined }, clientLog: string[]): Kafka {
  return new Kafka({
    clientId: options.clientId,
    brokers: [...options.brokers],
    ssl: options.ssl,
    logLevel: logLevel.WARN,
    logCreator: () => (entry: LogEntry) => {
      clientLog.push(`${entry.label} [${entry.namespace}] ${entry.log.message}`);
      if (clientLog.length > CLIENT_LOG_ENTRIES) clientLog.splice(0, clientLog.length - CLIENT_LOG_ENTRIES);
    },
    connectionTimeout: 10_000,
    requestTimeout: 30_000,
    retry: { retries: 8, initialRetryTime: 100, maxRetryTime: 5_000 },
  });
}

export class KafkaStore implements JournalStore, SnapshotStore {
  /** Creates missing topics, fences older owners of the shards and claims their journals, and preloads snapshots and journal tails. */
  static async open(options: KafkaStoreOptions): Promise<KafkaStore> {
    const prefix = options.topicPrefix ?? '';
    const shardIds = [...new Set(options.shardIds)].sort();
    if (shardIds.length === 0) throw new Error('KafkaStore.open: name at least one shard id');
    for (const id of shardIds) {
      if (!TOPIC_NAME.test(journalTopic(prefix, id))) {
        throw new Error(`KafkaStore.open: shard id '${id}' (with prefix '${prefix}') does not make a valid Kafka topic name ([a-zA-Z0-9._-])`);
      }
    }
    const clientLog: string[] = [];
    const kafka = quietKafka(options, clientLog);
    const admin = kafka.admin();
    const writerId = randomUUID();
    const newProducer = (shardId: string) => (): Producer =>
      kafka.producer({
        transactionalId: journalTransactionalId(prefix, shardId),
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
        // Bounded: a fenced or unreachable owner must get a rejection, never an endless retry
        // (the journal retries a failed write itself, with a new producer).
        // Short first backoff: a transaction begun right after a commit often gets
        // CONCURRENT_TRANSACTIONS (the commit markers are still being written) and clears
        // within milliseconds; kafkajs's default 300 ms first retry would set the p99.
        retry: { retries: 12, initialRetryTime: 5, maxRetryTime: 1_000 },
      });
    const producers = new Map<string, Producer>();
    try {
      await admin.connect();
      await ensureTopics(admin, prefix, shardIds);
      for (const shardId of shardIds) producers.set(shardId, await claimJournal(newProducer(shardId), journalTopic(prefix, shardId), shardId, writerId));
      const reader = new TopicReader(kafka, admin, options.clientId, options.preloadTimeoutMs ?? 120_000);
      const snapshots = await latestSnapshots(reader, snapshotsTopic(prefix), new Set(shardIds));
      const tails = await preloadJournals(
        reader,
        shardIds.map((shardId) => ({ shardId, topic: journalTopic(prefix, shardId), snapshot: options.fullJournal === true ? undefined : snapshots.get(shardId) })),
      );
      const journals = shardIds.map(
        (shardId) =>
          new KafkaJournal({
            shardId,
            topic: journalTopic(prefix, shardId),
            snapshotsTopic: snapshotsTopic(prefix),
            writerId,
            producer: producers.get(shardId) as Producer,
            newProducer: newProducer(shardId),
            reader,
            tail: tails.get(shardId) as Tail,
            attemptTimeoutMs: options.appendTimeoutMs ?? 30_000,
            retryForMs: options.retryForMs ?? 300_000,
            maxMessageBytes: options.maxMessageBytes ?? 900_000,
            onStatus: options.onWriteStatus,
          }),
      );
      return new KafkaStore({ admin, prefix, journals, snapshots, clientLog, options });
    } catch (error) {
      await Promise.allSettled([...producers.values()].map((p) => p.disconnect()));
      await admin.disconnect().catch(() => undefined);
      if (error instanceof ArcError) throw error;
      const log = clientLog.slice(-10).join('\n  ');
      throw new Error(`KafkaStore.open failed: ${errorMessage(error)}${log.length > 0 ? `\n  kafkajs log:\n  ${log}` : ''}`, { cause: error });
    }
  }

  readonly topicPrefix: string;
  private readonly admin: Admin;
  private readonly journals = new Map<string, KafkaJournal>();
  private readonly snapshotsBy = new Map<string, ShardSnapshot[]>();
  private readonly keepSnapshots: number;
  private readonly clientLogEntries: string[];
  private closed = false;

  private constructor(init: {
    admin: Admin;
    prefix: string;
    journals: KafkaJournal[];
    snapshots: Map<string, StoredSnapshot>;
    clientLog: string[];
    options: KafkaStoreOptions;
  }) {
    this.topicPrefix = init.prefix;
    this.admin = init.admin;
    this.keepSnapshots = Math.max(1, init.options.keepSnapshots ?? 2);
    this.clientLogEntries = init.clientLog;
    for (const journal of init.journals) {
      this.journals.set(journal.shardId, journal);
      const stored = init.snapshots.get(journal.shardId);
      // After opening, only the latest snapshot is known: the compacted topic may or may not
      // still hold older ones, and their journal tails were not read.
      this.snapshotsBy.set(journal.shardId, stored === undefined ? [] : [stored.snapshot]);
    }
  }

  journal(shardId: string): KafkaJournal {
    const journal = this.journals.get(shardId);
    if (journal === undefined) {
      throw new Error(`KafkaStore owns shards ${[...this.journals.keys()].join(', ')}, not '${shardId}': open a store with it in shardIds`);
    }
    return journal;
  }

  shardIds(): string[] {
    return [...this.journals.keys()];
  }

  /** Each journal's write status (see JournalWriteStatus): a shard whose write is being retried is not ready. */
  writeStatus(): Record<string, JournalWriteStatus> {
    return Object.fromEntries([...this.journals].map(([shardId, journal]) => [shardId, journal.status()]));
  }

  async save(snapshot: ShardSnapshot): Promise<void> {
    const journal = this.journal(snapshot.shardId);
    await journal.saveSnapshot(snapshot);
    const list = (this.snapshotsBy.get(snapshot.shardId) ?? []).filter((s) => s.offset !== snapshot.offset);
    list.push(snapshot);
    list.sort((a, b) => a.offset - b.offset);
    if (list.length > this.keepSnapshots) list.splice(0, list.length - this.keepSnapshots);
    this.snapshotsBy.set(snapshot.shardId, list);
    // What precedes the oldest kept snapshot is no longer needed to recover from any of them.
    journal.forgetUpTo((list[0] as ShardSnapshot).offset);
  }

  latest(shardId: string, maxOffset = Number.MAX_SAFE_INTEGER): ShardSnapshot | undefined {
    const list = this.snapshotsBy.get(shardId) ?? [];
    for (let i = list.length - 1; i >= 0; i--) {
      const snapshot = list[i] as ShardSnapshot;
      if (snapshot.offset <= maxOffset) return snapshot;
    }
    return undefined;
  }

  offsets(shardId: string): number[] {
    return (this.snapshotsBy.get(shardId) ?? []).map((s) => s.offset);
  }

  /** The last kafkajs log lines (diagnostics: kafkajs logs retriable errors loudly, so they are kept, not printed). */
  clientLog(): readonly string[] {
    return [...this.clientLogEntries];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.journals.values()].map((j) => j.disconnect()));
    await this.admin.disconnect();
  }
}

/**
 * Initialises the shard's transactional id with a new producer (fencing every
 * older owner and ending its open transaction) and commits this store's claim
 * to the journal. An older owner re-initialising at the same moment (after a
 * broker restart) can fence the claim: it is made again, and the older owner
 * finds it on its next failure.
 */
async function claimJournal(newProducer: () => Producer, topic: string, shardId: string, writerId: string): Promise<Producer> {
  for (let attempt = 1; ; attempt++) {
    const producer = newProducer();
    try {
      await producer.connect();
      const tx = await producer.transaction();
      await tx.send({ topic, acks: -1, messages: [{ key: shardId, value: claimValue(writerId), headers: { [WRITER_HEADER]: writerId }, partition: 0 }] });
      await tx.commit();
      return producer;
    } catch (error) {
      await producer.disconnect().catch(() => undefined);
      if (attempt >= CLAIM_ATTEMPTS || !isFenced(error)) throw error;
    }
  }
}

// ------------------------------------------------------------------ topics

async function ensureTopics(admin: Admin, prefix: string, shardIds: readonly string[]): Promise<void> {
  // kafkajs speaks CreateTopics v3, which has no "broker default" replication factor (-1 needs v4).
  const { brokers } = await admin.describeCluster();
  const replicationFactor = Math.min(3, Math.max(1, brokers.length));
  const wanted = [
    ...shardIds.map((id) => ({
      topic: journalTopic(prefix, id),
      numPartitions: 1,
      replicationFactor,
      configEntries: [
        { name: 'retention.ms', value: '-1' },
        { name: 'cleanup.policy', value: 'delete' },
      ],
    })),
    {
      topic: snapshotsTopic(prefix),
      numPartitions: 1,
      replicationFactor,
      configEntries: [
        { name: 'retention.ms', value: '-1' },
        { name: 'cleanup.policy', value: 'compact' },
        { name: 'max.message.bytes', value: String(SNAPSHOT_MAX_MESSAGE_BYTES) },
      ],
    },
  ];
  const existing = new Set(await admin.listTopics());
  const missing = wanted.filter((t) => !existing.has(t.topic));
  if (missing.length === 0) return;
  try {
    await admin.createTopics({ topics: missing, waitForLeaders: true, timeout: 30_000 });
  } catch (error) {
    // Another process may have created some of them meanwhile; anything else is real.
    const now = new Set(await admin.listTopics());
    if (missing.some((t) => !now.has(t.topic))) throw error;
  }
  // Just created: a broker may still answer "does not host this topic-partition" to the claim
  // that follows at once; wait until every partition is served.
  await waitForTopicsReady(admin, missing.map((t) => t.topic));
}

// ------------------------------------------------------------------ preload

/** The latest snapshot of each owned shard (the last message per key). */
export async function latestSnapshots(reader: TopicReader, topic: string, owned: ReadonlySet<string>): Promise<Map<string, StoredSnapshot>> {
  const latest = new Map<string, StoredSnapshot>();
  const to = await reader.endOffset(topic);
  // Compaction can leave the end of the log with no record at it, so a fetch may never reach
  // `to`; stopping early is safe here: an older snapshot plus a longer tail is still correct.
  await reader.read([{ topic, from: 0, to }], { idleStopMs: 1_500 }, ({ key, value }) => {
    if (key === undefined || value === null || !owned.has(key)) return;
    latest.set(key, decodeSnapshot(key, value.toString('utf8')));
  });
  return latest;
}

/**
 * Each shard's journal from its snapshot's Kafka offset on, checked for
 * contiguity and re-hashed from the snapshot's anchor: recovery never starts
 * from records that do not chain.
 */
export async function preloadJournals(reader: TopicReader, shards: readonly { shardId: string; topic: string; snapshot: StoredSnapshot | undefined }[]): Promise<Map<string, Tail>> {
  const tails = new Map<string, Tail>();
  const byTopic = new Map<string, { shardId: string; tail: Tail; after: number }>();
  const plans = [];
  for (const { shardId, topic, snapshot } of shards) {
    const to = await reader.endOffset(topic);
    const from = snapshot?.journalKafkaOffset ?? 0;
    // The snapshot covers records up to `after`; without one the journal must start at 0.
    const after = snapshot?.snapshot.offset ?? -1;
    const anchor = snapshot === undefined ? genesisHead(shardId) : Buffer.from(snapshot.chainHead, 'hex');
    const tail: Tail = { segments: [], base: after + 1, baseHead: anchor, next: after + 1, head: anchor, kafkaEnd: Math.max(from, to) };
    tails.set(shardId, tail);
    byTopic.set(topic, { shardId, tail, after });
    plans.push({ topic, from, to });
  }
  const hasher = new ChainHasher();
  // Journals are never compacted: every offset up to `to` is a record or a marker the fetch
  // returns, so reading must reach it; stopping short would lose committed records.
  await reader.read(plans, {}, ({ topic, kafkaOffset, value, headers }) => {
    const { shardId, tail, after } = byTopic.get(topic) as { shardId: string; tail: Tail; after: number };
    const message = classifyJournalMessage(value, headers);
    if (message.kind === 'claim') return;
    const decoded = message.kind === 'entry' ? decodeEntry(message.bytes) : undefined;
    if (decoded === undefined) throw tampered(shardId, `the message at Kafka offset ${kafkaOffset} is not a J1 entry (written by another version, or altered)`);
    const { first, count } = decoded.header;
    if (first + count - 1 <= after) return; // wholly covered by the snapshot
    if (first > tail.next) throw tampered(shardId, `records ${tail.next}..${first - 1} are missing before Kafka offset ${kafkaOffset}`);
    // Only the first message read may start before what it adds (inside the snapshot's range).
    if (first < tail.next && tail.segments.length > 0) throw tampered(shardId, `the message at Kafka offset ${kafkaOffset} repeats records from ${first}`);
    const step = chainThrough(hasher, decoded, tail.head, tail.next);
    if (!step.ok) {
      throw tampered(shardId, `record ${step.badOffset} (Kafka offset ${kafkaOffset}) does not chain to the records before it${snapshotNote(after)}`);
    }
    tail.segments.push({ first, count, kafkaOffset, bytes: message.bytes, head: step.head });
    tail.next = first + count;
    tail.head = step.head;
  });
  return tails;
}

function snapshotNote(after: number): string {
  return after < 0 ? '' : ` (checked from the chain head recorded with the snapshot at offset ${after})`;
}

function tampered(shardId: string, what: string): ArcError {
  return new ArcError(
    ErrorCodes.JOURNAL_TAMPERED,
    `the Kafka journal of '${shardId}' fails its integrity check: ${what}. Recovery stops here; run arcnet audit verify --kafka BROKERS --geozone ${shardId} for the first bad offset`,
    { shardId },
  );
}

function decodeSnapshot(shardId: string, value: string): StoredSnapshot {
  const parsed = JSON.parse(value) as ShardSnapshot & { journalKafkaOffset?: unknown; chainHead?: unknown };
  const { journalKafkaOffset, chainHead, ...snapshot } = parsed;
  if (snapshot.shardId !== shardId || !Number.isInteger(snapshot.offset) || !Number.isInteger(journalKafkaOffset) || !Array.isArray(snapshot.actors)) {
    throw new Error(`snapshot message for '${shardId}' is malformed`);
  }
  if (typeof chainHead !== 'string' || !/^[0-9a-f]{64}$/.test(chainHead)) {
    throw new Error(`snapshot message for '${shardId}' has no journal chain head: it was written by an older version, whose journal this one cannot read`);
  }
  return { snapshot, journalKafkaOffset: journalKafkaOffset as number, chainHead };
}

// ------------------------------------------------------------------ small helpers

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
