import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { z } from 'zod';
import { realScheduler } from '../../runtime/clock.js';
import { ErrorCodes } from '../../runtime/errors.js';
import { closeSlowConsumer, dataBoundBytes, fitsBound, rawText, SLOW_CONSUMER_CLOSE_CODE, underlyingSocket } from '../websocket/socket-limits.js';
import { refuseUpgrade as refuse, serveUpgrades } from '../websocket/upgrade-routes.js';
import {
  consoleGeozoneSchema,
  consoleMessageTypes,
  seedMessageTypes,
  MAX_FILTER_GEOZONES,
  subscribeRequestSchema,
  type ConsoleMessage,
  type ConsoleMessageType,
  type ErrorReply,
  type SubscribedReply,
} from './console-messages.js';

/**
 * The ArcNet Console's live feed: a WebSocket endpoint (`/telemetry`) on any
 * Node http/https server, fanning console messages out to the clients whose
 * API key and filter let them see each one.
 *
 * Limits, because one slow or hostile client must never cost the region memory:
 * - a client whose unsent bytes on the server (ws `bufferedAmount`) would pass
 *   `maxBufferedBytes` gets no more messages: it is told ARC_ERR_SLOW_CONSUMER
 *   (when its socket still takes it), closed with 1013 "try again later", and
 *   terminated if it has not closed after `slowCloseGraceMs`;
 * - at most `maxClients` connections (the next one gets HTTP 503);
 * - client frames of at most `maxPayloadBytes` (ws closes larger ones with 1009);
 * - a client that misses a pong for one heartbeat interval is terminated.
 */

export type ConsoleAuthorization =
  | { readonly ok: true; readonly geozones: readonly string[] | 'all' }
  | {
      readonly ok: false;
      readonly status: 401 | 403 | 429;
      readonly code: string;
      readonly message: string;
      /** Sent as Retry-After with a 429. */
      readonly retryAfterSeconds?: number;
    };

export interface ConsoleHubOptions {
  /** Decides on the HTTP upgrade request, before the WebSocket handshake completes. */
  readonly authorize: (request: IncomingMessage) => Promise<ConsoleAuthorization>;
  /** Unsent bytes a client may have queued on the server before it is disconnected (default 1 MiB). */
  readonly maxBufferedBytes?: number;
  /** Open connections at most (default 1000). */
  readonly maxClients?: number;
  /** Largest client → server frame (default 4 KiB). */
  readonly maxPayloadBytes?: number;
  /** Ping interval; a client that has not answered the previous ping is terminated (default 30 s). */
  readonly heartbeatMs?: number;
  /** How long a slow consumer gets to finish the close handshake before it is terminated (default 2 s). */
  readonly slowCloseGraceMs?: number;
  /** URL path served (default '/telemetry'). */
  readonly path?: string;
}

export interface ConsoleHubStats {
  readonly clients: number;
  /** Messages handed to clients' sockets (one per client per message). */
  readonly sent: number;
  /** Messages a client would have received but did not, because it had fallen behind. */
  readonly dropped: number;
  readonly disconnectedSlow: number;
  /** The most bytes ever seen queued on the server for one client (stays within maxBufferedBytes). */
  readonly peakBufferedBytes: number;
}

export const DEFAULT_MAX_BUFFERED_BYTES = 1024 * 1024;
export const DEFAULT_MAX_CLIENTS = 1000;
export const DEFAULT_MAX_PAYLOAD_BYTES = 4 * 1024;
export const DEFAULT_HEARTBEAT_MS = 30_000;
export const DEFAULT_SLOW_CLOSE_GRACE_MS = 2_000;
export { SLOW_CONSUMER_CLOSE_CODE };

const filterQuerySchema = z.strictObject({
  geozones: z.array(consoleGeozoneSchema).min(1).max(MAX_FILTER_GEOZONES).optional(),
  types: z.array(z.enum(consoleMessageTypes)).min(1).max(consoleMessageTypes.length).optional(),
});

/** What one connection receives: the key's geozones intersected with the ones it asked for. */
interface Filter {
  /** 'all' only when neither the key nor the client limits geozones. */
  readonly geozones: ReadonlySet<string> | 'all';
  readonly types: ReadonlySet<ConsoleMessageType>;
}

interface Client {
  readonly ws: WebSocket;
  /** The connection under ws, for corking (undefined if a ws version stops exposing it). */
  readonly socket: Duplex | undefined;
  readonly allowed: ReadonlySet<string> | 'all';
  filter: Filter;
  /** Answered the last ping. */
  alive: boolean;
  /** Being disconnected: it receives nothing more. */
  leaving: boolean;
  cancelGrace: (() => void) | undefined;
}

export class ConsoleHub {
  private readonly options: ConsoleHubOptions;
  private readonly maxBufferedBytes: number;
  private readonly dataBoundBytes: number;
  private readonly maxClients: number;
  private readonly slowCloseGraceMs: number;
  private readonly path: string;
  private readonly wss: WebSocketServer;
  private readonly clients = new Set<Client>();
  private readonly detachers: (() => void)[] = [];
  private readonly heartbeat: NodeJS.Timeout;
  /** Upgrades past the client limit check and waiting for authorize: they count against maxClients. */
  private upgrading = 0;
  private closed = false;
  private sent = 0;
  private dropped = 0;
  private disconnectedSlow = 0;
  private peakBufferedBytes = 0;

  constructor(options: ConsoleHubOptions) {
    this.options = options;
    this.maxBufferedBytes = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
    this.dataBoundBytes = dataBoundBytes(this.maxBufferedBytes);
    this.maxClients = options.maxClients ?? DEFAULT_MAX_CLIENTS;
    this.slowCloseGraceMs = options.slowCloseGraceMs ?? DEFAULT_SLOW_CLOSE_GRACE_MS;
    this.path = options.path ?? '/telemetry';
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES,
    });
    this.heartbeat = setInterval(() => this.beat(), options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /**
   * Serves the feed on `server` (fastify: `app.server`). Other WebSocket
   * endpoints on the same server (adapters/websocket/upgrade-routes.ts) keep
   * their paths; a path nobody serves is answered 404.
   */
  attach(server: HttpServer | HttpsServer): void {
    this.detachers.push(serveUpgrades(server, this.path, (request, socket, head, url) => this.upgrade(request, socket, head, url)));
  }

  /** Sends each message to every client that may see it; never waits for a client. */
  publish(messages: readonly ConsoleMessage[]): void {
    // Nobody watching: nothing to serialize.
    if (this.clients.size === 0) return;
    // Corked, a client's frames of this call leave in one write instead of one
    // system call per frame: fan-out cost is per client and call, not per message.
    const corked: Duplex[] = [];
    for (const client of this.clients) {
      if (client.socket === undefined || client.leaving) continue;
      client.socket.cork();
      corked.push(client.socket);
    }
    try {
      for (const message of messages) {
        // Serialized once; every client's socket gets the same buffer.
        const payload = Buffer.from(JSON.stringify(message));
        for (const client of this.clients) {
          if (client.leaving || !client.filter.types.has(message.type)) continue;
          if (client.filter.geozones !== 'all' && !client.filter.geozones.has(message.geozone)) continue;
          this.deliver(client, payload);
        }
      }
    } finally {
      for (const socket of corked) socket.uncork();
    }
  }

  stats(): ConsoleHubStats {
    return {
      clients: this.clients.size,
      sent: this.sent,
      dropped: this.dropped,
      disconnectedSlow: this.disconnectedSlow,
      peakBufferedBytes: this.peakBufferedBytes,
    };
  }

  /** Stops accepting, closes every client (1001 "going away"), and resolves once all are gone. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    for (const detach of this.detachers) detach();
    const gone = [...this.clients].map(
      (client) =>
        new Promise<void>((resolve) => {
          client.ws.once('close', () => resolve());
          client.leaving = true;
          client.ws.close(1001, 'server shutting down');
          const timer = setTimeout(() => client.ws.terminate(), this.slowCloseGraceMs);
          timer.unref();
          client.ws.once('close', () => clearTimeout(timer));
        }),
    );
    await Promise.all(gone);
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  // ---------------------------------------------------------------- handshake

  private async upgrade(request: IncomingMessage, socket: Duplex, head: Buffer, url: URL): Promise<void> {
    if (this.closed) return refuse(socket, 503, ErrorCodes.OVERLOADED, 'the console feed is shutting down; reconnect later');
    if (this.clients.size + this.upgrading >= this.maxClients) {
      return refuse(socket, 503, ErrorCodes.OVERLOADED, `the console feed is at its limit of ${this.maxClients} clients; retry later`);
    }
    // The peer may vanish while authorize runs; a socket error with no listener would crash the process.
    const onSocketError = (): void => undefined;
    socket.on('error', onSocketError);
    this.upgrading++;
    let verdict: ConsoleAuthorization;
    try {
      verdict = await this.options.authorize(request);
    } catch {
      this.upgrading--;
      return refuse(socket, 500, ErrorCodes.INVARIANT, 'authorization failed on the server; retry later');
    }
    try {
      if (socket.destroyed) return;
      if (this.closed) return refuse(socket, 503, ErrorCodes.OVERLOADED, 'the console feed is shutting down; reconnect later');
      if (!verdict.ok) return refuse(socket, verdict.status, verdict.code, verdict.message, verdict.retryAfterSeconds);
      const asked = parseFilterQuery(url.searchParams);
      if (!asked.ok) return refuse(socket, 400, ErrorCodes.VALIDATION, asked.message);
      const allowed: ReadonlySet<string> | 'all' = verdict.geozones === 'all' ? 'all' : new Set(verdict.geozones);
      socket.off('error', onSocketError);
      this.wss.handleUpgrade(request, socket, head, (ws) => this.adopt(ws, allowed, asked.geozones, asked.types));
    } finally {
      this.upgrading--;
    }
  }

  private adopt(ws: WebSocket, allowed: ReadonlySet<string> | 'all', geozones: readonly string[] | undefined, types: readonly ConsoleMessageType[] | undefined): void {
    const client: Client = { ws, socket: underlyingSocket(ws), allowed, filter: makeFilter(allowed, geozones, types), alive: true, leaving: false, cancelGrace: undefined };
    this.clients.add(client);
    ws.on('pong', () => (client.alive = true));
    ws.on('message', (data, isBinary) => this.onClientMessage(client, data, isBinary));
    // Errors (a frame over maxPayload, a broken socket) are followed by 'close'; nothing else to do.
    ws.on('error', () => undefined);
    ws.once('close', () => {
      client.cancelGrace?.();
      this.clients.delete(client);
    });
    this.reply(client, subscribedReply(client.filter));
  }

  // ---------------------------------------------------------------- client → server

  private onClientMessage(client: Client, data: RawData, isBinary: boolean): void {
    if (client.leaving) return;
    if (isBinary) return this.reply(client, errorReply(ErrorCodes.VALIDATION, 'send subscribe requests as JSON text frames'));
    let parsed: unknown;
    try {
      parsed = JSON.parse(rawText(data));
    } catch {
      return this.reply(client, errorReply(ErrorCodes.MALFORMED_JSON, 'not JSON; send {"type":"subscribe","geozones":[...],"types":[...]}'));
    }
    const request = subscribeRequestSchema.safeParse(parsed);
    if (!request.success) {
      const issue = request.error.issues[0];
      const where = issue === undefined || issue.path.length === 0 ? '' : ` at ${issue.path.join('.')}`;
      return this.reply(client, errorReply(ErrorCodes.VALIDATION, `bad subscribe request${where}: ${issue?.message ?? 'invalid'}`));
    }
    client.filter = makeFilter(client.allowed, request.data.geozones, request.data.types);
    this.reply(client, subscribedReply(client.filter));
  }

  // ---------------------------------------------------------------- server → client

  private reply(client: Client, reply: SubscribedReply | ErrorReply): void {
    this.deliver(client, Buffer.from(JSON.stringify(reply)), false);
  }

  private deliver(client: Client, payload: Buffer, countAsMessage = true): void {
    const ws = client.ws;
    if (ws.readyState !== ws.OPEN) return;
    if (!fitsBound(ws, payload.length, this.dataBoundBytes)) {
      if (countAsMessage) this.dropped++;
      this.disconnectSlow(client);
      return;
    }
    ws.send(payload, { binary: false });
    if (countAsMessage) this.sent++;
    const buffered = ws.bufferedAmount;
    if (buffered > this.peakBufferedBytes) this.peakBufferedBytes = buffered;
  }

  /** Stops feeding a client that fell behind; it gets a reason if its socket still takes one. */
  private disconnectSlow(client: Client): void {
    if (client.leaving) return;
    client.leaving = true;
    this.disconnectedSlow++;
    const ws = client.ws;
    const notice = errorReply(
      ErrorCodes.SLOW_CONSUMER,
      `more than ${this.maxBufferedBytes} bytes of the live feed were waiting for this client; reconnect, and narrow the filter if it keeps happening`,
    );
    client.cancelGrace = closeSlowConsumer(ws, JSON.stringify(notice), this.slowCloseGraceMs, realScheduler);
    this.peakBufferedBytes = Math.max(this.peakBufferedBytes, ws.bufferedAmount);
  }

  private beat(): void {
    for (const client of this.clients) {
      if (!client.alive) {
        client.ws.terminate();
        continue;
      }
      client.alive = false;
      client.ws.ping();
    }
  }
}

function makeFilter(allowed: ReadonlySet<string> | 'all', geozones: readonly string[] | undefined, types: readonly ConsoleMessageType[] | undefined): Filter {
  let visible: ReadonlySet<string> | 'all';
  if (geozones === undefined) visible = allowed;
  else if (allowed === 'all') visible = new Set(geozones);
  else visible = new Set(geozones.filter((geozone) => allowed.has(geozone)));
  return { geozones: visible, types: new Set(types ?? seedMessageTypes) };
}

function subscribedReply(filter: Filter): SubscribedReply {
  return {
    type: 'subscribed',
    geozones: filter.geozones === 'all' ? 'all' : [...filter.geozones].sort(),
    types: consoleMessageTypes.filter((type) => filter.types.has(type)),
  };
}

function errorReply(code: string, message: string): ErrorReply {
  return { type: 'error', code, message };
}

/** `?geozones=CAISO,ERCOT&types=telemetry,system` (each may also be repeated). */
function parseFilterQuery(
  params: URLSearchParams,
): { ok: true; geozones: string[] | undefined; types: ConsoleMessageType[] | undefined } | { ok: false; message: string } {
  const list = (name: string): string[] | undefined => {
    const values = params.getAll(name);
    return values.length === 0 ? undefined : values.flatMap((value) => value.split(',')).map((value) => value.trim());
  };
  const parsed = filterQuerySchema.safeParse({ geozones: list('geozones'), types: list('types') });
  if (parsed.success) return { ok: true, geozones: parsed.data.geozones, types: parsed.data.types };
  const issue = parsed.error.issues[0];
  return { ok: false, message: `bad filter in the query string at ${issue?.path.join('.') ?? '?'}: ${issue?.message ?? 'invalid'}; e.g. ?geozones=CAISO,ERCOT&types=telemetry,system` };
}
