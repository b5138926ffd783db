import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { ErrorCodes } from '../../runtime/errors.js';

/**
 * Requests no route takes: 405 with an Allow header when the path has routes
 * under other methods, 404 when it has none, whatever the method.
 *
 * - Methods Node parses reach fastify, which sends those it routes nowhere
 *   (QUERY, PROPFIND, OPTIONS...) to its not-found handling; that would read
 *   and check their body first (a QUERY without a content-type became a 500).
 *   They are answered in onRequest instead, before any body is read.
 * - CONNECT never reaches fastify (Node hands it to 'connect' listeners and
 *   drops the connection when there are none), nor does a method Node's parser
 *   does not know ('clientError'): both are answered on the socket here.
 *
 * Which methods a path has is asked of fastify's own router (findRoute with
 * the request's URL), so this answer and routing never disagree.
 */
export interface RouteMisses {
  /** Hooks into the app; call before any route is registered (it learns the methods in use from the routes). */
  install(app: FastifyInstance): void;
  /** For fastify's `clientErrorHandler` option: requests Node's parser refused. */
  readonly onClientError: (error: Error & { code?: string; rawPacket?: unknown }, socket: Duplex) => void;
}

export function routeMisses(): RouteMisses {
  const methodsInUse = new Set<string>();
  let router: FastifyInstance | undefined;

  // A route whose path parameter would be empty (`/v1/nodes/` against `/v1/nodes/:id`) is no route:
  // the document's paths name a value there, and find-my-way would otherwise match the empty string.
  const methodsOf = (url: string): string[] =>
    router === undefined
      ? []
      : [...methodsInUse]
          .filter((method) => {
            const found = router?.findRoute({ method, url });
            return found !== null && found !== undefined && !hasEmptyParam(found.params);
          })
          .sort();

  const missBody = (method: string, allow: readonly string[]) =>
    allow.length === 0
      ? { code: ErrorCodes.NOT_FOUND, message: 'no such route; the routes are listed in /openapi.json' }
      : { code: ErrorCodes.METHOD_NOT_ALLOWED, message: `this path does not take ${method}; it takes ${allow.join(', ')}` };

  /** Answers on the bare socket (no request object exists) and closes it: the parser cannot go on from here. */
  const answerOnSocket = (socket: Duplex, status: number, body: object, allow?: readonly string[]): void => {
    if (socket.destroyed || !socket.writable) return;
    const text = JSON.stringify(body);
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
        'Connection: close\r\n' +
        'Content-Type: application/json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(text)}\r\n` +
        (allow === undefined || allow.length === 0 ? '' : `Allow: ${allow.join(', ')}\r\n`) +
        `\r\n${text}`,
    );
    socket.once('finish', () => socket.destroy());
  };

  const answerMiss = (socket: Duplex, method: string, url: string): void => {
    // As the router answers such a path for any method (fastify's FST_ERR_BAD_URL).
    if (!decodablePath(url)) return answerOnSocket(socket, 400, { code: ErrorCodes.VALIDATION, message: 'the URL path is not valid percent-encoded UTF-8' });
    const allow = url.startsWith('/') ? methodsOf(url) : [];
    answerOnSocket(socket, allow.length === 0 ? 404 : 405, missBody(method, allow), allow);
  };

  return {
    install(app) {
      router = app;
      app.addHook('onRoute', (route) => {
        for (const method of [route.method].flat()) methodsInUse.add(method.toUpperCase());
      });
      app.addHook('onRequest', (request, reply, done) => {
        if (!request.is404 && !hasEmptyParam(request.params)) {
          done();
          return;
        }
        // Answered here: neither the not-found handler nor any body parsing runs.
        const allow = methodsOf(request.url);
        if (allow.length > 0) void reply.header('allow', allow.join(', '));
        void reply.code(allow.length === 0 ? 404 : 405).send(missBody(request.method, allow));
      });
      app.server.on('connect', (request: IncomingMessage, socket: Duplex) => {
        socket.on('error', () => socket.destroy());
        answerMiss(socket, 'CONNECT', request.url ?? '');
      });
    },

    onClientError(error, socket) {
      // A reset connection has nobody left to answer.
      if (error.code === 'ECONNRESET' || socket.destroyed) return;
      socket.on('error', () => socket.destroy());
      if (error.code === 'HPE_INVALID_METHOD') {
        // The request line is in the bytes the parser gave up on: answer for its path like any other method.
        const raw = Buffer.isBuffer(error.rawPacket) ? error.rawPacket.toString('latin1') : '';
        const [method = '', target = ''] = (raw.split('\r\n', 1)[0] ?? '').split(' ');
        if (/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}$/.test(method)) return answerMiss(socket, method, target);
      }
      if (error.code === 'HPE_HEADER_OVERFLOW') {
        return answerOnSocket(socket, 431, { code: ErrorCodes.PAYLOAD_TOO_LARGE, message: 'the request headers are over the size limit' });
      }
      if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
        return answerOnSocket(socket, 408, { code: ErrorCodes.VALIDATION, message: 'the request did not arrive in time; send it again' });
      }
      answerOnSocket(socket, 400, { code: ErrorCodes.VALIDATION, message: 'not a valid HTTP/1.1 request' });
    },
  };
}

function hasEmptyParam(params: unknown): boolean {
  if (typeof params !== 'object' || params === null) return false;
  return Object.values(params).some((value) => value === '');
}

function decodablePath(url: string): boolean {
  try {
    decodeURIComponent(url.split('?', 1)[0] ?? '');
    return true;
  } catch {
    return false;
  }
}
