import { OpenAiModelServer } from '../adapters/model-server/openai-model-server.js';
import type { NodeAgentOptions } from './agent-options.js';
import { DispatchRunner } from './dispatch-runner.js';
import { KafkaSession } from './kafka-session.js';
import { RegionSession } from './region-session.js';
import { ResultOutbox } from './result-outbox.js';
import { TelemetrySource } from './telemetry-report.js';
import { TrainingRunner } from './training-runner.js';
import { UpdateOutbox } from './update-outbox.js';
import type { Uplink, UplinkHandlers } from './uplink.js';

/** Job/round pairs remembered to tell a re-sent `train` from a new one. */
const MAX_REMEMBERED_TRAINING_TASKS = 4096;

/** Largest model-server answer read (a completion of a few hundred tokens is a few KiB). */
const MAX_MODEL_RESPONSE_BYTES = 4 * 1024 * 1024;

/** The line `arcnet agent` prints when it stops. */
export interface NodeAgentSummary {
  readonly nodeId: string;
  readonly geozone: string;
  readonly stoppedBy: string;
  /** Dispatches run against the model server (completed or failed there). */
  readonly dispatchesRun: number;
  readonly completed: number;
  readonly failed: number;
  /** Dispatches received again and not run again. */
  readonly duplicates: number;
  readonly expired: number;
  /** Answered `failed` at once because maxDispatchesInHand were in hand. */
  readonly refusedFull: number;
  /** Results the region accepted (durable there). */
  readonly resultsSent: number;
  /** Results still owed when the agent stopped (the flush timed out). */
  readonly resultsOwed: number;
  /** Results dropped: the owed limit, or a refusal for good. */
  readonly resultsDropped: number;
  readonly reconnects: number;
  readonly telemetryAccepted: number;
  readonly abandonedOnStop: number;
  /** Local trainings finished (their updates sent). */
  readonly trainingsRun: number;
  readonly trainingsFailed: number;
  /** Trainings past their round's deadline (skipped or stopped). */
  readonly trainingsExpired: number;
  /** `train` messages received again and not trained again. */
  readonly trainingDuplicates: number;
  /** Training updates the region accepted, still owed at the stop, and dropped. */
  readonly updatesSent: number;
  readonly updatesOwed: number;
  readonly updatesDropped: number;
  /** Trainings waiting or running when the agent stopped (ended: their rounds go on without this node). */
  readonly trainingsAbandonedOnStop: number;
}

/**
 * The node agent (the seed's Layer 1, "Ganglions"): reports the node's telemetry
 * on a fixed period, takes the dispatches addressed to it, runs them on the model
 * server and reports each result until the region has it; trains the federated
 * rounds it is given on its part of the data set and sends each update until
 * the region has it. A composition root like
 * app/: it assembles the telemetry source, the runner, the outbox and the uplink
 * (the agent channel or Kafka); signals and printing are cli/agent-command.ts's.
 */
export class NodeAgent {
  private readonly outbox: ResultOutbox;
  private readonly runner: DispatchRunner;
  private readonly updates: UpdateOutbox;
  private readonly trainer: TrainingRunner;
  private readonly telemetry: TelemetrySource;
  private readonly uplink: Uplink;
  private reportTimer: NodeJS.Timeout | undefined;
  private reporting: Promise<void> = Promise.resolve();
  private stopping = false;
  private stopped: Promise<NodeAgentSummary> | undefined;
  private fatalListeners: ((error: Error) => void)[] = [];

  constructor(private readonly options: NodeAgentOptions) {
    const { limits, logger } = options;
    const modelServer =
      options.modelServerUrl === undefined ? undefined : new OpenAiModelServer({ baseUrl: options.modelServerUrl, timeoutMs: limits.requestTimeoutMs, maxResponseBytes: MAX_MODEL_RESPONSE_BYTES });
    this.outbox = new ResultOutbox(limits.maxOwedResults);
    this.telemetry = new TelemetrySource({ ...options, modelServer });
    this.runner = new DispatchRunner({
      nodeId: options.nodeId,
      modelServer,
      maxTokens: options.maxTokens,
      maxConcurrentRuns: limits.maxConcurrentRuns,
      maxDispatchesInHand: limits.maxDispatchesInHand,
      maxRememberedRequests: limits.maxRememberedRequests,
      outbox: this.outbox,
      onResult: (result) => this.uplink.sendResult(result),
      wallNowMs: () => Date.now(),
      logger,
    });
    this.updates = new UpdateOutbox(limits.maxOwedUpdates);
    this.trainer = new TrainingRunner({
      nodeId: options.nodeId,
      maxConcurrentTrainings: limits.maxConcurrentTrainings,
      maxQueuedTrainings: limits.maxQueuedTrainings,
      maxRememberedTasks: MAX_REMEMBERED_TRAINING_TASKS,
      outbox: this.updates,
      onUpdate: (update) => this.uplink.sendTrainingUpdate(update),
      fetchWeights: (sha256) => this.uplink.fetchWeights(sha256),
      wallNowMs: () => Date.now(),
      logger,
    });
    const handlers: UplinkHandlers = {
      onDispatch: (dispatch) => this.runner.offer(dispatch),
      onTrainingTask: (task) => this.trainer.offer(task),
      onConnected: () => this.report(),
      onFatal: (error) => {
        logger.fatal({ err: error }, 'the agent cannot go on');
        for (const listener of this.fatalListeners) listener(error);
      },
    };
    const { uplink } = options;
    this.uplink =
      uplink.kind === 'region'
        ? new RegionSession({ nodeId: options.nodeId, geozone: options.geozone, uplink, limits, outbox: this.outbox, updates: this.updates, handlers, logger })
        : new KafkaSession({ nodeId: options.nodeId, geozone: options.geozone, uplink, limits, outbox: this.outbox, updates: this.updates, handlers, logger });
  }

  /** Called when retrying cannot help (a refused key, a second agent with this node id). */
  onFatal(listener: (error: Error) => void): void {
    this.fatalListeners.push(listener);
  }

  start(): void {
    this.uplink.start();
    this.reportTimer = setInterval(() => this.report(), this.options.reportEveryMs);
  }

  /** What the node advertised in its last report. */
  get modelsLoaded(): readonly string[] {
    return this.telemetry.modelsLoaded;
  }

  /**
   * Stops once (later calls get the same summary): takes no new dispatch, lets
   * those in hand finish (bounded), fails the rest, reports itself draining,
   * waits (bounded) until every owed result is accepted, then closes.
   */
  stop(reason: string): Promise<NodeAgentSummary> {
    this.stopped ??= this.stopOnce(reason);
    return this.stopped;
  }

  private async stopOnce(reason: string): Promise<NodeAgentSummary> {
    const { limits, logger } = this.options;
    this.stopping = true;
    if (this.reportTimer !== undefined) clearInterval(this.reportTimer);
    logger.info({ reason, inHand: this.runner.size, owed: this.outbox.size }, 'stopping: finishing dispatches in hand');
    await this.uplink.stopTaking();
    const [{ abandoned }, training] = await Promise.all([this.runner.stop(limits.drainTimeoutMs), this.trainer.stop()]);
    this.report();
    await this.reporting;
    const flushDeadlineMs = Date.now() + limits.flushTimeoutMs;
    const flushed = await this.outbox.whenEmpty(limits.flushTimeoutMs);
    if (!flushed) logger.warn({ owed: this.outbox.size }, 'stopping with results the region has not accepted');
    const updatesFlushed = await this.updates.whenEmpty(Math.max(0, flushDeadlineMs - Date.now()));
    if (!updatesFlushed) logger.warn({ owed: this.updates.size }, 'stopping with training updates the region has not accepted');
    await this.uplink.close(2_000);
    const { reconnects, telemetryAccepted } = this.uplink.stats;
    return {
      nodeId: this.options.nodeId,
      geozone: this.options.geozone,
      stoppedBy: reason,
      dispatchesRun: this.runner.dispatchesRun,
      completed: this.runner.completed,
      failed: this.runner.failed,
      duplicates: this.runner.duplicates,
      expired: this.runner.expired,
      refusedFull: this.runner.refusedFull,
      resultsSent: this.outbox.accepted,
      resultsOwed: this.outbox.size,
      resultsDropped: this.outbox.dropped,
      reconnects,
      telemetryAccepted,
      abandonedOnStop: abandoned,
      trainingsRun: this.trainer.trained,
      trainingsFailed: this.trainer.failed,
      trainingsExpired: this.trainer.expired,
      trainingDuplicates: this.trainer.duplicates,
      updatesSent: this.updates.accepted,
      updatesOwed: this.updates.size,
      updatesDropped: this.updates.dropped,
      trainingsAbandonedOnStop: training.abandoned,
    };
  }

  /** One report at a time: a slow model server or nvidia-smi must not pile reports up. */
  private report(): void {
    this.reporting = this.reporting.then(async () => {
      try {
        this.uplink.sendTelemetry(await this.telemetry.report(this.stopping));
      } catch (error) {
        this.options.logger.error({ err: error }, 'could not build a telemetry report');
      }
    });
  }
}
