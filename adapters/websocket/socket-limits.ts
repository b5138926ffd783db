import type { Duplex } from 'node:stream';
import type { RawData, WebSocket } from 'ws';
import type { Scheduler } from '../../runtime/clock.js';

/**
 * The per-connection send bound shared by the region's WebSocket endpoints.
 * A client that does not read must never cost the region memory: once the
 * bytes waiting for it on the server (ws `bufferedAmount`) would pass the
 * bound, it is sent no more data, told why (when its socket still takes it),
 * closed with 1013 "try again later", and terminated if it has not finished
 * the close handshake after a grace period.
 */

/** Close code for a slow consumer: 1013 "Try Again Later" (RFC 6455 registry), the client may reconnect. */
export const SLOW_CONSUMER_CLOSE_CODE = 1013;
/**
 * Of a connection's byte bound, this much is kept free for the last things a
 * slow consumer is sent (the error message, a ping, the close frame), so the
 * bound holds even for them.
 */
export const FAREWELL_RESERVE_BYTES = 512;
export const MIN_BUFFERED_BYTES = 4 * FAREWELL_RESERVE_BYTES;

/** The bytes data messages may fill: `maxBufferedBytes` less the farewell reserve. */
export function dataBoundBytes(maxBufferedBytes: number): number {
  if (maxBufferedBytes < MIN_BUFFERED_BYTES) throw new RangeError(`maxBufferedBytes must be at least ${MIN_BUFFERED_BYTES}`);
  return maxBufferedBytes - FAREWELL_RESERVE_BYTES;
}

/** Whether `bytes` more still fit under the data bound of this connection. */
export function fitsBound(ws: WebSocket, bytes: number, boundBytes: number): boolean {
  return ws.bufferedAmount + bytes <= boundBytes;
}

/**
 * Sends the slow consumer its notice and a 1013 close; terminates it after
 * `graceMs` (a client that does not read will not answer the close either).
 * Returns the function that cancels the grace timer (call it on 'close').
 */
export function closeSlowConsumer(ws: WebSocket, notice: string, graceMs: number, scheduler: Scheduler): () => void {
  ws.send(notice);
  ws.close(SLOW_CONSUMER_CLOSE_CODE, 'slow consumer');
  return scheduler.after(graceMs, () => ws.terminate());
}

/**
 * ws keeps the connection in `_socket` (since ws 1.x; not part of its typed
 * API). Only cork/uncork are used on it, and only when it looks like a stream.
 */
export function underlyingSocket(ws: WebSocket): Duplex | undefined {
  const socket = (ws as unknown as { _socket?: unknown })._socket;
  if (typeof socket !== 'object' || socket === null) return undefined;
  const stream = socket as Partial<Duplex>;
  return typeof stream.cork === 'function' && typeof stream.uncork === 'function' ? (socket as Duplex) : undefined;
}

export function rawByteLength(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((sum, chunk) => sum + chunk.byteLength, 0);
  return data.byteLength;
}

export function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  return Buffer.from(data).toString('utf8');
}
