import type { InferenceDispatchV1 } from '../actors/wire-out.js';
import type { TrainingUpdateV1 } from '../actors/training-wire.js';
import type { InferenceResultV1, NodeTelemetryV2 } from '../actors/wire.js';
import type { Offered } from './dispatch-runner.js';

/**
 * What the node agent needs of the way it talks to its region, whichever it is:
 * the agent channel WebSocket (region-session.ts) or Kafka (kafka-session.ts).
 */
export interface Uplink {
  /** Begins connecting (and reconnecting); returns at once. */
  start(): void;
  /** Sends a report now if connected; a report missed while disconnected is superseded by the next. */
  sendTelemetry(report: NodeTelemetryV2): void;
  /** Sends a result now if connected; it stays owed (ResultOutbox) until the region accepts it. */
  sendResult(result: InferenceResultV1): void;
  /** Sends a training update now if connected; it stays owed (UpdateOutbox) until the region accepts it. */
  sendTrainingUpdate(update: TrainingUpdateV1): void;
  /** A round's starting weights by SHA-256, for a `train` message that names them by hash only (Kafka); undefined when not found. */
  fetchWeights(sha256: string): Promise<Uint8Array | undefined>;
  /**
   * Stops receiving dispatches where they would otherwise be lost (Kafka commits what it hands
   * on); results can still be sent. The agent channel keeps receiving: a dispatch not
   * acknowledged stays with the region.
   */
  stopTaking(): Promise<void>;
  /** Closes; owed results are the caller's to flush first. */
  close(graceMs: number): Promise<void>;
  readonly stats: UplinkStats;
}

export interface UplinkStats {
  readonly reconnects: number;
  readonly telemetryAccepted: number;
  readonly connected: boolean;
}

/** What an uplink hands the agent. */
export interface UplinkHandlers {
  /** A dispatch for this node; the answer says whether it was taken (acknowledged) or not. */
  onDispatch(dispatch: InferenceDispatchV1): Offered;
  /** A `train` message (TrainTask v1, not yet validated): a federated round for this node to train. */
  onTrainingTask(task: unknown): void;
  /** (Re)connected: a good moment for a fresh report and the owed results. */
  onConnected(): void;
  /** Retrying cannot help (the key was refused, another agent took this node id): the agent stops. */
  onFatal(error: Error): void;
}
