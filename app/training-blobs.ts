import type { Logger } from 'pino';
import { kafkaClient } from '../adapters/kafka/kafka-client.js';
import { KafkaBlobStore } from '../adapters/kafka/kafka-blob-store.js';
import { LmdbBlobStore } from '../adapters/lmdb/lmdb-blob-store.js';
import type { BlobStore } from '../runtime/blob-store.js';
import { realScheduler } from '../runtime/clock.js';
import type { JournalOptions } from './region-process.js';

/** How long to wait before trying a broker that could not be reached again. */
const RETRY_MS = 2_000;

/**
 * Where a region keeps training weights by hash: LMDB beside the journal in the
 * data folder, or, for a Kafka region (no data folder), the compacted blob
 * topic, so a process taking a geozone over finds them. Until the Kafka store
 * has read its topic, puts and gets wait for it.
 */
export function trainingBlobStore(journal: JournalOptions, log: Logger): { blobs: BlobStore; start(): void; close(): Promise<void> } {
  if (journal.kind === 'lmdb') {
    const store = new LmdbBlobStore(journal.dataDir, { encryptionKey: journal.encryptionKey });
    return { blobs: store, start: () => undefined, close: () => store.close() };
  }
  const kafka = kafkaClient(journal.brokers, `${journal.clientId ?? `arcnet-region-${process.pid}`}-blobs`, journal.ssl);
  const admin = kafka.admin();
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  const store = new KafkaBlobStore(admin, producer, kafka, `${journal.clientId ?? `arcnet-region-${process.pid}`}-blobs`);
  let closed = false;
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  const attempt = (): void => {
    if (closed) return;
    void (async () => {
      await admin.connect();
      await producer.connect();
      await store.start();
    })().then(markReady, (error: unknown) => {
      log.warn({ err: error }, 'the training blob topic could not be read yet; retrying');
      realScheduler.after(RETRY_MS, attempt);
    });
  };
  const blobs: BlobStore = {
    put: async (bytes) => (await ready, store.put(bytes)),
    get: async (sha) => (await ready, store.get(sha)),
    has: async (sha) => (await ready, store.has(sha)),
  };
  return {
    blobs,
    start: attempt,
    close: async () => {
      closed = true;
      await producer.disconnect();
      await admin.disconnect();
    },
  };
}
