import { randomUUID } from 'node:crypto';
import type { ConnectionOptions } from 'node:tls';
import type { Consumer } from 'kafkajs';
import type { Logger } from 'pino';
import { trainingTopics } from '../actors/training-wire.js';
import { kafkaClient } from '../adapters/kafka/kafka-client.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import { realScheduler } from '../runtime/clock.js';
import type { TrainingIngress } from './bus-edge.js';

/** Codes that say the message itself is bad: dead-lettered (by one process: see below). */
const POISON: ReadonlySet<string> = new Set([ErrorCodes.VALIDATION, ErrorCodes.MALFORMED_JSON, ErrorCodes.PAYLOAD_TOO_LARGE, ErrorCodes.DATASET, ErrorCodes.BLOB_MISSING]);
/** Codes that say the message is for a geozone or job elsewhere, or already taken: passed over. */
const NOT_HERE: ReadonlySet<string> = new Set([ErrorCodes.FORBIDDEN, ErrorCodes.UNKNOWN_SHARD, ErrorCodes.DUPLICATE_JOB, ErrorCodes.NOT_FOUND]);
const RESTART_AFTER_MS = 1_000;

/**
 * A Kafka region's edge for the federated path: FederatedTask v1 on
 * arc.scheduler.training and TrainingUpdate v1 on arc.result.training, through
 * the same validation as HTTP and the agent channel. Every process of the group
 * reads both topics whole (a consumer group of its own, from the beginning) and
 * acts on what concerns the geozones it owns now; a job id is taken once, so
 * reading a task again changes nothing. When it takes a geozone over it reads
 * them again, so a task published while the geozone had no owner is not lost.
 * A poison message is dead-lettered by the owner of the federation's first
 * geozone only, so the group writes one dead letter, not one per process.
 */
export function startKafkaTrainingEdge(options: {
  brokers: readonly string[];
  ssl?: ConnectionOptions | undefined;
  clientId: string;
  deadLetterTopic: string;
  federation: readonly string[];
  owned: () => readonly string[];
  handle: TrainingIngress;
  log: Logger;
}): { restart(): void; stop(): Promise<void>; counters: { accepted: number; deadLettered: number; passedOver: number } } {
  const kafka = kafkaClient(options.brokers, `${options.clientId}-training`, options.ssl);
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  const admin = kafka.admin();
  const counters = { accepted: 0, deadLettered: 0, passedOver: 0 };
  const first = [...options.federation].sort()[0];
  let consumer: Consumer | undefined;
  let stopped = false;
  let pending: (() => void) | undefined;
  let running: Promise<void> = Promise.resolve();

  const ensureTopics = async (): Promise<void> => {
    const existing = await admin.listTopics();
    const missing = [trainingTopics.scheduler, trainingTopics.result].filter((t) => !existing.includes(t));
    if (missing.length > 0) await admin.createTopics({ waitForLeaders: true, topics: missing.map((topic) => ({ topic, numPartitions: 1 })) });
  };

  const deadLetter = async (topic: string, value: Buffer, error: ArcError): Promise<void> => {
    if (first === undefined || !options.owned().includes(first)) return;
    await producer.send({
      topic: options.deadLetterTopic,
      acks: -1,
      messages: [{ partition: 0, value, headers: { 'x-arcnet-error-code': error.code, 'x-arcnet-error-message': error.message.slice(0, 1024), 'x-arcnet-source-topic': topic } }],
    });
    counters.deadLettered++;
  };

  const run = async (): Promise<void> => {
    await consumer?.disconnect().catch(() => undefined);
    if (stopped) return;
    await admin.connect();
    await producer.connect();
    await ensureTopics();
    const next = kafka.consumer({ groupId: `${options.clientId}-training-${randomUUID()}`, allowAutoTopicCreation: false, maxWaitTimeInMs: 200 });
    consumer = next;
    await next.connect();
    await next.subscribe({ topics: [trainingTopics.scheduler, trainingTopics.result], fromBeginning: true });
    await next.run({
      eachMessage: async ({ topic, message }) => {
        if (message.value === null) return;
        const raw = message.value.toString('utf8');
        const kind = topic === trainingTopics.scheduler ? 'task' : 'update';
        // The region's own train messages for the nodes share the scheduler topic: not inputs.
        if (kind === 'task' && raw.includes('"type":"train"')) return;
        try {
          await options.handle(kind, raw);
          counters.accepted++;
        } catch (error) {
          if (error instanceof ArcError && NOT_HERE.has(error.code)) counters.passedOver++;
          else if (error instanceof ArcError && POISON.has(error.code)) await deadLetter(topic, message.value, error);
          else options.log.warn({ err: error, topic }, 'training input refused');
        }
      },
    });
  };

  const restart = (): void => {
    if (stopped) return;
    pending?.();
    // Takeovers come in bursts (one per geozone): one re-read after the last.
    pending = realScheduler.after(RESTART_AFTER_MS, () => {
      pending = undefined;
      running = running.then(run).catch((error: unknown) => {
        options.log.warn({ err: error }, 'the training topics could not be read; retrying');
        restart();
      });
    });
  };

  return {
    restart,
    counters,
    stop: async () => {
      stopped = true;
      pending?.();
      await running.catch(() => undefined);
      await consumer?.disconnect().catch(() => undefined);
      await producer.disconnect().catch(() => undefined);
      await admin.disconnect().catch(() => undefined);
    },
  };
}
