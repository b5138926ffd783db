import type { Logger } from 'pino';
import { acceptedSchema, agentErrorSchema, dispatchMessageSchema } from '../adapters/agent/agent-messages.js';
import { openAgentSocket, type AgentSocket } from '../adapters/agent/agent-socket.js';
import type { TrainingUpdateV1 } from '../actors/training-wire.js';
import type { InferenceResultV1, NodeTelemetryV2 } from '../actors/wire.js';
import { realScheduler } from '../runtime/clock.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import type { AgentLimits, AgentUplink } from './agent-options.js';
import { Backoff } from './backoff.js';
import type { ResultOutbox } from './result-outbox.js';
import { updateKey, type UpdateOutbox } from './update-outbox.js';
import type { Uplink, UplinkHandlers, UplinkStats } from './uplink.js';

/** The channel closes with this code when another connection said hello for the same node. */
const REPLACED_CLOSE_CODE = 4000;
const CONNECT_TIMEOUT_MS = 10_000;
const HEARTBEAT_MS = 30_000;
/** Region → agent frames are small (a dispatch is a few hundred bytes). */
const MAX_FRAME_BYTES = 256 * 1024;
/** A result the region could not take for a passing reason is offered again after this long. */
const RESULT_RETRY_MS = 1_000;

/** Refusals a later attempt may get past (a busy or restarting shard); any other code is final for that message. */
const passingRefusals = new Set<string>([ErrorCodes.OVERLOADED, ErrorCodes.SHARD_STOPPED, ErrorCodes.JOURNAL_WRITE, ErrorCodes.INPUT_REFUSED, ErrorCodes.UNKNOWN_SHARD, ErrorCodes.RATE_LIMITED]);

export interface RegionSessionOptions {
  readonly nodeId: string;
  readonly geozone: string;
  readonly uplink: Extract<AgentUplink, { kind: 'region' }>;
  readonly limits: AgentLimits;
  readonly outbox: ResultOutbox;
  readonly updates: UpdateOutbox;
  readonly handlers: UplinkHandlers;
  readonly logger: Logger;
}

/**
 * The agent's end of the region's agent channel (`/v1/agent`, protocol in
 * adapters/agent/agent-messages.ts): connect with the node id and geozone on
 * the URL (so a key of another geozone is refused before the upgrade), take
 * the welcome, then report and send every owed result; acknowledge each
 * dispatch the runner takes; drop a result from the outbox only on its
 * `accepted`. Reconnects with bounded exponential backoff and jitter.
 */
export class RegionSession implements Uplink {
  private socket: AgentSocket | undefined;
  /** Connections already closed (a late reference to one must not become current). */
  private readonly gone = new WeakSet<AgentSocket>();
  private welcomed = false;
  private closing = false;
  private cancelRetry: (() => void) | undefined;
  private readonly backoff: Backoff;
  private reconnects = 0;
  private telemetryAccepted = 0;
  private everConnected = false;
  private nextMessageId = 1;
  /**
   * Training updates in flight on this connection, by the message id they were sent with: the
   * region's `accepted` for an update names no job or round, only the id. Cleared on every
   * welcome (answers on a closed connection never come; the owed updates are sent again).
   */
  private readonly updatesInFlight = new Map<string, string>();

  constructor(private readonly options: RegionSessionOptions) {
    this.backoff = new Backoff(options.limits.reconnectMinMs, options.limits.reconnectMaxMs);
  }

  get stats(): UplinkStats {
    return { reconnects: this.reconnects, telemetryAccepted: this.telemetryAccepted, connected: this.welcomed };
  }

  start(): void {
    void this.connect();
  }

  sendTelemetry(report: NodeTelemetryV2): void {
    if (this.welcomed) this.socket?.send({ type: 'telemetry', id: `t${this.nextMessageId++}`, ...report });
  }

  sendResult(result: InferenceResultV1): void {
    if (this.welcomed) this.socket?.send({ type: 'result', id: `r:${result['request-id']}`, ...result });
  }

  sendTrainingUpdate(update: TrainingUpdateV1): void {
    if (!this.welcomed || this.socket === undefined) return;
    const id = `u${this.nextMessageId++}`;
    this.updatesInFlight.set(id, updateKey(update['job-id'], update.round));
    this.socket.send({ type: 'training-update', id, ...update });
  }

  /** The agent channel sends a round's weights inline: there is nothing to fetch by hash. */
  fetchWeights(_sha256: string): Promise<Uint8Array | undefined> {
    return Promise.resolve(undefined);
  }

  /** Dispatches that come while stopping are not acknowledged, so the region keeps them: nothing to do. */
  stopTaking(): Promise<void> {
    return Promise.resolve();
  }

  async close(graceMs: number): Promise<void> {
    this.closing = true;
    this.cancelRetry?.();
    const socket = this.socket;
    this.socket = undefined;
    this.welcomed = false;
    await socket?.close(graceMs);
  }

  private url(): string {
    const url = new URL(this.options.uplink.url);
    url.searchParams.set('node-id', this.options.nodeId);
    url.searchParams.set('geozone', this.options.geozone);
    return url.href;
  }

  private async connect(): Promise<void> {
    if (this.closing) return;
    const { uplink, logger } = this.options;
    try {
      const socket = await openAgentSocket(
        {
          url: this.url(),
          apiKey: uplink.apiKey,
          caPem: uplink.caPem,
          certPem: uplink.certPem,
          keyPem: uplink.keyPem,
          connectTimeoutMs: CONNECT_TIMEOUT_MS,
          heartbeatMs: HEARTBEAT_MS,
          maxFrameBytes: MAX_FRAME_BYTES,
        },
        {
          onMessage: (message, socket) => this.onMessage(message, socket),
          onClose: (code, reason, socket) => this.onClose(socket, code, reason),
        },
      );
      if (this.closing) {
        await socket.close(1_000);
        return;
      }
      // The welcome may have come (and set it) before this line; a socket closed already stays out.
      if (!this.gone.has(socket)) this.socket = socket;
    } catch (error) {
      if (error instanceof ArcError) return this.options.handlers.onFatal(error);
      logger.warn({ err: error instanceof Error ? error.message : String(error), url: uplink.url }, 'cannot reach the region: retrying');
      this.retry();
    }
  }

  private retry(): void {
    if (this.closing) return;
    const waitMs = this.backoff.next();
    this.cancelRetry = realScheduler.after(waitMs, () => {
      this.cancelRetry = undefined;
      if (this.everConnected) this.reconnects++;
      void this.connect();
    });
  }

  private onClose(socket: AgentSocket, code: number, reason: string): void {
    this.gone.add(socket);
    if (this.socket !== undefined && this.socket !== socket) return;
    this.socket = undefined;
    this.welcomed = false;
    if (this.closing) return;
    if (code === REPLACED_CLOSE_CODE) {
      return this.options.handlers.onFatal(
        new ArcError(ErrorCodes.NODE_MISMATCH, `another agent connected as node ${this.options.nodeId}; give each agent its own --node-id`),
      );
    }
    this.options.logger.warn({ code, reason }, 'lost the region: reconnecting');
    this.retry();
  }

  private onMessage(message: Record<string, unknown> | undefined, socket: AgentSocket): void {
    // The first frames can arrive before connect() has the socket in hand.
    if (this.socket === undefined && !this.closing && !this.gone.has(socket)) this.socket = socket;
    if (this.socket !== socket) return;
    const { logger, handlers, outbox } = this.options;
    if (message === undefined) return logger.warn('the region sent a frame that is not a JSON object: ignored');
    switch (message['type']) {
      case 'welcome':
        this.welcomed = true;
        this.everConnected = true;
        this.backoff.reset();
        logger.info({ pending: message['pending'] }, 'connected to the region');
        handlers.onConnected();
        for (const result of outbox.all()) this.sendResult(result);
        this.updatesInFlight.clear();
        for (const update of this.options.updates.all()) this.sendTrainingUpdate(update);
        return;
      case 'dispatch': {
        const parsed = dispatchMessageSchema.safeParse(message);
        if (!parsed.success) return logger.warn({ issue: parsed.error.issues[0]?.message }, 'malformed dispatch: ignored');
        const { type: _type, ...dispatch } = parsed.data;
        if (dispatch['node-id'] !== this.options.nodeId) return logger.warn({ nodeId: dispatch['node-id'] }, 'dispatch for another node: ignored');
        const offered = handlers.onDispatch(dispatch);
        // Not taken (stopping): no ack, so the region keeps it for whoever comes next or lets it expire.
        if (offered !== 'stopping') this.socket?.send({ type: 'ack', 'request-id': dispatch['request-id'] });
        return;
      }
      case 'accepted': {
        const parsed = acceptedSchema.safeParse(message);
        if (!parsed.success) return;
        if (parsed.data.kind === 'telemetry') this.telemetryAccepted++;
        else if (parsed.data.kind === 'training-update') this.settleUpdate(parsed.data.id);
        else if (parsed.data['request-id'] !== undefined) outbox.settle(parsed.data['request-id']);
        return;
      }
      case 'error': {
        const parsed = agentErrorSchema.safeParse(message);
        if (!parsed.success) return;
        this.onRefusal(parsed.data.code, parsed.data.message, parsed.data.id);
        return;
      }
      case 'train':
        return handlers.onTrainingTask(message);
      case 'acked':
        return;
      default:
        logger.warn({ type: message['type'] }, 'unknown message from the region: ignored');
    }
  }

  private settleUpdate(id: string | number | undefined): void {
    const key = typeof id === 'string' ? this.updatesInFlight.get(id) : undefined;
    if (key === undefined) return;
    this.updatesInFlight.delete(id as string);
    this.options.updates.settle(key);
  }

  private onRefusal(code: string, text: string, id: string | number | undefined): void {
    const { logger, outbox, updates } = this.options;
    const updateInFlight = typeof id === 'string' ? this.updatesInFlight.get(id) : undefined;
    if (updateInFlight !== undefined) {
      this.updatesInFlight.delete(id as string);
      if (passingRefusals.has(code)) {
        logger.warn({ code, update: updateInFlight }, 'the region could not take a training update now: offering it again');
        realScheduler.after(RESULT_RETRY_MS, () => {
          const update = updates.get(updateInFlight);
          if (update !== undefined) this.sendTrainingUpdate(update);
        });
        return;
      }
      // A closed round or an unknown job: the region will never count it.
      logger.error({ code, message: text, update: updateInFlight }, 'the region refused a training update for good: dropped');
      updates.abandon(updateInFlight);
      return;
    }
    const requestId = typeof id === 'string' && id.startsWith('r:') ? id.slice(2) : undefined;
    if (requestId === undefined || !outbox.has(requestId)) return logger.warn({ code, message: text, id }, 'the region refused a message');
    if (passingRefusals.has(code)) {
      logger.warn({ code, requestId }, 'the region could not take a result now: offering it again');
      realScheduler.after(RESULT_RETRY_MS, () => {
        const result = outbox.get(requestId);
        if (result !== undefined) this.sendResult(result);
      });
      return;
    }
    logger.error({ code, message: text, requestId }, 'the region refused a result for good: dropped');
    outbox.abandon(requestId);
  }
}
