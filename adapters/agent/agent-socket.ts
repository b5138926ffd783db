import type { IncomingMessage } from 'node:http';
import { WebSocket } from 'ws';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';

/**
 * The node agent's side of `/v1/agent` (the region's side is agent-channel.ts): one
 * WebSocket connection, JSON text frames in and out. Reconnecting, and what the
 * messages mean, is the agent's business (agent/region-session.ts); this file is
 * the only one of the agent's that imports `ws`.
 *
 * A region that vanishes without closing the TCP connection (a host lost, a
 * partition) would leave the socket open for ever: the connection pings every
 * `heartbeatMs` and terminates itself when the previous ping went unanswered.
 */
export interface AgentSocketOptions {
  /** ws:// or wss:// URL of the channel, query included. */
  readonly url: string;
  /** The agent API key (sent as `Authorization: Bearer`); none when the region has no keys. */
  readonly apiKey?: string | undefined;
  /** PEM CA(s) the region's certificate must chain to (wss). */
  readonly caPem?: string | undefined;
  /** Client certificate and key (PEM), for a region that asks for one. */
  readonly certPem?: string | undefined;
  readonly keyPem?: string | undefined;
  /** Time to open the connection before giving up (ms). */
  readonly connectTimeoutMs: number;
  readonly heartbeatMs: number;
  /** Largest region → agent frame accepted (bytes). */
  readonly maxFrameBytes: number;
}

export interface AgentSocketHandlers {
  /**
   * A parsed JSON frame (frames that are not JSON objects are reported as `undefined`), with
   * the connection it came on: the first frame can arrive before the promise of
   * openAgentSocket has handed the connection over.
   */
  onMessage(message: Record<string, unknown> | undefined, socket: AgentSocket): void;
  /** Once, when the connection is gone (by either side). */
  onClose(code: number, reason: string, socket: AgentSocket): void;
}

export interface AgentSocket {
  /** Sends a JSON message; false when the connection is not open (nothing was sent). */
  send(message: Record<string, unknown>): boolean;
  /** Starts the close handshake (terminates after `graceMs`). */
  close(graceMs: number): Promise<void>;
}

/**
 * Opens one connection. Rejects with ArcError ARC_ERR_UNAUTHENTICATED or
 * ARC_ERR_FORBIDDEN when the region refused the key (retrying will not help),
 * and with a plain Error for anything a retry may cure (refused, reset, timeout).
 */
export function openAgentSocket(options: AgentSocketOptions, handlers: AgentSocketHandlers): Promise<AgentSocket> {
  const ws = new WebSocket(options.url, {
    headers: options.apiKey === undefined ? {} : { authorization: `Bearer ${options.apiKey}` },
    handshakeTimeout: options.connectTimeoutMs,
    maxPayload: options.maxFrameBytes,
    ...(options.caPem === undefined ? {} : { ca: options.caPem }),
    ...(options.certPem === undefined ? {} : { cert: options.certPem }),
    ...(options.keyPem === undefined ? {} : { key: options.keyPem }),
    minVersion: 'TLSv1.3',
  });
  const api: AgentSocket = {
    send: (message) => {
      if (ws.readyState !== WebSocket.OPEN) return false;
      ws.send(JSON.stringify(message));
      return true;
    },
    close: (graceMs) =>
      new Promise<void>((done) => {
        if (ws.readyState === WebSocket.CLOSED) return done();
        const timer = setTimeout(() => ws.terminate(), graceMs);
        ws.once('close', () => {
          clearTimeout(timer);
          done();
        });
        ws.close(1000, 'agent stopping');
      }),
  };
  return new Promise((resolve, reject) => {
    let opened = false;
    let alive = true;
    let heartbeat: NodeJS.Timeout | undefined;
    ws.on('unexpected-response', (_request, response: IncomingMessage) => {
      let text = '';
      response.on('data', (chunk: Buffer) => {
        if (text.length < 4096) text += chunk.toString('utf8');
      });
      response.on('end', () => {
        ws.terminate();
        reject(refusal(response.statusCode ?? 0, text));
      });
    });
    ws.on('error', (error) => {
      if (!opened) reject(error);
    });
    ws.on('open', () => {
      opened = true;
      heartbeat = setInterval(() => {
        if (!alive) {
          ws.terminate();
          return;
        }
        alive = false;
        ws.ping();
      }, options.heartbeatMs);
      heartbeat.unref();
      resolve(api);
    });
    ws.on('pong', () => (alive = true));
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      alive = true;
      handlers.onMessage(isBinary ? undefined : parseObject(data.toString('utf8')), api);
    });
    ws.on('close', (code: number, reason: Buffer) => {
      if (heartbeat !== undefined) clearInterval(heartbeat);
      if (opened) handlers.onClose(code, reason.toString('utf8'), api);
      else reject(new Error(`connection closed before it opened (${code})`));
    });
  });
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The region's answer to the upgrade: 401/403 are final (the key), anything else may pass. */
function refusal(status: number, body: string): Error {
  let detail = body.slice(0, 300);
  try {
    const parsed = JSON.parse(body) as { code?: unknown; message?: unknown };
    if (typeof parsed.message === 'string') detail = `${typeof parsed.code === 'string' ? `${parsed.code}: ` : ''}${parsed.message}`;
  } catch {
    // not JSON: keep the text
  }
  if (status === 401) return new ArcError(ErrorCodes.UNAUTHENTICATED, `the region refused the agent key (401 ${detail}): give a valid agent key in ARCNET_AGENT_KEY or --key-file`);
  if (status === 403) {
    return new ArcError(ErrorCodes.FORBIDDEN, `the region refused this node (403 ${detail}): the key needs the agent role and the node's geozone (arcnet keys create --role agent --geozones G)`);
  }
  return new Error(`the region answered the upgrade with ${status} ${detail}`);
}
