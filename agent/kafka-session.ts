import type { Logger } from 'pino';
import { topics } from '../adapters/bus/topics.js';
import { connectAgentKafka, type AgentKafka } from '../adapters/kafka/agent-kafka.js';
import { BLOB_TOPIC } from '../adapters/kafka/kafka-blob-store.js';
import { signNodeMessage } from '../adapters/security/node-identity.js';
import { inferenceDispatchSchema } from '../actors/wire-out.js';
import { trainingTopics, type TrainingUpdateV1 } from '../actors/training-wire.js';
import type { InferenceResultV1, NodeTelemetryV2 } from '../actors/wire.js';
import { realScheduler } from '../runtime/clock.js';
import type { AgentLimits, AgentUplink } from './agent-options.js';
import { Backoff } from './backoff.js';
import type { ResultOutbox } from './result-outbox.js';
import { updateKey, type UpdateOutbox } from './update-outbox.js';
import type { Uplink, UplinkHandlers, UplinkStats } from './uplink.js';

export interface KafkaSessionOptions {
  readonly nodeId: string;
  readonly geozone: string;
  readonly uplink: Extract<AgentUplink, { kind: 'kafka' }>;
  readonly limits: AgentLimits;
  readonly outbox: ResultOutbox;
  readonly updates: UpdateOutbox;
  readonly handlers: UplinkHandlers;
  readonly logger: Logger;
}

/**
 * The agent on Kafka, as the seed draws Layer 1: telemetry to arc.telemetry.node,
 * results to arc.result.inference (each signed with the node certificate when one
 * is given, for a region started with --node-ca), dispatches from
 * arc.command.dispatch.<geozone> in the node's own consumer group, only its own
 * node's, de-duplicated by request id (the topic is at least once). A result is
 * owed until the broker acknowledged it; a failed send is retried with backoff.
 * Federated training: this node's `train` messages from arc.scheduler.training
 * (starting weights read by hash from arc.blobs), and its updates to
 * arc.result.training, signed like its telemetry.
 */
export class KafkaSession implements Uplink {
  private kafka: AgentKafka | undefined;
  private closing = false;
  private connected = false;
  private telemetryAccepted = 0;
  private reconnects = 0;
  private readonly connectBackoff: Backoff;
  private readonly sending = new Set<string>();
  private cancelRetry: (() => void) | undefined;
  private taking = true;

  constructor(private readonly options: KafkaSessionOptions) {
    this.connectBackoff = new Backoff(options.limits.reconnectMinMs, options.limits.reconnectMaxMs);
  }

  get stats(): UplinkStats {
    return { reconnects: this.reconnects, telemetryAccepted: this.telemetryAccepted, connected: this.connected };
  }

  start(): void {
    void this.connect();
  }

  sendTelemetry(report: NodeTelemetryV2): void {
    const kafka = this.kafka;
    if (kafka === undefined || !this.connected) return;
    kafka.produce(this.message(topics.telemetry, report)).then(
      () => this.telemetryAccepted++,
      (error: unknown) => this.options.logger.warn({ err: describe(error) }, 'telemetry not delivered (the next report follows)'),
    );
  }

  sendResult(result: InferenceResultV1): void {
    const kafka = this.kafka;
    const requestId = result['request-id'];
    if (kafka === undefined || !this.connected || this.sending.has(requestId)) return;
    this.sending.add(requestId);
    kafka.produce(this.message(topics.result, result)).then(
      () => {
        this.sending.delete(requestId);
        this.options.outbox.settle(requestId);
      },
      (error: unknown) => {
        this.sending.delete(requestId);
        this.options.logger.warn({ err: describe(error), requestId }, 'result not delivered: retrying');
        realScheduler.after(this.options.limits.reconnectMinMs * 4, () => {
          const owed = this.options.outbox.get(requestId);
          if (owed !== undefined) this.sendResult(owed);
        });
      },
    );
  }

  /** TrainingUpdate v1 on arc.result.training, signed as telemetry is; owed until the broker has it. */
  sendTrainingUpdate(update: TrainingUpdateV1): void {
    const kafka = this.kafka;
    const key = updateKey(update['job-id'], update.round);
    const sendingKey = `update/${key}`;
    if (kafka === undefined || !this.connected || this.sending.has(sendingKey)) return;
    this.sending.add(sendingKey);
    // arc.result.training has one partition (the region's training edge creates it so).
    kafka.produce({ ...this.message(trainingTopics.result, update), partition: 0 }).then(
      () => {
        this.sending.delete(sendingKey);
        this.options.updates.settle(key);
      },
      (error: unknown) => {
        this.sending.delete(sendingKey);
        this.options.logger.warn({ err: describe(error), update: key }, 'training update not delivered: retrying');
        realScheduler.after(this.options.limits.reconnectMinMs * 4, () => {
          const owed = this.options.updates.get(key);
          if (owed !== undefined) this.sendTrainingUpdate(owed);
        });
      },
    );
  }

  async fetchWeights(sha256: string): Promise<Uint8Array | undefined> {
    return this.kafka?.fetchBlob(sha256);
  }

  async stopTaking(): Promise<void> {
    this.taking = false;
    await this.kafka?.stopConsuming();
  }

  async close(_graceMs: number): Promise<void> {
    this.closing = true;
    this.connected = false;
    this.cancelRetry?.();
    await this.kafka?.close();
    this.kafka = undefined;
  }

  private message(topic: string, body: object): { topic: string; value: string; headers: Record<string, string> } {
    const value = JSON.stringify(body);
    const identity = this.options.uplink.identity;
    // The key is the geozone (agent-kafka.ts keys every message so); the signature covers it.
    return { topic, value, headers: identity === undefined ? {} : signNodeMessage(identity, topic, this.options.geozone, value) };
  }

  private async connect(): Promise<void> {
    if (this.closing) return;
    const { uplink, logger, handlers } = this.options;
    let kafka: AgentKafka | undefined;
    try {
      kafka = await connectAgentKafka({
        brokers: uplink.brokers,
        ssl: uplink.ssl,
        nodeId: this.options.nodeId,
        geozone: this.options.geozone,
        clusterGeozones: uplink.clusterGeozones,
        dispatchTopic: topics.dispatch(this.options.geozone),
        trainingTopic: trainingTopics.scheduler,
        blobTopic: BLOB_TOPIC,
      });
      this.kafka = kafka;
      kafka.onConsumerLost((error) => this.onConsumerLost(kafka as AgentKafka, error));
      await kafka.consume((value) => this.onDispatchValue(value));
      await kafka.consumeTraining((value) => this.onTrainingValue(value));
      if (this.closing) return;
      this.connected = true;
      this.connectBackoff.reset();
      logger.info({ brokers: uplink.brokers }, 'connected to Kafka');
      handlers.onConnected();
      for (const result of this.options.outbox.all()) this.sendResult(result);
      for (const update of this.options.updates.all()) this.sendTrainingUpdate(update);
    } catch (error) {
      await kafka?.close();
      this.kafka = undefined;
      logger.warn({ err: describe(error) }, 'cannot reach Kafka: retrying');
      this.retry();
    }
  }

  private retry(): void {
    if (this.closing || !this.taking) return;
    this.cancelRetry = realScheduler.after(this.connectBackoff.next(), () => {
      this.reconnects++;
      void this.connect();
    });
  }

  /** kafkajs gave up on the consumer: start over with a fresh client (owed results are sent again). */
  private onConsumerLost(kafka: AgentKafka, error: Error): void {
    if (this.kafka !== kafka || this.closing || !this.taking) return;
    this.options.logger.warn({ err: error.message }, 'the dispatch consumer stopped: reconnecting');
    this.connected = false;
    this.kafka = undefined;
    void kafka.close().then(() => this.retry());
  }

  private onDispatchValue(value: Buffer | null): void {
    if (value === null) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(value.toString('utf8'));
    } catch {
      return this.options.logger.warn('a dispatch that is not JSON: skipped');
    }
    const dispatch = inferenceDispatchSchema.safeParse(parsed);
    if (!dispatch.success) return this.options.logger.warn({ issue: dispatch.error.issues[0]?.message }, 'malformed dispatch: skipped');
    if (dispatch.data['node-id'] !== this.options.nodeId) return;
    this.options.handlers.onDispatch(dispatch.data);
  }

  /** The training topic holds every geozone's jobs and `train` messages: only this node's `train` goes on (validated by the runner). */
  private onTrainingValue(value: Buffer | null): void {
    if (value === null) return;
    const text = value.toString('utf8');
    if (!mayBeTrainFor(text, this.options.nodeId)) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof parsed !== 'object' || parsed === null) return;
    const message = parsed as Record<string, unknown>;
    if (message['type'] !== 'train' || message['node-id'] !== this.options.nodeId || message['geozone'] !== this.options.geozone) return;
    this.options.handlers.onTrainingTask(message);
  }
}

/** A cheap test before parsing: most of the training topic is other nodes' tasks and FederatedTasks. */
function mayBeTrainFor(text: string, nodeId: string): boolean {
  return text.includes('"train"') && text.includes(JSON.stringify(nodeId));
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
