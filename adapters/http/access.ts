import type { IncomingHttpHeaders } from 'node:http';

/**
 * What the HTTP API and the console need to know about who is calling: the
 * principal a key stands for, what each route requires, and a guard that
 * decides from the headers alone (before any body is read or any upgrade is
 * completed). The key store, roles and rate limits behind a guard live in
 * adapters/security; with no keys configured the region runs open.
 */
export type Permission = 'read' | 'infer' | 'ingest' | 'operate';

export interface Principal {
  /** A printable, non-secret id of the key (for logs and events; never the key). */
  readonly keyId: string;
  readonly role: string;
  /** The geozones the key may see and touch. */
  readonly geozones: readonly string[] | 'all';
}

export interface Refusal {
  readonly status: 401 | 403 | 429;
  readonly code: string;
  readonly message: string;
  readonly retryAfterMs?: number;
}

export interface RequestGuard {
  /** Checks the key, its role and its request budget from the headers. */
  admit(headers: IncomingHttpHeaders, permission: Permission): Principal | Refusal;
  /** A short-lived single-use ticket for a browser's WebSocket (browsers cannot set its headers). */
  issueTicket(principal: Principal): { ticket: string; expiresAtMs: number };
  /** Told of every refusal (a system event and a log line; never the key itself). */
  refused(refusal: Refusal, context: { readonly method: string; readonly path: string; readonly keyId?: string }): void;
}

/** The region without API keys: every caller may do everything (bind to loopback only). */
export const openAccess: Principal = { keyId: 'open', role: 'operator', geozones: 'all' };

export function isRefusal(value: Principal | Refusal): value is Refusal {
  return 'status' in value;
}

export function inScope(principal: Principal, geozone: string): boolean {
  return principal.geozones === 'all' || principal.geozones.includes(geozone);
}
