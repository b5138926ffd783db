import kafkajs, { type Producer, type Transaction } from 'kafkajs';
import { decodeRecord, decodeEntry, EntryEncoder, type EncodedEntry, ChainHasher } from '../../runtime/journal-entry.js';
import type { Journal, JournalRecord } from '../../runtime/journal.js';
import { jsonInSlices } from '../../runtime/sliced-work.js';
import type { ShardSnapshot } from '../../runtime/snapshot-store.js';
import { classifyJournalMessage, WRITER_HEADER } from './journal-message.js';
import type { ReadMessage, TopicReader } from './topic-reader.js';

// kafkajs is CommonJS; Node's named-export detection misses some enums: take them off the default export.
const { CompressionTypes } = kafkajs;

/**
 * One shard's journal in Kafka (the topic layout and message format are in
 * kafka-store.ts and journal-message.ts).
 *
 * Write-ahead: an append is one transaction of the shard's transactional
 * producer; its promise resolves once the broker acknowledged the commit, and
 * only then do nextOffset() and the chain head move.
 *
 * Riding out a broker restart: a write that fails with a retriable error (the
 * broker unreachable, restarting, a coordinator moving, an attempt that takes
 * longer than `attemptTimeoutMs`) does not fail the shard. The producer is
 * dropped and a new one initialised with the same transactional id: that bumps
 * the producer epoch, which fences the old producer's requests still in flight
 * and makes the broker finish the failed transaction one way or the other (a
 * commit it had accepted completes, anything else is aborted). Then the
 * journal's committed tail after the last message known here is read back:
 * if the failed append is there, it had committed and is taken as done; if not,
 * it is sent again. So a record is written exactly once, and a fresh epoch means
 * fresh sequence numbers: the broker can never mistake the retry for a duplicate
 * of the aborted attempt. Attempts back off from 200 ms to 5 s, for at most
 * `retryForMs` (default 5 minutes) from the first failure; status() says a write
 * is being retried meanwhile, so the region can report the shard not ready.
 * After that bound the write rejects: if its outcome is known (not committed)
 * the journal stays usable, otherwise it is closed for writing.
 *
 * Fenced by a newer owner, or by the broker? Both show as a fenced producer
 * (a broker aborts a transaction left open past its timeout with an epoch
 * bump). Every store commits a claim to the journal topic when it opens, before
 * it reads, and tags every message with its writer id. A fenced journal reads
 * the committed tail after its last known message: another writer's claim or
 * entry there means a newer owner (the journal stops for good, as before); none
 * means it was the broker, and the journal re-initialises and goes on. The read
 * is repeated after the re-initialisation, which is what makes it safe: from
 * then on no one else can commit until they re-initialise in turn, so a newer
 * owner's claim can never slip in between the check and our next write.
 */
export interface JournalWriteStatus {
  /** A write failed and is being retried: the shard's effects wait meanwhile (report it not ready). */
  readonly retrying: boolean;
  /** Failed attempts of the write being retried (0 when none is). */
  readonly attempts: number;
  /** The last failure seen (kept after recovery, for diagnostics). */
  readonly lastError?: string;
  /** When the write being retried first failed (epoch ms). */
  readonly retryingSinceMs?: number;
  /** Why the journal accepts no more writes, once it does not. */
  readonly failed?: string;
}

/** Input offsets committed in the same transaction as an append (Kafka convention: the next offset to read). */
export interface ConsumerOffsets {
  readonly groupId: string;
  readonly topics: readonly { readonly topic: string; readonly partitions: readonly { readonly partition: number; readonly offset: string }[] }[];
}

/** One journal message in memory: a J1 entry and where it sits in Kafka. */
export interface Segment {
  readonly first: number;
  readonly count: number;
  readonly kafkaOffset: number;
  /** The message value as written (decoded on read, so reads return what a reopened store would). */
  readonly bytes: Buffer;
  /** Chain head after the segment's last record. */
  readonly head: Buffer;
}

/** What opening read of a journal: the messages from the latest snapshot on, checked against the chain. */
export interface Tail {
  segments: Segment[];
  /** First record offset held in memory. */
  base: number;
  /** Chain head after record base-1 (a snapshot's anchor, or the genesis value). */
  baseHead: Buffer;
  next: number;
  /** Chain head after record next-1. */
  head: Buffer;
  /** A lower bound for the Kafka offset of the next message: what follows the last one known is markers. */
  kafkaEnd: number;
}

export interface KafkaJournalInit {
  readonly shardId: string;
  readonly topic: string;
  readonly snapshotsTopic: string;
  /** Tags every message this store writes. */
  readonly writerId: string;
  /** A connected producer whose transactional id is initialised (opening did that, with the claim). */
  readonly producer: Producer;
  /** Makes a new (unconnected) producer with the shard's transactional id. */
  readonly newProducer: () => Producer;
  readonly reader: TopicReader;
  readonly tail: Tail;
  readonly attemptTimeoutMs: number;
  readonly retryForMs: number;
  readonly maxMessageBytes: number;
  readonly onStatus?: ((shardId: string, status: JournalWriteStatus) => void) | undefined;
}

const FIRST_BACKOFF_MS = 200;
const MAX_BACKOFF_MS = 5_000;
const DISCONNECT_TIMEOUT_MS = 10_000;

/** Kafka errors that no retry can fix: the write itself is refused. */
const PERMANENT_ERROR_TYPES = new Set([
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
  'INVALID_REQUIRED_ACKS',
  'INVALID_TOPIC_EXCEPTION',
  'INVALID_TRANSACTION_TIMEOUT',
  'UNSUPPORTED_VERSION',
  'UNSUPPORTED_FOR_MESSAGE_FORMAT',
  'TOPIC_AUTHORIZATION_FAILED',
  'GROUP_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  'SASL_AUTHENTICATION_FAILED',
]);

type Failure = 'fenced' | 'retriable' | 'permanent';

type Attempt<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown; readonly committing: boolean };

class AttemptTimeout extends Error {}

export class KafkaJournal implements Journal {
  readonly shardId: string;
  readonly topic: string;
  /** Identifies this store instance's messages in the journal topic. */
  readonly writerId: string;
  private readonly snapshotsTopic: string;
  private readonly newProducer: () => Producer;
  private readonly reader: TopicReader;
  private readonly attemptTimeoutMs: number;
  private readonly retryForMs: number;
  private readonly maxMessageBytes: number;
  private readonly onStatus: ((shardId: string, status: JournalWriteStatus) => void) | undefined;
  private readonly encoder = new EntryEncoder();
  private readonly hasher = new ChainHasher();
  /** The producer in use; dropped after any failed write (a new one is made for the next). */
  private producer: Producer | undefined;
  /** Counts dropped producers: one being made when its predecessor was dropped is never taken into use. */
  private generation = 0;
  private segments: Segment[];
  private base: number;
  private baseHead: Buffer;
  private next: number;
  private headBytes: Buffer;
  private kafkaEnd: number;
  private appending = false;
  /** Transactions of this shard's producer run one at a time (appends and snapshot saves). */
  private chain: Promise<unknown> = Promise.resolve();
  /** Set once the journal may no longer be written (a newer owner, an outcome unknown): every later write rejects. */
  private broken: Error | undefined;
  private writeStatus: JournalWriteStatus = { retrying: false, attempts: 0 };

  constructor(init: KafkaJournalInit) {
    this.shardId = init.shardId;
    this.topic = init.topic;
    this.writerId = init.writerId;
    this.snapshotsTopic = init.snapshotsTopic;
    this.producer = init.producer;
    this.newProducer = init.newProducer;
    this.reader = init.reader;
    this.attemptTimeoutMs = init.attemptTimeoutMs;
    this.retryForMs = init.retryForMs;
    this.maxMessageBytes = init.maxMessageBytes;
    this.onStatus = init.onStatus;
    this.segments = init.tail.segments;
    this.base = init.tail.base;
    this.baseHead = init.tail.baseHead;
    this.next = init.tail.next;
    this.headBytes = init.tail.head;
    this.kafkaEnd = init.tail.kafkaEnd;
  }

  nextOffset(): number {
    return this.next;
  }

  /** The first offset read() can serve (records before it were left out of memory). */
  firstReadableOffset(): number {
    return this.base;
  }

  /** The chain head after the last durable record (the genesis value of an empty journal), hex. */
  head(): string {
    return this.headBytes.toString('hex');
  }

  /** Why this journal accepts no more writes (fenced by a newer owner, or a write of unknown outcome). */
  get failure(): Error | undefined {
    return this.broken;
  }

  /** Whether a write is being retried, how often it failed, and the last failure. */
  status(): JournalWriteStatus {
    return this.writeStatus;
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
    let entries: EncodedEntry[];
    try {
      entries = this.encoder.encode(records, this.headBytes, this.maxMessageBytes);
    } catch (error) {
      return Promise.reject(asError(error));
    }
    this.appending = true;
    const headers = { [WRITER_HEADER]: this.writerId };
    const written = this.exclusive(
      'append',
      async (tx) => {
        const kafkaOffsets: number[] = [];
        // One send per entry: the broker's size limit applies to each produce batch.
        for (const entry of entries) {
          const [meta] = await tx.send({ topic: this.topic, acks: -1, messages: [{ key: this.shardId, value: entry.bytes, headers, partition: 0 }] });
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
      },
      (mine) => committedEntries(entries, mine),
    );
    return written.then(
      (kafkaOffsets) => {
        this.appending = false;
        entries.forEach((entry, i) => {
          const kafkaOffset = kafkaOffsets[i] as number;
          this.segments.push({ first: entry.first, count: entry.count, kafkaOffset, bytes: entry.bytes, head: entry.head });
          this.kafkaEnd = Math.max(this.kafkaEnd, kafkaOffset + 1);
        });
        this.next += records.length;
        const last = entries[entries.length - 1];
        if (last !== undefined) this.headBytes = last.head;
      },
      (error: unknown) => {
        this.appending = false;
        throw asError(error);
      },
    );
  }

  *read(fromOffset = 0): Generator<JournalRecord> {
    if (fromOffset < this.base) {
      throw new Error(
        `journal '${this.shardId}' holds records from offset ${this.base} in memory, not ${fromOffset}: open the store with fullJournal to read from the beginning`,
      );
    }
    yield* readSegments(this.segments, fromOffset);
  }

  /** The chain head after `offset`, hex, for offsets from firstReadableOffset() - 1 to the last record; undefined otherwise. */
  headAt(offset: number): string | undefined {
    if (offset < this.base - 1 || offset >= this.next) return undefined;
    if (offset === this.next - 1) return this.head();
    if (offset === this.base - 1) return this.baseHead.toString('hex');
    const s = this.segmentIndex(offset);
    const segment = this.segments[s] as Segment;
    const start = Math.max(segment.first, this.base);
    let head = start === this.base ? this.baseHead : (this.segments[s - 1] as Segment).head;
    const decoded = decodeEntry(segment.bytes);
    if (decoded === undefined) return undefined;
    for (let o = start; o <= offset; o++) head = this.hasher.next(head, decoded.records[o - segment.first] as Uint8Array);
    return head.toString('hex');
  }

  /** Stores a snapshot in the compacted topic, with the chain head at its offset, in a transaction of this shard's producer. */
  async saveSnapshot(snapshot: ShardSnapshot): Promise<void> {
    if (this.broken !== undefined) throw this.broken;
    // Encoded before taking the producer, a slice at a time: JSON.stringify of a large region's
    // actors at once held input up for tens of milliseconds, and appends must not wait behind it.
    const json = (await jsonInSlices(snapshot)) as string;
    await this.exclusive('snapshot save', async (tx) => {
      // Checked in turn (after any append in flight): a snapshot past the journal would make
      // recovery believe in records that are not there.
      if (snapshot.offset >= this.next) {
        throw new Error(`snapshot of '${this.shardId}' at offset ${snapshot.offset} is past its journal (next offset ${this.next}): save it once the journal is durable`);
      }
      const chainHead = this.headAt(snapshot.offset);
      if (chainHead === undefined) {
        throw new Error(`snapshot of '${this.shardId}' at offset ${snapshot.offset} is older than the journal held in memory (from ${this.base}): its chain head is not known here`);
      }
      // The snapshot's JSON object (encoded above) with the two members only known here added at its end.
      const value = `${json.slice(0, -1)},"journalKafkaOffset":${this.kafkaOffsetAfter(snapshot.offset)},"chainHead":${JSON.stringify(chainHead)}}`;
      await tx.send({ topic: this.snapshotsTopic, acks: -1, compression: CompressionTypes.GZIP, messages: [{ key: this.shardId, value, partition: 0 }] });
    });
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
    const lastDropped = this.segments[drop - 1] as Segment;
    this.segments = this.segments.slice(drop);
    const newBase = lastDropped.first + lastDropped.count;
    if (newBase > this.base) {
      this.base = newBase;
      this.baseHead = lastDropped.head;
    }
  }

  async disconnect(): Promise<void> {
    this.broken ??= new Error(`journal '${this.shardId}' is closed`);
    const producer = this.producer;
    this.producer = undefined;
    this.generation++;
    await producer?.disconnect();
  }

  // ---------------------------------------------------------------- writing

  /** Index of the segment holding `offset` (segments are in offset order), or 0. */
  private segmentIndex(offset: number): number {
    return segmentIndexOf(this.segments, offset);
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

  /**
   * Runs `work` in a transaction, after the writes before it, retrying as the
   * class comment says. `fromCommitted` tells, from this writer's messages found
   * committed after a failure, whether the failed attempt had committed after
   * all (and what it returned); without it a write is simply sent again.
   */
  private exclusive<T>(what: string, work: (tx: Transaction) => Promise<T>, fromCommitted?: (mine: readonly ReadMessage[]) => T | undefined): Promise<T> {
    const run = (): Promise<T> => this.withRetries(what, work, fromCommitted);
    const result = this.chain.then(run, run);
    this.chain = result.catch(() => undefined);
    return result;
  }

  private async withRetries<T>(what: string, work: (tx: Transaction) => Promise<T>, fromCommitted?: (mine: readonly ReadMessage[]) => T | undefined): Promise<T> {
    let attempts = 0;
    let sinceMs: number | undefined;
    for (;;) {
      if (this.broken !== undefined) throw this.broken;
      const attempt = await this.attempt(work);
      if (attempt.ok) {
        if (attempts > 0) this.setStatus({ retrying: false, attempts: 0, ...this.lastError() });
        return attempt.value;
      }
      const failure = classify(attempt.error);
      if (failure === 'permanent') {
        this.dropProducer();
        if (attempts > 0) this.setStatus({ retrying: false, attempts: 0, lastError: errorMessage(attempt.error) });
        if (attempt.committing) throw this.close(`a ${what} failed while committing (${errorMessage(attempt.error)}); its outcome is unknown, reopen the store`, attempt.error);
        throw attempt.error;
      }
      attempts++;
      sinceMs ??= Date.now();
      this.setStatus({ retrying: true, attempts, lastError: errorMessage(attempt.error), retryingSinceMs: sinceMs });
      this.dropProducer();
      const deadlineMs = sinceMs + this.retryForMs;
      const settled = await this.settle(what, failure === 'fenced', fromCommitted, deadlineMs, () => ++attempts, sinceMs);
      if (settled.committed) {
        this.setStatus({ retrying: false, attempts: 0, ...this.lastError() });
        return settled.value as T;
      }
      if (Date.now() >= deadlineMs) {
        // Not committed, and known to be: the journal stays as it was, only this write is refused.
        this.setStatus({ retrying: false, attempts: 0, ...this.lastError() });
        throw new Error(`journal '${this.shardId}': a ${what} could not be written within ${this.retryForMs} ms of retrying (last failure: ${this.writeStatus.lastError ?? 'unknown'})`, {
          cause: attempt.error,
        });
      }
      // No pause here: the broker just answered the settling read, so it is worth trying at once
      // (settle backs off itself while the broker cannot be reached).
    }
  }

  /** One transaction with the current producer (made and initialised first if there is none). */
  private async attempt<T>(work: (tx: Transaction) => Promise<T>): Promise<Attempt<T>> {
    let committing = false;
    let tx: Transaction | undefined;
    const run = (async () => {
      const producer = await this.producerReady();
      tx = await producer.transaction();
      const value = await work(tx);
      committing = true;
      await tx.commit();
      return value;
    })();
    try {
      return { ok: true, value: await withTimeout(run, this.attemptTimeoutMs, () => new AttemptTimeout(`an attempt took more than ${this.attemptTimeoutMs} ms`)) };
    } catch (error) {
      run.catch(() => undefined); // an abandoned attempt ends on its own; the new producer's epoch fences it
      // A write the broker refused for good is aborted now, so its open transaction does not hold
      // back readers until it times out; after a retriable failure the next initialisation aborts it.
      if (!committing && classify(error) === 'permanent' && tx?.isActive() === true) {
        await withTimeout(tx.abort(), DISCONNECT_TIMEOUT_MS, () => new AttemptTimeout('abort')).catch(() => undefined);
      }
      return { ok: false, error, committing };
    }
  }

  /**
   * After a failed attempt: with a new producer (whose initialisation ends the
   * failed transaction), reads the committed messages after the last one known
   * here. Another writer's message means a newer owner: the journal closes.
   * Otherwise `fromCommitted` decides whether the attempt had committed. Retries
   * itself until it knows, or until `deadlineMs` (then the outcome is unknown and
   * the journal closes).
   */
  private async settle<T>(
    what: string,
    fenced: boolean,
    fromCommitted: ((mine: readonly ReadMessage[]) => T | undefined) | undefined,
    deadlineMs: number,
    countAttempt: () => number,
    sinceMs: number,
  ): Promise<{ committed: boolean; value?: T }> {
    if (fenced) {
      // Read-only first: a newer owner that claimed the journal is told apart without fencing it back.
      const before = await this.committedTail().catch(() => undefined);
      if (before !== undefined) this.closeIfForeign(before.messages);
    }
    for (;;) {
      if (this.broken !== undefined) throw this.broken;
      let tail: { messages: ReadMessage[]; to: number };
      try {
        await withTimeout(this.producerReady(), this.attemptTimeoutMs, () => new AttemptTimeout(`initialising a producer took more than ${this.attemptTimeoutMs} ms`));
        tail = await this.committedTail();
      } catch (error) {
        this.dropProducer();
        const attempts = countAttempt();
        this.setStatus({ retrying: true, attempts, lastError: errorMessage(error), retryingSinceMs: sinceMs });
        if (Date.now() >= deadlineMs) {
          this.setStatus({ retrying: false, attempts: 0, lastError: errorMessage(error) });
          throw this.close(`a ${what} failed and the broker could not be reached to learn its outcome within ${this.retryForMs} ms (${errorMessage(error)}); reopen the store`, error);
        }
        await sleepMs(backoffMs(attempts));
        continue;
      }
      this.closeIfForeign(tail.messages);
      let value: T | undefined;
      try {
        value = fromCommitted?.(tail.messages);
      } catch (error) {
        throw this.close(`after a failed ${what}: ${errorMessage(error)}; reopen the store`, error);
      }
      this.kafkaEnd = Math.max(this.kafkaEnd, tail.to);
      return value === undefined ? { committed: false } : { committed: true, value };
    }
  }

  /** The committed messages of the journal topic after the last one known here. */
  private async committedTail(): Promise<{ messages: ReadMessage[]; to: number }> {
    // Bounded like an attempt: a broker still coming up would otherwise hold this past many retries.
    const to = await withTimeout(this.reader.endOffset(this.topic), this.attemptTimeoutMs, () => new AttemptTimeout(`asking for the journal's end took more than ${this.attemptTimeoutMs} ms`));
    const messages: ReadMessage[] = [];
    await this.reader.read([{ topic: this.topic, from: this.kafkaEnd, to }], { timeoutMs: this.attemptTimeoutMs }, (message) => messages.push(message));
    return { messages, to };
  }

  private closeIfForeign(messages: readonly ReadMessage[]): void {
    const foreign = messages.find((m) => classifyJournalMessage(m.value, m.headers).writer !== this.writerId);
    if (foreign === undefined) return;
    const kind = classifyJournalMessage(foreign.value, foreign.headers).kind;
    throw this.close(
      `journal '${this.shardId}' was taken over by a newer owner (fenced, and its topic holds another writer's ${kind === 'claim' ? 'claim' : 'message'} at Kafka offset ${foreign.kafkaOffset}); this store may not write it any more`,
      undefined,
    );
  }

  /** Closes the journal for writing (the first reason stays); returns the error every later write gets. */
  private close(message: string, cause: unknown): Error {
    const broken = (this.broken ??= new Error(message, cause === undefined ? undefined : { cause }));
    this.setStatus({ ...this.writeStatus, retrying: false, failed: broken.message });
    return broken;
  }

  private async producerReady(): Promise<Producer> {
    if (this.broken !== undefined) throw this.broken;
    if (this.producer !== undefined) return this.producer;
    const generation = this.generation;
    const producer = this.newProducer();
    try {
      await producer.connect();
      // kafkajs initialises the producer id lazily, on the first transaction: this is the re-initialisation.
      const init = await producer.transaction();
      await init.abort();
      if (generation !== this.generation || this.broken !== undefined) throw new AttemptTimeout('a producer made for an abandoned attempt');
    } catch (error) {
      disconnectQuietly(producer);
      throw error;
    }
    this.producer = producer;
    return producer;
  }

  /** Never reuses a producer after a failure: its epoch and sequence numbers may no longer be trusted. */
  private dropProducer(): void {
    const producer = this.producer;
    this.producer = undefined;
    this.generation++;
    if (producer !== undefined) disconnectQuietly(producer);
  }

  private lastError(): { lastError?: string } {
    return this.writeStatus.lastError === undefined ? {} : { lastError: this.writeStatus.lastError };
  }

  private setStatus(status: JournalWriteStatus): void {
    this.writeStatus = status;
    try {
      this.onStatus?.(this.shardId, status);
    } catch {
      // An observer's failure must not change what the journal does.
    }
  }
}

/**
 * The Kafka offsets of an append's entries, when all of them are among this
 * writer's committed messages; undefined when none is (it did not commit).
 */
function committedEntries(entries: readonly EncodedEntry[], messages: readonly ReadMessage[]): number[] | undefined {
  const found = new Map<number, ReadMessage>();
  for (const message of messages) {
    const kind = classifyJournalMessage(message.value, message.headers);
    if (kind.kind !== 'entry') continue;
    const entry = entries.find((e) => e.bytes.equals(kind.bytes));
    if (entry !== undefined) found.set(entry.first, message);
  }
  if (found.size === 0) return undefined;
  if (found.size !== entries.length) {
    throw new Error(`only ${found.size} of the ${entries.length} messages of one transaction are committed: the journal topic is inconsistent`);
  }
  return entries.map((e) => (found.get(e.first) as ReadMessage).kafkaOffset);
}

/** Whether a producer was fenced (a newer epoch of its transactional id exists: another owner, or the broker's timeout). */
export function isFenced(error: unknown): boolean {
  return classify(error) === 'fenced';
}

function classify(error: unknown): Failure {
  let kafkaError = false;
  const seen = new Set<unknown>();
  for (let current: unknown = error; typeof current === 'object' && current !== null && !seen.has(current); ) {
    seen.add(current);
    const e = current as { name?: unknown; type?: unknown; code?: unknown; cause?: unknown; originalError?: unknown };
    if (e.type === 'INVALID_PRODUCER_EPOCH' || e.type === 'PRODUCER_FENCED' || e.code === 47 || e.code === 90) return 'fenced';
    if (typeof e.type === 'string' && PERMANENT_ERROR_TYPES.has(e.type)) return 'permanent';
    if (current instanceof AttemptTimeout || (typeof e.name === 'string' && e.name.startsWith('KafkaJS'))) kafkaError = true;
    current = e.originalError ?? e.cause;
  }
  // Anything not from the client (a bug, a check of ours) is not made better by retrying.
  return kafkaError ? 'retriable' : 'permanent';
}

function disconnectQuietly(producer: Producer): void {
  void withTimeout(producer.disconnect(), DISCONNECT_TIMEOUT_MS, () => new AttemptTimeout('disconnect')).catch(() => undefined);
}

function backoffMs(attempts: number): number {
  return Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** Math.min(10, attempts - 1));
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

/** The index of the segment holding `offset` (the last one starting at or before it). */
export function segmentIndexOf(segments: readonly Segment[], offset: number): number {
  let lo = 0;
  let hi = segments.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((segments[mid] as Segment).first <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** The records of journal messages in memory from `fromOffset` on, decoded as read (what a reopened store would return). */
export function* readSegments(segments: readonly Segment[], fromOffset: number): Generator<JournalRecord> {
  for (let s = segmentIndexOf(segments, fromOffset); s < segments.length; s++) {
    const segment = segments[s] as Segment;
    if (segment.first + segment.count <= fromOffset) continue;
    const lines = segment.bytes.toString('utf8').split('\n');
    for (let i = Math.max(0, fromOffset - segment.first); i < segment.count; i++) yield decodeRecord(segment.first + i, lines[i + 1] as string);
  }
}
