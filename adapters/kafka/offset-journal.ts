import type { Journal, JournalRecord } from '../../runtime/journal.js';
import type { ConsumerOffsets, JournalWriteStatus, KafkaJournal } from './kafka-journal.js';

/**
 * A shard's Kafka journal that commits the input offsets with the records they
 * produced, in the same transaction (exactly-once input): after an input was
 * processed, `consumed()` notes its topic-partition, its next offset and the last
 * journal offset the shard had reached by then; an append of records up to L
 * carries every noted offset whose records are all <= L. Inputs that produced no
 * record are committed with the next append, or by `commitDurable()` (offsets only).
 *
 * All writes to the inner journal go one at a time through a chain, so an
 * offsets-only commit never overlaps the shard's own append.
 */
export class OffsetJournal implements Journal {
  private readonly inner: KafkaJournal;
  private readonly groupId: string;
  /** Consumed inputs in processing order: their records are <= afterRecord. */
  private marks: { afterRecord: number; topic: string; partition: number; next: string }[] = [];
  private chain: Promise<void> = Promise.resolve();

  constructor(inner: KafkaJournal, groupId: string) {
    this.inner = inner;
    this.groupId = groupId;
  }

  consumed(topic: string, partition: number, offset: string, afterRecord: number): void {
    this.marks.push({ afterRecord, topic, partition, next: (BigInt(offset) + 1n).toString() });
  }

  /** Inputs noted but not yet committed. */
  get uncommitted(): number {
    return this.marks.length;
  }

  append(records: readonly JournalRecord[]): Promise<void> {
    const last = records[records.length - 1]?.offset ?? this.inner.nextOffset() - 1;
    const offsets = this.take(last);
    return this.enqueue(() => this.inner.appendWithOffsets(records, offsets));
  }

  /** Commits the offsets of inputs whose records are durable up to `durableOffset` (no records). */
  commitDurable(durableOffset: number): Promise<void> {
    const offsets = this.take(durableOffset);
    if (offsets === undefined) return this.chain;
    return this.enqueue(() => this.inner.appendWithOffsets([], offsets));
  }

  read(fromOffset?: number): Iterable<JournalRecord> {
    return this.inner.read(fromOffset);
  }

  nextOffset(): number {
    return this.inner.nextOffset();
  }

  /** The inner journal's write status: a write being retried (broker unreachable) means the shard is not ready. */
  status(): JournalWriteStatus {
    return this.inner.status();
  }

  private enqueue(write: () => Promise<void>): Promise<void> {
    const run = this.chain.then(write, write);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Removes and merges (highest next offset per topic-partition) the marks covered by `uptoRecord`. */
  private take(uptoRecord: number): ConsumerOffsets | undefined {
    let n = 0;
    while (n < this.marks.length && (this.marks[n] as (typeof this.marks)[number]).afterRecord <= uptoRecord) n++;
    if (n === 0) return undefined;
    const taken = this.marks.slice(0, n);
    this.marks = this.marks.slice(n);
    const byTopic = new Map<string, Map<number, string>>();
    for (const m of taken) {
      let partitions = byTopic.get(m.topic);
      if (partitions === undefined) byTopic.set(m.topic, (partitions = new Map<number, string>()));
      const prev = partitions.get(m.partition);
      if (prev === undefined || BigInt(m.next) > BigInt(prev)) partitions.set(m.partition, m.next);
    }
    return {
      groupId: this.groupId,
      topics: [...byTopic].map(([topic, partitions]) => ({ topic, partitions: [...partitions].map(([partition, offset]) => ({ partition, offset })) })),
    };
  }
}
