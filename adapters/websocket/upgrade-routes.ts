import { STATUS_CODES, type IncomingMessage, type Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';

/**
 * WebSocket endpoints sharing one http/https server (the console feed at
 * /telemetry, node agents at /v1/agent). Node hands every upgrade request to
 * every 'upgrade' listener, so endpoints that each listened on their own could
 * not tell "another endpoint's path" from "nobody's path": either they all
 * stay silent and an unknown path hangs until the client gives up, or each
 * answers 404 and destroys the others' sockets. Here each server gets one
 * listener that routes by path, and answers 404 (naming the endpoints) only
 * for a path no endpoint claims. Upgrade listeners added by other code are
 * respected: when the server has any, unclaimed paths are left to them.
 */

export type UpgradeHandler = (request: IncomingMessage, socket: Duplex, head: Buffer, url: URL) => void | Promise<void>;

type AnyServer = HttpServer | HttpsServer;

interface Routes {
  readonly handlers: Map<string, UpgradeHandler>;
  readonly listener: (request: IncomingMessage, socket: Duplex, head: Buffer) => void;
}

const routesByServer = new WeakMap<AnyServer, Routes>();

/**
 * Routes upgrades for `path` on `server` to `handler`; returns the function
 * that gives the path up (the server's listener goes once no path is left).
 */
export function serveUpgrades(server: AnyServer, path: string, handler: UpgradeHandler): () => void {
  let routes = routesByServer.get(server);
  if (routes === undefined) {
    const handlers = new Map<string, UpgradeHandler>();
    const listener = (request: IncomingMessage, socket: Duplex, head: Buffer): void => route(server, handlers, listener, request, socket, head);
    routes = { handlers, listener };
    routesByServer.set(server, routes);
    server.on('upgrade', listener);
  }
  if (routes.handlers.has(path)) throw new ArcError(ErrorCodes.INVARIANT, `two WebSocket endpoints claim ${path} on the same server`);
  routes.handlers.set(path, handler);
  const claimed = routes;
  return () => {
    if (claimed.handlers.get(path) !== handler) return;
    claimed.handlers.delete(path);
    if (claimed.handlers.size > 0) return;
    server.off('upgrade', claimed.listener);
    routesByServer.delete(server);
  };
}

function route(
  server: AnyServer,
  handlers: ReadonlyMap<string, UpgradeHandler>,
  listener: (...args: never[]) => void,
  request: IncomingMessage,
  socket: Duplex,
  head: Buffer,
): void {
  const othersListen = server.listeners('upgrade').some((other) => other !== listener);
  let url: URL;
  try {
    url = new URL(request.url ?? '/', 'http://websocket.invalid');
  } catch {
    // Node's parser lets request targets through that URL refuses (`http://[/x`).
    if (!othersListen) refuseUpgrade(socket, 400, ErrorCodes.VALIDATION, 'the request target is not a valid URL');
    return;
  }
  const handler = handlers.get(url.pathname);
  if (handler === undefined) {
    if (!othersListen) {
      const served = [...handlers.keys()].sort().join(', ');
      refuseUpgrade(socket, 404, ErrorCodes.NOT_FOUND, `no WebSocket endpoint at ${url.pathname}; this server has ${served}`);
    }
    return;
  }
  // Never an unhandled rejection or a crash: whatever goes wrong with one upgrade ends that socket only.
  try {
    const done = handler(request, socket, head, url);
    if (done !== undefined) done.catch(() => socket.destroy());
  } catch {
    socket.destroy();
  }
}

/** Answers an upgrade with a plain HTTP error and a coded JSON body (no WebSocket), then closes the connection. */
export function refuseUpgrade(socket: Duplex, status: number, code: string, message: string, retryAfterSeconds?: number): void {
  if (socket.destroyed) return;
  const body = JSON.stringify({ code, message });
  const retryAfter = retryAfterSeconds === undefined ? '' : `Retry-After: ${Math.max(0, Math.ceil(retryAfterSeconds))}\r\n`;
  socket.once('finish', () => socket.destroy());
  socket.once('error', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
      'Connection: close\r\n' +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      retryAfter +
      '\r\n' +
      body,
  );
}
