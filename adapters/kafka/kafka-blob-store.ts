import type { Admin, Kafka, Producer } from 'kafkajs';
import { SHA256_HEX, sha256Hex, type BlobStore } from '../../runtime/blob-store.js';
import { TopicReader } from './topic-reader.js';

/**
 * A Kafka region's blob store: a compacted topic keyed by SHA-256 (one
 * partition), because a Kafka region has no data folder, and a process that
 * takes a geozone over must find every weight vector its journal names by hash.
 * Compaction keeps one copy per key forever (the same key always carries the
 * same bytes). Each process keeps what it read in memory (bounded): it reads
 * the topic at start, and on a miss reads on from where it stopped, so blobs
 * another process wrote since (before handing a geozone over) are found.
 */
export const BLOB_TOPIC = 'arc.blobs';
/** Largest blob, and the topic's max.message.bytes: weights of the models trained here are a few KiB. */
export const MAX_KAFKA_BLOB_BYTES = 8 * 1024 * 1024;

export class KafkaBlobStore implements BlobStore {
  private readonly blobs = new Map<string, Uint8Array>();
  private bytes = 0;
  /** Next Kafka offset to read. */
  private position = 0;
  private catchingUp: Promise<void> | undefined;
  private readonly reader: TopicReader;

  constructor(
    private readonly admin: Admin,
    private readonly producer: Producer,
    kafka: Kafka,
    clientId: string,
    private readonly topic = BLOB_TOPIC,
    /** Blobs kept in memory at most (bytes); beyond it a put is refused. */
    private readonly maxBytes = 512 * 1024 * 1024,
  ) {
    this.reader = new TopicReader(kafka, admin, clientId, 60_000);
  }

  /** Creates the compacted topic when missing and reads what it holds. */
  async start(): Promise<void> {
    const existing = await this.admin.listTopics();
    if (!existing.includes(this.topic)) {
      await this.admin.createTopics({
        waitForLeaders: true,
        topics: [
          {
            topic: this.topic,
            numPartitions: 1,
            configEntries: [
              { name: 'cleanup.policy', value: 'compact' },
              { name: 'retention.ms', value: '-1' },
              { name: 'max.message.bytes', value: String(MAX_KAFKA_BLOB_BYTES + 1024) },
            ],
          },
        ],
      });
    }
    this.position = await this.reader.startOffset(this.topic);
    await this.catchUp();
  }

  async put(bytes: Uint8Array): Promise<string> {
    if (bytes.byteLength > MAX_KAFKA_BLOB_BYTES) throw new RangeError(`a blob of ${bytes.byteLength} bytes is over the ${MAX_KAFKA_BLOB_BYTES}-byte limit`);
    const sha = sha256Hex(bytes);
    if (this.blobs.has(sha)) return sha;
    // acks: all in-sync replicas; resolves once the broker has it, the same durability as a journal write.
    await this.producer.send({ topic: this.topic, acks: -1, messages: [{ key: sha, value: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) }] });
    this.keep(sha, Uint8Array.from(bytes));
    return sha;
  }

  async get(sha256: string): Promise<Uint8Array | undefined> {
    if (!SHA256_HEX.test(sha256)) return undefined;
    const kept = this.blobs.get(sha256);
    if (kept !== undefined) return kept;
    await this.catchUp();
    return this.blobs.get(sha256);
  }

  async has(sha256: string): Promise<boolean> {
    return (await this.get(sha256)) !== undefined;
  }

  /** Reads from where the last read stopped to the topic's end now (one read at a time). */
  private catchUp(): Promise<void> {
    this.catchingUp ??= (async () => {
      try {
        const end = await this.reader.endOffset(this.topic);
        await this.reader.read([{ topic: this.topic, from: this.position, to: end }], { idleStopMs: 2_000 }, (message) => {
          this.position = message.kafkaOffset + 1;
          const key = message.key;
          // A message whose key is not the hash of its bytes is not ours: never served.
          if (key === undefined || message.value === null || sha256Hex(message.value) !== key) return;
          this.keep(key, new Uint8Array(message.value));
        });
        this.position = Math.max(this.position, end);
      } finally {
        this.catchingUp = undefined;
      }
    })();
    return this.catchingUp;
  }

  private keep(sha: string, bytes: Uint8Array): void {
    if (this.blobs.has(sha)) return;
    if (this.bytes + bytes.byteLength > this.maxBytes) throw new RangeError(`the blob store holds ${this.bytes} bytes in memory; the limit is ${this.maxBytes}`);
    this.blobs.set(sha, bytes);
    this.bytes += bytes.byteLength;
  }
}
