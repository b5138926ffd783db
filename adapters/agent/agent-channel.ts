import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { InferenceDispatchV1 } from '../../actors/wire-out.js';
import { limits } from '../../actors/wire.js';
import type { Scheduler } from '../../runtime/clock.js';
import { ArcError, ErrorCodes, invariant } from '../../runtime/errors.js';
import { isRefusal, openAccess, type Refusal, type RefusalContext } from '../http/access.js';
import { canSee } from '../security/access-policy.js';
import type { Principal } from '../security/api-keys.js';
import type { KeyGuard } from '../security/key-guard.js';
import { closeSlowConsumer, dataBoundBytes, fitsBound, rawByteLength, rawText } from '../websocket/socket-limits.js';
import { refuseUpgrade, serveUpgrades } from '../websocket/upgrade-routes.js';
import {
  ackSchema,
  AGENT_MESSAGE_TYPES,
  clientIdSchema,
  envelopeSchema,
  helloSchema,
  upgradeQuerySchema,
  type AcceptedMessage,
  type AckedMessage,
  type AgentErrorMessage,
  type ClientId,
  type WelcomeMessage,
} from './agent-messages.js';
import { DEFAULT_MAX_NODES_WITH_PENDING, DEFAULT_MAX_PENDING_PER_NODE, PendingDispatches, type PendingDispatch } from './pending-dispatches.js';

/**
 * The node agents' WebSocket channel (`/v1/agent`): agents say which node they
 * are, post telemetry and results, and receive the dispatches addressed to
 * their node, each at least once (see agent-messages.ts for the protocol and
 * pending-dispatches.ts for what is kept until acknowledged).
 *
 * Access: an API key with the `ingest` permission (roles agent and operator)
 * in the upgrade's Authorization header; without a guard (no keys configured)
 * the channel is open like the rest of the region. A node is reached only by
 * keys scoped to its geozone: refused with 403 before the upgrade when the
 * geozone is known then (from the URL, or the region knows the node), with
 * close 1008 after a hello otherwise; each telemetry or result is checked
 * again by the region (its geozone), and each dispatch is sent only to a
 * connection scoped to the geozone that released it.
 *
 * Limits, because one slow or hostile agent must never cost the region memory:
 * connections (`maxAgents`, then HTTP 503), frame size (ws `maxPayload`, then
 * close 1009; below it, a message over the wire limit gets
 * ARC_ERR_PAYLOAD_TOO_LARGE), bytes queued per connection (`maxBufferedBytes`,
 * then ARC_ERR_SLOW_CONSUMER and close 1013), messages being made durable per
 * connection (`maxInFlight`, then the socket is not read until one is done),
 * time to say hello (`helloTimeoutMs`, then close 1008), a missed pong
 * (terminated), and the pending dispatches (per node and nodes).
 */

/** What an agent posts to the region through the channel. */
export type AgentIngestKind = 'telemetry' | 'result' | 'training-update';

/** The pending-entry key of a `train` message: acknowledged by the node's accepted update for that job and round. */
export const trainTaskKey = (jobId: string, round: number): string => `train/${jobId}/${round}`;

/** What the channel needs of the region. */
export interface AgentRegionPort {
  /**
   * Validates `body` exactly as the HTTP and Kafka edges do (size limit first,
   * then JSON, then the strict schema) and applies it; resolves once it is
   * durable; throws ArcError with a code otherwise (ARC_ERR_FORBIDDEN when
   * `scope` refuses its geozone).
   */
  ingest(kind: AgentIngestKind, body: string, scope: (geozone: string) => boolean): Promise<void>;
  /** The geozone of a node the region knows (undefined when unknown). */
  geozoneOfNode(nodeId: string): string | undefined;
  /** The region's logical time in ms (dispatch expiry is judged by it). */
  nowMs(): number;
}

export interface AgentChannelOptions {
  readonly region: AgentRegionPort;
  /** Undefined: no keys configured, every agent is admitted. */
  readonly guard?: KeyGuard | undefined;
  /** Every refused key, role, budget or geozone (a system event and a log line; never the key). Default: the guard's. */
  readonly onRefused?: ((refusal: Refusal, context: RefusalContext) => void) | undefined;
  /** Timers (heartbeats, hello timeouts, slow-consumer grace): runtime/clock's realScheduler live. */
  readonly scheduler: Scheduler;
  /** URL path served (default '/v1/agent'). */
  readonly path?: string;
  /** Open connections at most (default 10,000: ten times the seed's 1,000 nodes per aggregator). */
  readonly maxAgents?: number;
  /** Unsent bytes one connection may have queued on the server before it is disconnected (default 256 KiB). */
  readonly maxBufferedBytes?: number;
  /** Largest agent → region frame; larger ones close the connection with 1009 (default 64 KiB). */
  readonly maxFrameBytes?: number;
  /** Telemetry and results of one connection being made durable at once; past it the socket is not read (default 32). */
  readonly maxInFlight?: number;
  /** Ping interval; an agent that has not answered the previous ping is terminated (default 30 s). */
  readonly heartbeatMs?: number;
  /** How long a connection may go without a hello (default 10 s). */
  readonly helloTimeoutMs?: number;
  /** How long a slow consumer or a closing connection gets to finish the close handshake (default 2 s). */
  readonly closeGraceMs?: number;
  /** Unacknowledged dispatches kept per node (default 64) and nodes with any (default 10,000); the oldest go first. */
  readonly maxPendingPerNode?: number;
  readonly maxNodesWithPending?: number;
}

export interface AgentChannelStats {
  /** Open connections, with or without a hello. */
  readonly connections: number;
  /** Connections that said hello: one per node. */
  readonly connectedAgents: number;
  readonly pendingDispatches: number;
  readonly nodesWithPendingDispatches: number;
  /** Dispatches sent to an agent for the first time. */
  readonly deliveries: number;
  /** Dispatches sent again (the node reconnected before acknowledging). */
  readonly redeliveries: number;
  /** Pending dispatches acknowledged (by an ack, or by the node's result for it). */
  readonly acks: number;
  /** Pending dispatches whose reservation expired before they were acknowledged. */
  readonly expiredDispatches: number;
  /** Pending dispatches pushed out by the per-node or node limit. */
  readonly droppedDispatches: number;
  /** Telemetry and results made durable. */
  readonly accepted: number;
  /** Agent messages answered with an error. */
  readonly refusedMessages: number;
  /** Upgrade requests refused with an HTTP error. */
  readonly refusedConnections: number;
  readonly disconnectedSlow: number;
  /** Connections closed because a newer one said hello for the same node. */
  readonly replaced: number;
}

export const AGENT_PATH = '/v1/agent';
export const DEFAULT_MAX_AGENTS = 10_000;
export const DEFAULT_AGENT_BUFFERED_BYTES = 256 * 1024;
/** Well above the wire limit, so an oversized message gets a coded answer rather than a dropped connection. */
export const DEFAULT_MAX_FRAME_BYTES = 4 * limits.maxMessageBytes;
export const DEFAULT_MAX_IN_FLIGHT = 32;
export const DEFAULT_AGENT_HEARTBEAT_MS = 30_000;
export const DEFAULT_HELLO_TIMEOUT_MS = 10_000;
export const DEFAULT_CLOSE_GRACE_MS = 2_000;
/** Close codes: 1008 policy violation (scope, protocol), 4000 (application range) replaced by a newer connection. */
export const POLICY_CLOSE_CODE = 1008;
export const REPLACED_CLOSE_CODE = 4000;
/** `type` and `id` around a seed message: a frame may exceed the wire limit by this much before it is refused unread. */
const ENVELOPE_ALLOWANCE_BYTES = 128;
/** RFC 6455: a close reason is at most 123 bytes. */
const MAX_CLOSE_REASON_BYTES = 123;

interface Agent {
  readonly ws: WebSocket;
  readonly principal: Principal;
  readonly scope: (geozone: string) => boolean;
  /** What the upgrade URL said (its node-id, if any, was the hello). */
  readonly preset: { readonly nodeId?: string | undefined; readonly geozone?: string | undefined };
  /** Set by the hello. */
  nodeId: string | undefined;
  /** Answered the last ping. */
  alive: boolean;
  /** Being disconnected: it is sent and reads nothing more. */
  leaving: boolean;
  inFlight: number;
  cancelTimer: (() => void) | undefined;
}

export class AgentChannel {
  private readonly region: AgentRegionPort;
  private readonly guard: KeyGuard | undefined;
  private readonly onRefused: ((refusal: Refusal, context: RefusalContext) => void) | undefined;
  private readonly scheduler: Scheduler;
  private readonly path: string;
  private readonly maxAgents: number;
  private readonly maxBufferedBytes: number;
  private readonly dataBoundBytes: number;
  private readonly maxInFlight: number;
  private readonly heartbeatMs: number;
  private readonly helloTimeoutMs: number;
  private readonly closeGraceMs: number;
  private readonly wss: WebSocketServer;
  private readonly pending: PendingDispatches;
  private readonly connections = new Set<Agent>();
  private readonly byNode = new Map<string, Agent>();
  private readonly detachers: (() => void)[] = [];
  private cancelHeartbeat: () => void;
  private closed = false;
  private deliveries = 0;
  private redeliveries = 0;
  private acks = 0;
  private accepted = 0;
  private refusedMessages = 0;
  private refusedConnections = 0;
  private disconnectedSlow = 0;
  private replaced = 0;

  constructor(options: AgentChannelOptions) {
    this.region = options.region;
    this.guard = options.guard;
    this.onRefused = options.onRefused ?? options.guard?.refused.bind(options.guard);
    this.scheduler = options.scheduler;
    this.path = options.path ?? AGENT_PATH;
    this.maxAgents = positive('maxAgents', options.maxAgents ?? DEFAULT_MAX_AGENTS);
    this.maxBufferedBytes = options.maxBufferedBytes ?? DEFAULT_AGENT_BUFFERED_BYTES;
    this.dataBoundBytes = dataBoundBytes(this.maxBufferedBytes);
    this.maxInFlight = positive('maxInFlight', options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT);
    this.heartbeatMs = positive('heartbeatMs', options.heartbeatMs ?? DEFAULT_AGENT_HEARTBEAT_MS);
    this.helloTimeoutMs = positive('helloTimeoutMs', options.helloTimeoutMs ?? DEFAULT_HELLO_TIMEOUT_MS);
    this.closeGraceMs = positive('closeGraceMs', options.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS);
    this.pending = new PendingDispatches({
      maxPerNode: options.maxPendingPerNode ?? DEFAULT_MAX_PENDING_PER_NODE,
      maxNodes: options.maxNodesWithPending ?? DEFAULT_MAX_NODES_WITH_PENDING,
    });
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: positive('maxFrameBytes', options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES),
    });
    this.cancelHeartbeat = this.scheduler.after(this.heartbeatMs, () => this.beat());
  }

  /** Serves `/v1/agent` on `server`; other paths stay with the server's other WebSocket endpoints (the console's /telemetry). */
  attach(server: HttpServer | HttpsServer): void {
    this.detachers.push(serveUpgrades(server, this.path, (request, socket, head, url) => this.upgrade(request, socket, head, url)));
  }

  /**
   * A dispatch the region released (durable) for `dispatch['node-id']`, from
   * the shard of `geozone`: sent now if the node's agent is connected, and
   * kept until acknowledged or expired. Feed it the region's dispatch effects
   * (adapters/bus/topics.ts effectToWire) or a consumer of
   * arc.command.dispatch.{geozone}; offering the same dispatch twice is harmless.
   */
  onDispatch(dispatch: InferenceDispatchV1, geozone: string): void {
    const expiresAtMs = Date.parse(dispatch['expires-at']);
    invariant(Number.isFinite(expiresAtMs), 'a dispatch has an unreadable expires-at', { requestId: dispatch['request-id'] });
    // Exactly the InferenceDispatch v1 fields, whatever else the caller's object holds.
    const frame = Buffer.from(
      JSON.stringify({
        type: 'dispatch',
        'request-id': dispatch['request-id'],
        'node-id': dispatch['node-id'],
        'model-id': dispatch['model-id'],
        'context-window': dispatch['context-window'],
        priority: dispatch.priority,
        'expires-at': dispatch['expires-at'],
      }),
    );
    const nodeId = dispatch['node-id'];
    const entry = this.pending.add(nodeId, { requestId: dispatch['request-id'], geozone, expiresAtMs, frame }, this.region.nowMs());
    if (entry === undefined) return;
    const agent = this.byNode.get(nodeId);
    if (agent !== undefined && agent.scope(geozone)) this.sendDispatch(agent, entry);
  }

  /**
   * A `train` message (TrainTask v1, already serialized) for `nodeId`, from the
   * shard of `geozone`: sent now if the node's agent is connected, and kept like
   * a dispatch (the same per-node limits) until the node's update for that job
   * and round is accepted or the round's deadline (`expiresAtMs`, logical) passes.
   */
  offerTask(nodeId: string, geozone: string, key: string, expiresAtMs: number, frame: Buffer): void {
    const entry = this.pending.add(nodeId, { requestId: key, geozone, expiresAtMs, frame }, this.region.nowMs());
    if (entry === undefined) return;
    const agent = this.byNode.get(nodeId);
    if (agent !== undefined && agent.scope(geozone)) this.sendDispatch(agent, entry);
  }

  stats(): AgentChannelStats {
    return {
      connections: this.connections.size,
      connectedAgents: this.byNode.size,
      pendingDispatches: this.pending.size,
      nodesWithPendingDispatches: this.pending.nodes,
      deliveries: this.deliveries,
      redeliveries: this.redeliveries,
      acks: this.acks,
      expiredDispatches: this.pending.expired,
      droppedDispatches: this.pending.dropped,
      accepted: this.accepted,
      refusedMessages: this.refusedMessages,
      refusedConnections: this.refusedConnections,
      disconnectedSlow: this.disconnectedSlow,
      replaced: this.replaced,
    };
  }

  /** Stops accepting, closes every connection (1001 "going away"), and resolves once all are gone. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.cancelHeartbeat();
    for (const detach of this.detachers) detach();
    const gone = [...this.connections].map(
      (agent) =>
        new Promise<void>((resolve) => {
          agent.ws.once('close', () => resolve());
          agent.leaving = true;
          agent.ws.close(1001, 'server shutting down');
          const cancel = this.scheduler.after(this.closeGraceMs, () => agent.ws.terminate());
          agent.ws.once('close', cancel);
        }),
    );
    await Promise.all(gone);
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  // ---------------------------------------------------------------- handshake

  private upgrade(request: IncomingMessage, socket: Duplex, head: Buffer, url: URL): void {
    if (this.closed) return this.refuseConnection(socket, 503, ErrorCodes.OVERLOADED, 'the agent channel is shutting down; reconnect later');
    if (this.connections.size >= this.maxAgents) {
      return this.refuseConnection(socket, 503, ErrorCodes.OVERLOADED, `the agent channel is at its limit of ${this.maxAgents} connections; retry later`);
    }
    const admitted = this.guard === undefined ? openAccess : this.guard.admitUpgrade(request, 'ingest');
    if (isRefusal(admitted)) return this.refuseKey(socket, admitted);
    const query = upgradeQuerySchema.safeParse({ 'node-id': url.searchParams.get('node-id') ?? undefined, geozone: url.searchParams.get('geozone') ?? undefined });
    if (!query.success) {
      const issue = query.error.issues[0];
      return this.refuseConnection(socket, 400, ErrorCodes.VALIDATION, `bad ${issue?.path.join('.') ?? 'query'} in the query string: ${issue?.message ?? 'invalid'}; e.g. ?node-id=n1&geozone=CAISO`);
    }
    const preset = { nodeId: query.data['node-id'], geozone: query.data.geozone };
    // Known before the upgrade: refuse now, as plain HTTP, rather than after a handshake.
    const known = [preset.geozone, preset.nodeId === undefined ? undefined : this.region.geozoneOfNode(preset.nodeId)];
    if (known.some((geozone) => geozone !== undefined && !canSee(admitted, geozone))) return this.refuseKey(socket, outOfScope(admitted));
    socket.on('error', ignore);
    this.wss.handleUpgrade(request, socket, head, (ws) => {
      socket.off('error', ignore);
      this.adopt(ws, admitted, preset);
    });
  }

  private adopt(ws: WebSocket, principal: Principal, preset: Agent['preset']): void {
    const agent: Agent = {
      ws,
      principal,
      scope: (geozone) => canSee(principal, geozone),
      preset,
      nodeId: undefined,
      alive: true,
      leaving: false,
      inFlight: 0,
      cancelTimer: undefined,
    };
    this.connections.add(agent);
    ws.on('pong', () => (agent.alive = true));
    ws.on('message', (data, isBinary) => this.onMessage(agent, data, isBinary));
    // Errors (a frame over maxPayload, a broken socket) are followed by 'close'; nothing else to do.
    ws.on('error', ignore);
    ws.once('close', () => this.forget(agent));
    if (this.closed) return this.closeAgent(agent, 1001, 'server shutting down');
    if (preset.nodeId !== undefined) return this.hello(agent, preset.nodeId, preset.geozone, undefined);
    agent.cancelTimer = this.scheduler.after(this.helloTimeoutMs, () =>
      this.protocolError(agent, `no hello within ${this.helloTimeoutMs} ms; send {"type":"hello","node-id":"..."} first`, undefined),
    );
  }

  private forget(agent: Agent): void {
    agent.leaving = true;
    agent.cancelTimer?.();
    this.connections.delete(agent);
    if (agent.nodeId !== undefined && this.byNode.get(agent.nodeId) === agent) this.byNode.delete(agent.nodeId);
  }

  // ---------------------------------------------------------------- agent → region

  private onMessage(agent: Agent, data: RawData, isBinary: boolean): void {
    if (agent.leaving) return;
    if (isBinary) return this.refuseMessage(agent, ErrorCodes.VALIDATION, 'send JSON text frames, not binary ones', undefined);
    const bytes = rawByteLength(data);
    if (bytes > limits.maxMessageBytes + ENVELOPE_ALLOWANCE_BYTES) {
      return this.refuseMessage(agent, ErrorCodes.PAYLOAD_TOO_LARGE, `message is ${bytes} bytes; the limit is ${limits.maxMessageBytes} (plus ${ENVELOPE_ALLOWANCE_BYTES} for type and id)`, undefined);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(rawText(data));
    } catch {
      return this.refuseMessage(agent, ErrorCodes.MALFORMED_JSON, 'not JSON; send one JSON object per text frame', undefined);
    }
    const envelope = envelopeSchema.safeParse(parsed);
    if (!envelope.success) {
      // Still answered with the agent's id when that much is readable.
      const readable = clientIdSchema.safeParse(typeof parsed === 'object' && parsed !== null ? (parsed as { id?: unknown }).id : undefined);
      const message = `bad message${describeIssue(envelope.error)}; the type is one of ${AGENT_MESSAGE_TYPES.join(', ')}`;
      return this.refuseMessage(agent, ErrorCodes.VALIDATION, message, readable.success ? readable.data : undefined);
    }
    const { type, id } = envelope.data;
    if (type === 'hello') {
      if (agent.nodeId !== undefined) return this.protocolError(agent, `this connection already said hello for node ${agent.nodeId}; open a new connection for another node`, id);
      const hello = helloSchema.safeParse(parsed);
      if (!hello.success) return this.refuseMessage(agent, ErrorCodes.VALIDATION, `bad hello${describeIssue(hello.error)}`, id);
      return this.hello(agent, hello.data['node-id'], hello.data.geozone, id);
    }
    if (agent.nodeId === undefined) return this.protocolError(agent, `${type} before hello; send {"type":"hello","node-id":"..."} first`, id);
    if (type === 'ack') {
      const ack = ackSchema.safeParse(parsed);
      if (!ack.success) return this.refuseMessage(agent, ErrorCodes.VALIDATION, `bad ack${describeIssue(ack.error)}`, id);
      if (this.pending.ack(agent.nodeId, ack.data['request-id'])) this.acks++;
      return this.reply(agent, { type: 'acked', ...idField(id), 'request-id': ack.data['request-id'] } satisfies AckedMessage);
    }
    this.ingest(agent, agent.nodeId, type, envelope.data, id);
  }

  private hello(agent: Agent, nodeId: string, geozone: string | undefined, id: ClientId | undefined): void {
    const { preset } = agent;
    if (preset.geozone !== undefined && geozone !== undefined && geozone !== preset.geozone) {
      return this.protocolError(agent, `the hello says geozone ${geozone} but the URL said ${preset.geozone}`, id);
    }
    // The region's knowledge wins over what the agent says: a key cannot reach a known node by naming another geozone.
    const said = this.region.geozoneOfNode(nodeId) ?? geozone ?? preset.geozone;
    if (said !== undefined && !agent.scope(said)) return this.refuseScope(agent, id);
    agent.cancelTimer?.();
    agent.cancelTimer = undefined;
    agent.nodeId = nodeId;
    const previous = this.byNode.get(nodeId);
    if (previous !== undefined && previous !== agent) {
      this.replaced++;
      this.closeAgent(previous, REPLACED_CLOSE_CODE, 'replaced');
    }
    this.byNode.set(nodeId, agent);
    const waiting = this.pending.live(nodeId, this.region.nowMs()).filter((entry) => agent.scope(entry.geozone));
    this.reply(agent, { type: 'welcome', ...idField(id), 'node-id': nodeId, pending: waiting.length } satisfies WelcomeMessage);
    for (const entry of waiting) this.sendDispatch(agent, entry);
  }

  private ingest(agent: Agent, nodeId: string, kind: AgentIngestKind, message: Record<string, unknown>, id: ClientId | undefined): void {
    const { type: _type, id: _id, ...body } = message;
    const claimed = body['node-id'];
    if (typeof claimed === 'string' && claimed !== nodeId) {
      return this.refuseMessage(agent, ErrorCodes.NODE_MISMATCH, `this connection is node ${nodeId}; send ${kind} for node ${claimed} on its own connection`, id);
    }
    const requestId = kind === 'result' && typeof body['request-id'] === 'string' ? body['request-id'] : undefined;
    const taskKey = kind === 'training-update' && typeof body['job-id'] === 'string' && typeof body['round'] === 'number' ? trainTaskKey(body['job-id'], body['round']) : undefined;
    agent.inFlight++;
    // Backpressure: stop reading this agent until the region has made some of its messages durable.
    if (agent.inFlight >= this.maxInFlight) agent.ws.pause();
    void Promise.resolve()
      .then(() => this.region.ingest(kind, JSON.stringify(body), agent.scope))
      .then(
        () => {
          this.accepted++;
          // A result says the node had the dispatch: it need not be sent again.
          if (requestId !== undefined && this.pending.ack(nodeId, requestId)) this.acks++;
          // An accepted update says the node had its train message: it need not be sent again.
          if (taskKey !== undefined && this.pending.ack(nodeId, taskKey)) this.acks++;
          this.reply(agent, { type: 'accepted', ...idField(id), kind, ...(requestId === undefined ? {} : { 'request-id': requestId }) } satisfies AcceptedMessage);
        },
        (error: unknown) => {
          if (error instanceof ArcError && error.code === ErrorCodes.FORBIDDEN) return this.refuseScope(agent, id);
          if (error instanceof ArcError && error.code !== ErrorCodes.INVARIANT) return this.refuseMessage(agent, error.code, error.message, id);
          this.refuseMessage(agent, ErrorCodes.INVARIANT, `the region could not take this ${kind}; retry later`, id);
        },
      )
      .finally(() => {
        agent.inFlight--;
        if (agent.ws.isPaused && agent.inFlight < this.maxInFlight && !agent.leaving) agent.ws.resume();
      });
  }

  // ---------------------------------------------------------------- refusals

  private refuseMessage(agent: Agent, code: string, message: string, id: ClientId | undefined): void {
    this.refusedMessages++;
    this.reply(agent, { type: 'error', ...idField(id), code, message } satisfies AgentErrorMessage);
  }

  /** Out of order: told why, then closed 1008. */
  private protocolError(agent: Agent, message: string, id: ClientId | undefined): void {
    this.refuseMessage(agent, ErrorCodes.PROTOCOL, message, id);
    this.closeAgent(agent, POLICY_CLOSE_CODE, `${ErrorCodes.PROTOCOL}: ${message}`);
  }

  /** A node or message in a geozone the key does not reach: told, reported, closed 1008. */
  private refuseScope(agent: Agent, id: ClientId | undefined): void {
    const refusal = outOfScope(agent.principal);
    this.report(refusal);
    this.refuseMessage(agent, refusal.code, refusal.message, id);
    this.closeAgent(agent, POLICY_CLOSE_CODE, `${refusal.code}: ${refusal.message}`);
  }

  private refuseKey(socket: Duplex, refusal: Refusal): void {
    this.report(refusal);
    const retryAfterSeconds = refusal.retryAfterMs === undefined ? undefined : Math.max(1, Math.ceil(refusal.retryAfterMs / 1000));
    this.refuseConnection(socket, refusal.status, refusal.code, refusal.message, retryAfterSeconds);
  }

  private refuseConnection(socket: Duplex, status: number, code: string, message: string, retryAfterSeconds?: number): void {
    this.refusedConnections++;
    refuseUpgrade(socket, status, code, message, retryAfterSeconds);
  }

  private report(refusal: Refusal): void {
    this.onRefused?.(refusal, { method: 'GET', path: this.path, ...(refusal.keyId === undefined ? {} : { keyId: refusal.keyId }) });
  }

  // ---------------------------------------------------------------- region → agent

  private sendDispatch(agent: Agent, entry: PendingDispatch): void {
    if (!this.send(agent, entry.frame)) return;
    if (entry.sends === 0) this.deliveries++;
    else this.redeliveries++;
    entry.sends++;
  }

  private reply(agent: Agent, message: WelcomeMessage | AcceptedMessage | AckedMessage | AgentErrorMessage): void {
    this.send(agent, Buffer.from(JSON.stringify(message)));
  }

  /** Hands a frame to the agent's socket unless it is behind (then it is cut off); false when not sent. */
  private send(agent: Agent, frame: Buffer): boolean {
    const ws = agent.ws;
    if (agent.leaving || ws.readyState !== ws.OPEN) return false;
    if (!fitsBound(ws, frame.length, this.dataBoundBytes)) {
      this.disconnectSlow(agent);
      return false;
    }
    ws.send(frame, { binary: false });
    return true;
  }

  /** Its unacknowledged dispatches stay pending: they are sent again when it reconnects. */
  private disconnectSlow(agent: Agent): void {
    this.disconnectedSlow++;
    agent.leaving = true;
    agent.cancelTimer?.();
    const notice: AgentErrorMessage = {
      type: 'error',
      code: ErrorCodes.SLOW_CONSUMER,
      message: `more than ${this.maxBufferedBytes} bytes were waiting for this agent; read faster, then reconnect (unacknowledged dispatches are sent again)`,
    };
    agent.cancelTimer = closeSlowConsumer(agent.ws, JSON.stringify(notice), this.closeGraceMs, this.scheduler);
  }

  private closeAgent(agent: Agent, code: number, reason: string): void {
    if (agent.leaving) return;
    agent.leaving = true;
    agent.cancelTimer?.();
    agent.ws.close(code, truncateUtf8(reason, MAX_CLOSE_REASON_BYTES));
    // A peer that does not answer the close is cut off.
    agent.cancelTimer = this.scheduler.after(this.closeGraceMs, () => agent.ws.terminate());
  }

  private beat(): void {
    if (this.closed) return;
    for (const agent of this.connections) {
      // A paused socket is not read, so its pongs wait too: the region is the slow side, not the agent.
      // One that is leaving has its own grace timer: cutting it now could lose its close frame.
      if (agent.ws.isPaused || agent.leaving) continue;
      if (!agent.alive) {
        agent.ws.terminate();
        continue;
      }
      agent.alive = false;
      agent.ws.ping();
    }
    this.pending.sweep(this.region.nowMs());
    this.cancelHeartbeat = this.scheduler.after(this.heartbeatMs, () => this.beat());
  }
}

function outOfScope(principal: Principal): Refusal {
  return { status: 403, code: ErrorCodes.FORBIDDEN, message: 'this API key may not post telemetry or results for a node in that geozone', keyId: principal.keyId };
}

function idField(id: ClientId | undefined): { id?: ClientId } {
  return id === undefined ? {} : { id };
}

function describeIssue(error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] }): string {
  const issue = error.issues[0];
  if (issue === undefined) return '';
  const where = issue.path.length === 0 ? '' : ` at ${issue.path.map(String).join('.')}`;
  return `${where}: ${issue.message}`;
}

function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  let cut = text.slice(0, maxBytes);
  while (Buffer.byteLength(cut) > maxBytes) cut = cut.slice(0, -1);
  return cut;
}

function positive(name: string, value: number): number {
  if (!(Number.isInteger(value) && value > 0)) throw new RangeError(`${name} must be a positive integer, not ${value}`);
  return value;
}

function ignore(): void {
  return undefined;
}
