import type { IncomingHttpHeaders } from 'node:http';
import type { Permission } from '../security/access-policy.js';
import type { Principal } from '../security/api-keys.js';

/**
 * What the HTTP API needs from access control: a guard that decides from the
 * headers alone (before any body is read), and the principal it admits. The
 * keys, roles and budgets behind a guard are in adapters/security; with no keys
 * configured the region runs open.
 */
export type { Permission, Principal };
export { canSee as inScope } from '../security/access-policy.js';

export interface Refusal {
  readonly status: 401 | 403 | 429;
  readonly code: string;
  readonly message: string;
  readonly retryAfterMs?: number;
  /** The (non-secret) id of a valid key refused for its role or budget; never sent to the client. */
  readonly keyId?: string;
}

export interface RequestGuard {
  /** Checks the key, its role and its request budget from the headers. */
  admit(headers: IncomingHttpHeaders, permission: Permission): Principal | Refusal;
  /** A short-lived single-use ticket for a browser's WebSocket (browsers cannot set its headers). */
  issueTicket(principal: Principal): { ticket: string; expiresAtMs: number };
  /** Told of every refusal (a system event and a log line; never the key itself). */
  refused(refusal: Refusal, context: RefusalContext): void;
}

export interface RefusalContext {
  readonly method: string;
  readonly path: string;
  readonly keyId?: string;
}

/** The region without API keys: every caller may do everything (bind to loopback only). */
export const openAccess: Principal = { keyId: 'open', role: 'operator', geozones: 'all' };

export function isRefusal(value: Principal | Refusal): value is Refusal {
  return 'status' in value;
}
