import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Permission, Principal, Refusal, RefusalContext, RequestGuard } from '../http/access.js';
import { ErrorCodes } from '../../runtime/errors.js';
import { authorize } from './access-policy.js';
import { isAuthFailure, type ApiKeyStore } from './api-keys.js';
import type { RateLimiter } from './rate-limiter.js';
import type { TicketBook } from './tickets.js';

/**
 * The region's guard over its HTTP API and console WebSocket: the key (Bearer
 * header, or for a browser's WebSocket a single-use ticket), then the key's role,
 * then its request budget. Geozone scope is checked later, on the resource.
 */
export interface KeyGuardOptions {
  readonly keys: ApiKeyStore;
  readonly limiter: RateLimiter;
  readonly tickets: TicketBook;
  /** Wall-clock ms (tickets and budgets are about real time, not the journal's). */
  readonly nowMs: () => number;
  /** Every refusal: the region turns it into a system event and a log line. */
  readonly onRefused: (refusal: Refusal, context: RefusalContext) => void;
}

export interface KeyGuard extends RequestGuard {
  /**
   * For a WebSocket upgrade request: a `ticket` query parameter or the
   * Authorization header, checked for `permission` (the console reads; node
   * agents on /v1/agent need `ingest`).
   */
  admitUpgrade(request: IncomingMessage, permission?: Permission): Principal | Refusal;
}

export function createKeyGuard(options: KeyGuardOptions): KeyGuard {
  const budget = (principal: Principal): Principal | Refusal => {
    const taken = options.limiter.take(principal.keyId, options.nowMs());
    if (taken.ok) return principal;
    return { status: 429, code: ErrorCodes.RATE_LIMITED, message: 'request budget for this key is spent; retry later', retryAfterMs: taken.retryAfterMs, keyId: principal.keyId };
  };
  const roleAllows = (principal: Principal, permission: Permission): Principal | Refusal => {
    const allowed = authorize(principal, permission);
    return allowed.ok ? budget(principal) : { status: allowed.status, code: allowed.code, message: allowed.message, keyId: principal.keyId };
  };
  const admit = (headers: IncomingHttpHeaders, permission: Permission): Principal | Refusal => {
    const principal = options.keys.authenticate(headers.authorization);
    if (isAuthFailure(principal)) return { status: principal.status, code: principal.code, message: principal.message };
    return roleAllows(principal, permission);
  };
  return {
    admit,
    admitUpgrade: (request, permission = 'read') => {
      const ticket = new URL(request.url ?? '/', 'http://region').searchParams.get('ticket');
      if (ticket === null) return admit(request.headers, permission);
      const principal = options.tickets.redeem(ticket, options.nowMs());
      if (principal === undefined) return { status: 401, code: ErrorCodes.UNAUTHENTICATED, message: 'unknown, used or expired ticket' };
      return roleAllows(principal, permission);
    },
    issueTicket: (principal) => options.tickets.issue(principal, options.nowMs()),
    refused: options.onRefused,
  };
}
