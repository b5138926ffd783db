import { randomBytes } from 'node:crypto';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import type { Principal } from './api-keys.js';

/**
 * One-time tickets for the console WebSocket. Browsers cannot set an
 * Authorization header on a WebSocket, and a key in the URL would end up in
 * proxy logs and browser history; so the page first asks
 * `POST /v1/console/tickets` (with its key, in a header) for a ticket and opens
 * the socket with `?ticket=...`. A ticket is 256 random bits, bound to the
 * principal that asked for it, lives `ttlMs` (default 30 s), and works once.
 *
 * No timers: expired tickets are refused when redeemed and pruned when new ones
 * are issued. Times are arguments, so tests (and the shard's clock) drive them.
 */

export interface TicketBookOptions {
  /** How long a ticket stays redeemable (default 30 000 ms). */
  readonly ttlMs?: number;
  /**
   * Most tickets held at once (default 10 000: 333 tickets/s sustained at the
   * default TTL, about 2 MB). Past it the oldest ticket is dropped, so a flood
   * costs bounded memory; per-key rate limits on the ticket route keep one key
   * from pushing out everyone else's.
   */
  readonly maxTickets?: number;
}

interface Held {
  readonly principal: Principal;
  readonly expiresAtMs: number;
}

export const DEFAULT_TICKET_TTL_MS = 30_000;
export const DEFAULT_MAX_TICKETS = 10_000;

export class TicketBook {
  readonly ttlMs: number;
  readonly maxTickets: number;
  /** Insertion order is issue order, which (with one TTL) is expiry order: pruning starts at the front. */
  readonly #held = new Map<string, Held>();

  constructor(options: TicketBookOptions = {}) {
    this.ttlMs = options.ttlMs ?? DEFAULT_TICKET_TTL_MS;
    this.maxTickets = options.maxTickets ?? DEFAULT_MAX_TICKETS;
    if (!Number.isInteger(this.ttlMs) || this.ttlMs <= 0) throw new ArcError(ErrorCodes.USAGE, `ticket ttlMs must be a positive integer, got ${this.ttlMs}`);
    if (!Number.isInteger(this.maxTickets) || this.maxTickets < 1) throw new ArcError(ErrorCodes.USAGE, `maxTickets must be a positive integer, got ${this.maxTickets}`);
  }

  get size(): number {
    return this.#held.size;
  }

  issue(principal: Principal, nowMs: number): { ticket: string; expiresAtMs: number } {
    this.#pruneExpired(nowMs);
    while (this.#held.size >= this.maxTickets) {
      const oldest = this.#held.keys().next();
      if (oldest.done === true) break;
      this.#held.delete(oldest.value);
    }
    const ticket = randomBytes(32).toString('base64url');
    const expiresAtMs = nowMs + this.ttlMs;
    this.#held.set(ticket, { principal, expiresAtMs });
    return { ticket, expiresAtMs };
  }

  /** The principal the ticket was issued to, once; undefined for unknown, used or expired tickets. */
  redeem(ticket: string, nowMs: number): Principal | undefined {
    const held = this.#held.get(ticket);
    if (held === undefined) return undefined;
    this.#held.delete(ticket);
    return nowMs < held.expiresAtMs ? held.principal : undefined;
  }

  #pruneExpired(nowMs: number): void {
    for (const [ticket, held] of this.#held) {
      if (held.expiresAtMs > nowMs) return;
      this.#held.delete(ticket);
    }
  }
}
