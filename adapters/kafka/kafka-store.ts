import { randomUUID } from 'node:crypto';
import type { ConnectionOptions } from 'node:tls';
import kafkajs, { Kafka, logLevel, type Admin, type LogEntry, type Producer, type Transaction } from 'kafkajs';
import type { Journal, JournalRecord, JournalStore } from '../../runtime/journal.js';
import type { ShardSnapshot, SnapshotStore } from '../../runtime/snapshot-store.js';

// kafkajs is CommonJS; Node's named-export detection misses some enums: take them off the default export.
const { CompressionTypes } = kafkajs;

/**
 * The production store: each shard's journal is a Kafka topic, snapshots are a
 * compacted topic keyed by shard id. Mirrors adapters/lmdb/lmdb-store.ts.
 *
 * Layout: the journal of shard S is `${prefix}arc.journal.${S}` (1 partition,
 * kept forever). Each Kafka message holds one append (or one chunk of a large
 * one): JSON `{ first, records: [[atMs, actorId, kind, event, state], ...] }`.
 * Record offsets are ours, gap-free from 0; Kafka offsets are not (transaction
 * markers take offsets too), so the store never confuses the two.
 *
 * Write-ahead: an append is one transaction of the shard's transactional
 * producer; its promise resolves once the broker acknowledged the commit, and
 * only then does nextOffset() move. Opening a store for S initialises a producer
 * with S's transactional id, which fences every older owner of S: their next
 * append rejects (INVALID_PRODUCER_EPOCH) and their journal stays closed.
 *
 * Snapshots carry `journalKafkaOffset`, the Kafka offset of the first journal
 * message holding a record after the snapshot, so opening reads only the tail.
 *
 * Reads are synchronous (the ports say so): opening preloads each shard's tail
 * (from its latest snapshot on) into memory, kept as the encoded message text,
 * and appends are added to it. After a snapshot lands, what precedes the oldest
 * kept snapshot leaves memory; read() from before what memory holds throws.
 */
type StoredRecord = [atMs: number, actorId: string, kind: string, event: JournalRecord['event'], state: string];

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
  /** An append (or snapshot save) that takes longer rejects and closes the journal: its outcome is unknown. Default 30 s. */
  readonly appendTimeoutMs?: number;
  /** Opening fails if preloading the journals takes longer. Default 120 s. */
  readonly preloadTimeoutMs?: number;
  /** Largest journal message; larger appends are split into several messages of one transaction. Default 900 KB. */
  readonly maxMessageBytes?: number;
  /** Read each journal from its beginning instead of from the latest snapshot (full replay, audits). */
  readonly fullJournal?: boolean;
}

/** Input offsets committed in the same transaction as an append (Kafka convention: the next offset to read). */
export interface ConsumerOffsets {
  readonly groupId: string;
  readonly topics: readonly { readonly topic: string; readonly partitions: readonly { readonly partition: number; readonly offset: string }[] }[];
}

/** One journal message in memory: its records (encoded) and where it sits in Kafka. */
interface Segment {
  readonly first: number;
  readonly count: number;
  readonly kafkaOffset: number;
  /** The message value as written: decoded on read, so reads return what a reopened store would. */
  readonly value: string;
}

interface StoredSnapshot {
  readonly snapshot: ShardSnapshot;
  readonly journalKafkaOffset: number;
}

export const journalTopic = (prefix: string, shardId: string): string => `${prefix}arc.journal.${shardId}`;
export const snapshotsTopic = (prefix: string): string => `${prefix}arc.snapshots`;
export const journalTransactionalId = (prefix: string, shardId: string): string => `arcnet-journal-${prefix}${shardId}`;

const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,200}$/;
/** Snapshots are one message each; a large region's snapshot is several MB of JSON before gzip. */
const SNAPSHOT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
const CLIENT_LOG_ENTRIES = 200;

export class KafkaStore implements JournalStore, SnapshotStore {
  /** Creates missing topics, fences older owners of the shards, and preloads snapshots and journal tails. */
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
    const kafka = new Kafka({
      clientId: options.clientId,
      brokers: [...options.brokers],
      ssl: options.ssl,
      logLevel: logLevel.WARN,
      // kafkajs logs retriable errors (coordinator moving, CONCURRENT_TRANSACTIONS) at ERROR level:
      // keep the last entries for diagnostics instead of printing them; failures surface as rejections.
      logCreator: () => (entry: LogEntry) => {
        clientLog.push(`${entry.label} [${entry.namespace}] ${entry.log.message}`);
        if (clientLog.length > CLIENT_LOG_ENTRIES) clientLog.splice(0, clientLog.length - CLIENT_LOG_ENTRIES);
      },
      connectionTimeout: 10_000,
      requestTimeout: 30_000,
      retry: { retries: 8, initialRetryTime: 100, maxRetryTime: 5_000 },
    });
    const admin = kafka.admin();
    const producers = new Map<string, Producer>();
    try {
      await admin.connect();
      await ensureTopics(admin, prefix, shardIds);
      for (const shardId of shardIds) {
        const producer = kafka.producer({
          transactionalId: journalTransactionalId(prefix, shardId),
          idempotent: true,
          maxInFlightRequests: 1,
          allowAutoTopicCreation: false,
          // Bounded: a fenced or unreachable owner must get a rejection, never an endless retry.
          // Short first backoff: a transaction begun right after a commit often gets
          // CONCURRENT_TRANSACTIONS (the commit markers are still being written) and clears
          // within milliseconds; kafkajs's default 300 ms first retry would set the p99.
          retry: { retries: 12, initialRetryTime: 5, maxRetryTime: 1_000 },
        });
        producers.set(shardId, producer);
        await producer.connect();
        // kafkajs initialises the transactional producer id lazily, on the first transaction:
        // do it now, so opening fences older owners (and aborts their open transaction) before we read.
        const fence = await producer.transaction();
        await fence.abort();
      }
      const preload = new Preloader(kafka, admin, options.clientId, options.preloadTimeoutMs ?? 120_000);
      const snapshots = await preload.snapshots(snapshotsTopic(prefix), new Set(shardIds));
      const tails = await preload.journals(
        shardIds.map((shardId) => ({ shardId, topic: journalTopic(prefix, shardId), snapshot: options.fullJournal === true ? undefined : snapshots.get(shardId) })),
      );
      return new KafkaStore({ kafka, admin, producers, prefix, shardIds, snapshots, tails, clientLog, options });
    } catch (error) {
      await Promise.allSettled([...producers.values()].map((p) => p.disconnect()));
      await admin.disconnect().catch(() => undefined);
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
    kafka: Kafka;
    admin: Admin;
    producers: Map<string, Producer>;
    prefix: string;
    shardIds: string[];
    snapshots: Map<string, StoredSnapshot>;
    tails: Map<string, Tail>;
    clientLog: string[];
    options: KafkaStoreOptions;
  }) {
    this.topicPrefix = init.prefix;
    this.admin = init.admin;
    this.keepSnapshots = Math.max(1, init.options.keepSnapshots ?? 2);
    this.clientLogEntries = init.clientLog;
    for (const shardId of init.shardIds) {
      const tail = init.tails.get(shardId) as Tail;
      const producer = init.producers.get(shardId) as Producer;
      this.journals.set(
        shardId,
        new KafkaJournal({
          shardId,
          topic: journalTopic(init.prefix, shardId),
          snapshotsTopic: snapshotsTopic(init.prefix),
          producer,
          tail,
          appendTimeoutMs: init.options.appendTimeoutMs ?? 30_000,
          maxMessageBytes: init.options.maxMessageBytes ?? 900_000,
        }),
      );
      const stored = init.snapshots.get(shardId);
      // After opening, only the latest snapshot is known: the compacted topic may or may not
      // still hold older ones, and their journal tails were not read.
      this.snapshotsBy.set(shardId, stored === undefined ? [] : [stored.snapshot]);
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

export class KafkaJournal implements Journal {
  readonly shardId: string;
  readonly topic: string;
  private readonly snapshotsTopic: string;
  private readonly producer: Producer;
  private readonly appendTimeoutMs: number;
  private readonly maxMessageBytes: number;
  private segments: Segment[];
  /** First record offset held in memory (read() from before it throws). */
  private base: number;
  private next: number;
  /** A lower bound for the Kafka offset of the next message: what follows the last one known is markers. */
  private kafkaEnd: number;
  private appending = false;
  /** Transactions of this shard's producer run one at a time (appends and snapshot saves). */
  private chain: Promise<unknown> = Promise.resolve();
  /** Set once the producer can no longer be trusted (fenced, outcome unknown): every later write rejects. */
  private broken: Error | undefined;

  constructor(init: {
    shardId: string;
    topic: string;
    snapshotsTopic: string;
    producer: Producer;
    tail: Tail;
    appendTimeoutMs: number;
    maxMessageBytes: number;
  }) {
    this.shardId = init.shardId;
    this.topic = init.topic;
    this.snapshotsTopic = init.snapshotsTopic;
    this.producer = init.producer;
    this.appendTimeoutMs = init.appendTimeoutMs;
    this.maxMessageBytes = init.maxMessageBytes;
    this.segments = init.tail.segments;
    this.base = init.tail.base;
    this.next = init.tail.next;
    this.kafkaEnd = init.tail.kafkaEnd;
  }

  nextOffset(): number {
    return this.next;
  }

  /** The first offset read() can serve (records before it were left out of memory). */
  firstReadableOffset(): number {
    return this.base;
  }

  /** Why this journal accepts no more writes (fenced by a newer owner, or an append of unknown outcome). */
  get failure(): Error | undefined {
    return this.broken;
  }

  append(records: readonly JournalRecord[]): Promise<void> {
    return this.appendWithOffsets(records, undefined);
  }

  /**
   * Appends and commits input offsets in one transaction: the records become
   * durable exactly when the inputs that produced them count as consumed.
   * With no records, only the offsets are committed.
   */
  appendWithOffsets(records: readonly JournalRecord[], consumerOffsets: ConsumerOffsets | undefined): Promise<void> {
    if (this.broken !== undefined) return Promise.reject(this.broken);
    const first = records[0];
    if (first === undefined && consumerOffsets === undefined) return Promise.resolve();
    if (first !== undefined && first.offset !== this.next) {
      return Promise.reject(new Error(`append at offset ${first.offset}, journal '${this.shardId}' expects ${this.next}`));
    }
    if (this.appending) return Promise.reject(new Error(`append to journal '${this.shardId}' while another is in flight: one at a time`));
    let chunks: { first: number; count: number; value: string }[];
    try {
      chunks = this.encode(records);
    } catch (error) {
      return Promise.reject(asError(error));
    }
    this.appending = true;
    const written = this.exclusive('append', async (tx) => {
      const kafkaOffsets: number[] = [];
      // One send per chunk: the broker's size limit applies to each produce batch.
      for (const chunk of chunks) {
        const [meta] = await tx.send({ topic: this.topic, acks: -1, messages: [{ key: this.shardId, value: chunk.value, partition: 0 }] });
        if (meta?.baseOffset === undefined) throw new Error(`the broker did not report where journal '${this.shardId}' message landed`);
        kafkaOffsets.push(Number(meta.baseOffset));
      }
      if (consumerOffsets !== undefined) {
        await tx.sendOffsets({
          consumerGroupId: consumerOffsets.groupId,
          topics: consumerOffsets.topics.map((t) => ({ topic: t.topic, partitions: t.partitions.map((p) => ({ partition: p.partition, offset: p.offset })) })),
        });
      }
      return kafkaOffsets;
    });
    return written.then(
      (kafkaOffsets) => {
        this.appending = false;
        chunks.forEach((chunk, i) => {
          const kafkaOffset = kafkaOffsets[i] as number;
          this.segments.push({ ...chunk, kafkaOffset });
          this.kafkaEnd = Math.max(this.kafkaEnd, kafkaOffset + 1);
        });
        this.next += records.length;
      },
      (error: unknown) => {
        this.appending = false;
        throw asError(error);
      },
    );
  }

  /** Records as message chunks of at most maxMessageBytes each (one chunk unless the append is large). */
  private encode(records: readonly JournalRecord[]): { first: number; count: number; value: string }[] {
    records.forEach((r, i) => {
      if (r.offset !== this.next + i) throw new Error(`append to journal '${this.shardId}' is not contiguous: record ${i} has offset ${r.offset}, expected ${this.next + i}`);
    });
    if (records.length === 0) return [];
    // The usual case: the whole append fits one message (one stringify, no per-record sizing).
    const whole = JSON.stringify({ first: this.next, records: records.map((r): StoredRecord => [r.atMs, r.actorId, r.kind, r.event, r.state]) });
    if (Buffer.byteLength(whole) <= this.maxMessageBytes) return [{ first: this.next, count: records.length, value: whole }];
    const chunks: { first: number; count: number; value: string }[] = [];
    let parts: string[] = [];
    let bytes = 0;
    let chunkFirst = this.next;
    const close = (): void => {
      if (parts.length === 0) return;
      chunks.push({ first: chunkFirst, count: parts.length, value: `{"first":${chunkFirst},"records":[${parts.join(',')}]}` });
      chunkFirst += parts.length;
      parts = [];
      bytes = 0;
    };
    records.forEach((r) => {
      const stored: StoredRecord = [r.atMs, r.actorId, r.kind, r.event, r.state];
      const part = JSON.stringify(stored);
      const size = Buffer.byteLength(part) + 1;
      if (size + 64 > this.maxMessageBytes) {
        throw new Error(`journal record at offset ${r.offset} is ${size} bytes, more than a journal message may hold (${this.maxMessageBytes})`);
      }
      if (bytes + size + 64 > this.maxMessageBytes) close();
      parts.push(part);
      bytes += size;
    });
    close();
    return chunks;
  }

  *read(fromOffset = 0): Generator<JournalRecord> {
    if (fromOffset < this.base) {
      throw new Error(
        `journal '${this.shardId}' holds records from offset ${this.base} in memory, not ${fromOffset}: open the store with fullJournal to read from the beginning`,
      );
    }
    // Find the segment holding fromOffset (segments are in offset order), then scan forward.
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.segments[mid] as Segment).first <= fromOffset) lo = mid;
      else hi = mid - 1;
    }
    const segments = this.segments;
    for (let s = lo; s < segments.length; s++) {
      const segment = segments[s] as Segment;
      if (segment.first + segment.count <= fromOffset) continue;
      const stored = (JSON.parse(segment.value) as { records: StoredRecord[] }).records;
      for (let i = 0; i < stored.length; i++) {
        const offset = segment.first + i;
        if (offset < fromOffset) continue;
        const [atMs, actorId, kind, event, state] = stored[i] as StoredRecord;
        yield { offset, atMs, actorId, kind, event, state };
      }
    }
  }

  /** Stores a snapshot in the compacted topic, in a transaction of this shard's producer. */
  saveSnapshot(snapshot: ShardSnapshot): Promise<void> {
    if (this.broken !== undefined) return Promise.reject(this.broken);
    return this.exclusive('snapshot save', async (tx) => {
      // Checked in turn (after any append in flight): a snapshot past the journal would make
      // recovery believe in records that are not there.
      if (snapshot.offset >= this.next) {
        throw new Error(`snapshot of '${this.shardId}' at offset ${snapshot.offset} is past its journal (next offset ${this.next}): save it once the journal is durable`);
      }
      const value = JSON.stringify({ ...snapshot, journalKafkaOffset: this.kafkaOffsetAfter(snapshot.offset) });
      await tx.send({ topic: this.snapshotsTopic, acks: -1, compression: CompressionTypes.GZIP, messages: [{ key: this.shardId, value, partition: 0 }] });
    }).then(() => undefined);
  }

  /** The Kafka offset to read the journal from to see every record after `offset`. */
  private kafkaOffsetAfter(offset: number): number {
    // Records before memory: their messages are unknown here, read from the beginning (correct, slow).
    if (offset + 1 < this.base) return 0;
    for (const segment of this.segments) {
      if (segment.first + segment.count - 1 > offset) return segment.kafkaOffset;
    }
    return this.kafkaEnd;
  }

  /** Drops from memory the messages whose records are all <= offset. */
  forgetUpTo(offset: number): void {
    let drop = 0;
    while (drop < this.segments.length) {
      const segment = this.segments[drop] as Segment;
      if (segment.first + segment.count - 1 > offset) break;
      drop++;
    }
    if (drop === 0) return;
    this.segments = this.segments.slice(drop);
    this.base = this.segments[0]?.first ?? Math.min(offset + 1, this.next);
  }

  /**
   * Runs `work` in a transaction of this shard's producer, after the ones before it.
   * Resolves once the commit is acknowledged. On failure the transaction is aborted
   * if it still can be; if not (fenced, commit outcome unknown, timeout), the journal
   * is closed for writing: only reopening can tell what it holds.
   */
  private exclusive<T>(what: string, work: (tx: Transaction) => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      if (this.broken !== undefined) throw this.broken;
      const tx = await this.producer.transaction();
      try {
        const result = await work(tx);
        await tx.commit();
        return result;
      } catch (error) {
        let aborted = false;
        if (tx.isActive()) {
          aborted = await tx.abort().then(
            () => true,
            () => false,
          );
        }
        if (isFenced(error)) {
          this.broken = new Error(
            `journal '${this.shardId}' was taken over by a newer owner (producer fenced: ${errorMessage(error)}); this store may not write it any more`,
            { cause: error },
          );
        } else if (!aborted) {
          this.broken = new Error(`journal '${this.shardId}': a ${what} failed and its transaction could not be aborted (${errorMessage(error)}); reopen the store`, { cause: error });
        }
        throw this.broken ?? error;
      }
    };
    const result = this.chain.then(run, run);
    this.chain = result.catch(() => undefined);
    return withTimeout(result, this.appendTimeoutMs, () => {
      const error = new Error(`journal '${this.shardId}': a ${what} took more than ${this.appendTimeoutMs} ms; its outcome is unknown, reopen the store`);
      this.broken ??= error;
      return error;
    });
  }

  async disconnect(): Promise<void> {
    this.broken ??= new Error(`journal '${this.shardId}' is closed`);
    await this.producer.disconnect();
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
}

// ------------------------------------------------------------------ preload

interface Tail {
  segments: Segment[];
  base: number;
  next: number;
  kafkaEnd: number;
}

interface ReadPlan {
  readonly topic: string;
  /** Kafka offset to start from. */
  readonly from: number;
  /** Kafka offset to read up to (exclusive): the last stable offset when reading starts. */
  readonly to: number;
}

class Preloader {
  constructor(
    private readonly kafka: Kafka,
    private readonly admin: Admin,
    private readonly clientId: string,
    private readonly timeoutMs: number,
  ) {}

  /** The latest snapshot of each owned shard (the last message per key). */
  async snapshots(topic: string, owned: ReadonlySet<string>): Promise<Map<string, StoredSnapshot>> {
    const latest = new Map<string, StoredSnapshot>();
    const to = await this.endOffset(topic);
    // Compaction can leave the end of the log with no record at it, so a fetch may never reach
    // `to`; stopping early is safe here: an older snapshot plus a longer tail is still correct.
    await this.read([{ topic, from: 0, to }], { idleStopMs: 1_500 }, (_topic, key, value) => {
      if (key === undefined || !owned.has(key)) return;
      latest.set(key, decodeSnapshot(key, value));
    });
    return latest;
  }

  /** Each shard's journal from its snapshot's Kafka offset on, checked for contiguity. */
  async journals(shards: readonly { shardId: string; topic: string; snapshot: StoredSnapshot | undefined }[]): Promise<Map<string, Tail>> {
    const plans: ReadPlan[] = [];
    const tails = new Map<string, Tail>();
    const byTopic = new Map<string, { shardId: string; tail: Tail; after: number }>();
    for (const { shardId, topic, snapshot } of shards) {
      const to = await this.endOffset(topic);
      const from = snapshot?.journalKafkaOffset ?? 0;
      // The snapshot covers records up to `after`; without one the journal must start at 0.
      const after = snapshot?.snapshot.offset ?? -1;
      const tail: Tail = { segments: [], base: after + 1, next: after + 1, kafkaEnd: Math.max(from, to) };
      tails.set(shardId, tail);
      byTopic.set(topic, { shardId, tail, after });
      plans.push({ topic, from, to });
    }
    // Journals are never compacted: every offset up to `to` is a record or a marker the fetch
    // returns, so reading must reach it; stopping short would lose committed records.
    await this.read(plans, {}, (topic, _key, value, kafkaOffset) => {
      const entry = byTopic.get(topic) as { shardId: string; tail: Tail; after: number };
      const segment = decodeSegment(entry.shardId, value, kafkaOffset);
      const tail = entry.tail;
      if (segment.first + segment.count - 1 <= entry.after) return; // wholly covered by the snapshot
      if (tail.segments.length === 0) {
        if (segment.first > entry.after + 1) {
          throw new Error(`journal '${entry.shardId}' has a gap: its snapshot covers up to ${entry.after}, the next message starts at ${segment.first}`);
        }
        tail.base = segment.first;
      } else if (segment.first !== tail.next) {
        throw new Error(`journal '${entry.shardId}' is not contiguous at Kafka offset ${kafkaOffset}: message starts at ${segment.first}, expected ${tail.next}`);
      }
      tail.segments.push(segment);
      tail.next = segment.first + segment.count;
    });
    return tails;
  }

  private async endOffset(topic: string): Promise<number> {
    // kafkajs lists offsets read_committed: `high` is the last stable offset.
    const offsets = await this.admin.fetchTopicOffsets(topic);
    return Number(offsets.find((o) => o.partition === 0)?.high ?? '0');
  }

  /**
   * Reads partition 0 of each planned topic from `from` until its position reaches `to`,
   * read_committed, with a throwaway consumer group (kafkajs has no group-less consumer).
   * With idleStopMs, also stops once no fetch has brought anything for that long.
   */
  private async read(
    plans: readonly ReadPlan[],
    options: { idleStopMs?: number },
    onMessage: (topic: string, key: string | undefined, value: string, kafkaOffset: number) => void,
  ): Promise<void> {
    const todo = plans.filter((p) => p.from < p.to);
    if (todo.length === 0) return;
    const groupId = `${this.clientId}-preload-${randomUUID()}`;
    const consumer = this.kafka.consumer({
      groupId,
      readUncommitted: false,
      allowAutoTopicCreation: false,
      maxWaitTimeInMs: 100,
      sessionTimeout: 30_000,
      retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2_000 },
    });
    const position = new Map(todo.map((p) => [p.topic, p.from]));
    const target = new Map(todo.map((p) => [p.topic, p.to]));
    /** Next Kafka offset to hand over per topic: a fetch begun before a seek may repeat or precede it. */
    const accepted = new Map(todo.map((p) => [p.topic, p.from]));
    let failure: Error | undefined;
    let lastProgressMs = Date.now();
    const advance = (topic: string, lastOffset: string): void => {
      const next = Number(lastOffset) + 1;
      if (next > (position.get(topic) ?? 0)) position.set(topic, next);
      lastProgressMs = Date.now();
    };
    const done = (): boolean => todo.every((p) => (position.get(p.topic) ?? 0) >= p.to);
    try {
      await consumer.connect();
      // Batches of only markers or aborted records reach no handler but still move the position.
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => advance(payload.topic, payload.lastOffset));
      consumer.on(consumer.events.CRASH, ({ payload }) => {
        failure ??= payload.error;
      });
      await consumer.subscribe({ topics: todo.map((p) => p.topic), fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatch: ({ batch }) => {
          if (batch.partition !== 0 || failure !== undefined) return Promise.resolve();
          const end = target.get(batch.topic) ?? 0;
          try {
            for (const message of batch.messages) {
              const offset = Number(message.offset);
              // Skip what precedes the start (or was handed over already) and what was not there when we started.
              if (offset < (accepted.get(batch.topic) ?? 0) || offset >= end) continue;
              accepted.set(batch.topic, offset + 1);
              if (message.value !== null) onMessage(batch.topic, message.key?.toString(), message.value.toString(), offset);
            }
          } catch (error) {
            failure ??= asError(error);
          }
          return Promise.resolve();
        },
      });
      for (const p of todo) if (p.from > 0) consumer.seek({ topic: p.topic, partition: 0, offset: String(p.from) });
      const startedMs = Date.now();
      lastProgressMs = startedMs;
      for (;;) {
        if (failure !== undefined) throw failure;
        if (done()) return;
        const nowMs = Date.now();
        if (options.idleStopMs !== undefined && nowMs - lastProgressMs >= options.idleStopMs) return;
        if (nowMs - startedMs > this.timeoutMs) {
          const behind = todo.filter((p) => (position.get(p.topic) ?? 0) < p.to).map((p) => `${p.topic} at ${position.get(p.topic)} of ${p.to}`);
          throw new Error(`preloading took more than ${this.timeoutMs} ms (${behind.join(', ')})`);
        }
        await sleepMs(20);
      }
    } finally {
      await consumer.disconnect().catch(() => undefined);
      await this.admin.deleteGroups([groupId]).catch(() => undefined);
    }
  }
}

function decodeSnapshot(shardId: string, value: string): StoredSnapshot {
  const parsed = JSON.parse(value) as ShardSnapshot & { journalKafkaOffset?: unknown };
  const { journalKafkaOffset, ...snapshot } = parsed;
  if (snapshot.shardId !== shardId || !Number.isInteger(snapshot.offset) || !Number.isInteger(journalKafkaOffset) || !Array.isArray(snapshot.actors)) {
    throw new Error(`snapshot message for '${shardId}' is malformed`);
  }
  return { snapshot, journalKafkaOffset: journalKafkaOffset as number };
}

function decodeSegment(shardId: string, value: string, kafkaOffset: number): Segment {
  const parsed = JSON.parse(value) as { first?: unknown; records?: unknown };
  const records = parsed.records;
  if (!Number.isInteger(parsed.first) || !Array.isArray(records) || records.length === 0 || !records.every((r) => Array.isArray(r) && r.length === 5)) {
    throw new Error(`journal '${shardId}' message at Kafka offset ${kafkaOffset} is malformed`);
  }
  return { first: parsed.first as number, count: records.length, kafkaOffset, value };
}

// ------------------------------------------------------------------ small helpers

function isFenced(error: unknown): boolean {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (typeof current === 'object' && current !== null && !seen.has(current)) {
    seen.add(current);
    const e = current as { type?: unknown; code?: unknown; cause?: unknown; originalError?: unknown };
    if (e.type === 'INVALID_PRODUCER_EPOCH' || e.type === 'PRODUCER_FENCED' || e.code === 47 || e.code === 90) return true;
    current = e.originalError ?? e.cause;
  }
  return false;
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function sleepMs(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(onTimeout()), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(asError(error));
      },
    );
  });
}
