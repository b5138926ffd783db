import type { ConnectionOptions } from 'node:tls';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import type { Journal, JournalRecord, JournalStore } from '../../runtime/journal.js';
import type { ShardSnapshot, SnapshotStore } from '../../runtime/snapshot-store.js';
import { readSegments, type Tail } from './kafka-journal.js';
import { journalTopic, latestSnapshots, preloadJournals, quietKafka, snapshotsTopic, type StoredSnapshot } from './kafka-store.js';
import { TopicReader } from './topic-reader.js';

export interface KafkaJournalReaderOptions {
  readonly brokers: readonly string[];
  readonly ssl?: ConnectionOptions | undefined;
  readonly shardIds: readonly string[];
  readonly clientId: string;
  readonly topicPrefix?: string | undefined;
  /** Reading the journals fails if it takes longer. Default 10 minutes. */
  readonly readTimeoutMs?: number;
}

/**
 * Kafka journals read whole, for looking back (the inspector's time travel, a
 * comparison in a test), never for writing: unlike KafkaStore.open it claims
 * nothing and fences no one, so it runs beside the live owner. Each journal is
 * checked against its hash chain as it is read, from its genesis. Only the
 * latest snapshot of each shard is known (the snapshots topic is compacted):
 * points before it are rebuilt from the journal's start.
 */
export class KafkaJournalReader implements JournalStore, SnapshotStore {
  static async open(options: KafkaJournalReaderOptions): Promise<KafkaJournalReader> {
    const prefix = options.topicPrefix ?? '';
    const shardIds = [...new Set(options.shardIds)].sort();
    const clientLog: string[] = [];
    const kafka = quietKafka({ clientId: options.clientId, brokers: options.brokers, ssl: options.ssl }, clientLog);
    const admin = kafka.admin();
    await admin.connect();
    try {
      const existing = new Set(await admin.listTopics());
      const reader = new TopicReader(kafka, admin, options.clientId, options.readTimeoutMs ?? 600_000);
      const snapshots = existing.has(snapshotsTopic(prefix)) ? await latestSnapshots(reader, snapshotsTopic(prefix), new Set(shardIds)) : new Map<string, StoredSnapshot>();
      const present = shardIds.filter((id) => existing.has(journalTopic(prefix, id)));
      const tails = await preloadJournals(
        reader,
        present.map((shardId) => ({ shardId, topic: journalTopic(prefix, shardId), snapshot: undefined })),
      );
      return new KafkaJournalReader(
        tails,
        new Map([...snapshots].map(([id, stored]) => [id, stored.snapshot])),
      );
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  private constructor(
    private readonly tails: ReadonlyMap<string, Tail>,
    private readonly snapshots: ReadonlyMap<string, ShardSnapshot>,
  ) {}

  journal(shardId: string): Journal {
    const tail = this.tails.get(shardId);
    const segments = tail?.segments ?? [];
    const next = tail?.next ?? 0;
    return {
      nextOffset: () => next,
      read: (fromOffset = 0): Iterable<JournalRecord> => readSegments(segments, fromOffset),
      append: () => Promise.reject(new ArcError(ErrorCodes.INVARIANT, 'a Kafka journal opened for reading takes no appends')),
    };
  }

  shardIds(): string[] {
    return [...this.tails.keys()];
  }

  save(): Promise<void> {
    return Promise.reject(new ArcError(ErrorCodes.INVARIANT, 'a Kafka journal opened for reading takes no snapshots'));
  }

  latest(shardId: string, maxOffset = Number.MAX_SAFE_INTEGER): ShardSnapshot | undefined {
    const snapshot = this.snapshots.get(shardId);
    return snapshot !== undefined && snapshot.offset <= maxOffset ? snapshot : undefined;
  }

  offsets(shardId: string): number[] {
    const snapshot = this.snapshots.get(shardId);
    return snapshot === undefined ? [] : [snapshot.offset];
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
