import { randomUUID } from 'node:crypto';
import type { Admin, IHeaders, Kafka } from 'kafkajs';

/** What to read of one topic: partition 0 from `from` up to `to` (Kafka offsets). */
export interface ReadPlan {
  readonly topic: string;
  /** Kafka offset to start from. */
  readonly from: number;
  /** Kafka offset to read up to (exclusive): the last stable offset when reading starts. */
  readonly to: number;
}

/** A committed message as read (read_committed: aborted transactions never show). */
export interface ReadMessage {
  readonly topic: string;
  readonly kafkaOffset: number;
  readonly key: string | undefined;
  readonly value: Buffer | null;
  readonly headers: IHeaders | undefined;
}

export interface ReadOptions {
  /** Also stop once no fetch has brought anything for this long (compacted topics, whose end may hold no message). */
  readonly idleStopMs?: number;
  /** Fail if reading takes longer (default: the reader's). */
  readonly timeoutMs?: number;
}

/** The text of a message header, or undefined when absent. */
export function headerText(headers: IHeaders | undefined, name: string): string | undefined {
  const value = headers?.[name];
  const one = Array.isArray(value) ? value[0] : value;
  return one === undefined ? undefined : one.toString();
}

/**
 * Reads single-partition topics from one Kafka offset to another, read_committed,
 * with a throwaway consumer group (kafkajs has no group-less consumer). Used to
 * preload journals and snapshots, to settle a write whose outcome is unknown,
 * and by the audit.
 */
export class TopicReader {
  constructor(
    private readonly kafka: Kafka,
    private readonly admin: Admin,
    private readonly clientId: string,
    private readonly timeoutMs: number,
  ) {}

  /** The last stable offset of partition 0 (kafkajs lists offsets read_committed: `high` is it). */
  async endOffset(topic: string): Promise<number> {
    const offsets = await this.admin.fetchTopicOffsets(topic);
    return Number(offsets.find((o) => o.partition === 0)?.high ?? '0');
  }

  /** The first offset still held by partition 0 (above 0 once records were deleted from its start). */
  async startOffset(topic: string): Promise<number> {
    const offsets = await this.admin.fetchTopicOffsets(topic);
    return Number(offsets.find((o) => o.partition === 0)?.low ?? '0');
  }

  /**
   * Reads partition 0 of each planned topic from `from` until its position reaches `to`,
   * handing over each message in offset order. A handler that throws ends the read with its error.
   */
  async read(plans: readonly ReadPlan[], options: ReadOptions, onMessage: (message: ReadMessage) => void): Promise<void> {
    const todo = plans.filter((p) => p.from < p.to);
    if (todo.length === 0) return;
    const groupId = `${this.clientId}-read-${randomUUID()}`;
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
      // kafkajs restarts a consumer after a retriable crash (a coordinator still loading after a
      // broker restart): only a crash it gives up on ends the read.
      consumer.on(consumer.events.CRASH, ({ payload }) => {
        if (!payload.restart) failure ??= payload.error;
      });
      await consumer.subscribe({ topics: todo.map((p) => p.topic), fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatch: ({ batch }) => {
          if (batch.partition !== 0 || failure !== undefined) return Promise.resolve();
          const end = target.get(batch.topic) ?? 0;
          try {
            for (const message of batch.messages) {
              const kafkaOffset = Number(message.offset);
              // Skip what precedes the start (or was handed over already) and what was not there when we started.
              if (kafkaOffset < (accepted.get(batch.topic) ?? 0) || kafkaOffset >= end) continue;
              accepted.set(batch.topic, kafkaOffset + 1);
              onMessage({ topic: batch.topic, kafkaOffset, key: message.key?.toString(), value: message.value, headers: message.headers });
            }
          } catch (error) {
            failure ??= error instanceof Error ? error : new Error(String(error));
          }
          return Promise.resolve();
        },
      });
      for (const p of todo) {
        if (p.from === 0) continue;
        try {
          consumer.seek({ topic: p.topic, partition: 0, offset: String(p.from) });
        } catch {
          // A consumer restarting after a crash takes no seek: it reads from the beginning, and
          // what precedes `from` is skipped above (slower, still exact).
        }
      }
      const startedMs = Date.now();
      const timeoutMs = options.timeoutMs ?? this.timeoutMs;
      lastProgressMs = startedMs;
      for (;;) {
        if (failure !== undefined) throw failure;
        if (done()) return;
        const nowMs = Date.now();
        if (options.idleStopMs !== undefined && nowMs - lastProgressMs >= options.idleStopMs) return;
        if (nowMs - startedMs > timeoutMs) {
          const behind = todo.filter((p) => (position.get(p.topic) ?? 0) < p.to).map((p) => `${p.topic} at ${position.get(p.topic)} of ${p.to}`);
          throw new Error(`reading took more than ${timeoutMs} ms (${behind.join(', ')})`);
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      await consumer.disconnect().catch(() => undefined);
      await this.admin.deleteGroups([groupId]).catch(() => undefined);
    }
  }
}
