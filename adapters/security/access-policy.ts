import { ErrorCodes } from '../../runtime/errors.js';
import type { Principal, Role } from './api-keys.js';

/**
 * Who may do what, and where. Four permissions:
 *
 * - `read`: GET views (nodes, reservations, summaries) and the console WebSocket.
 * - `infer`: POST /v1/inference.
 * - `ingest`: POST /v1/telemetry and /v1/results (node agents).
 * - `operate`: drain and resume nodes.
 *
 * Node agents get a dedicated `agent` role that holds `ingest` and nothing else.
 * Agent keys live on thousands of edge machines, so they are the keys most likely
 * to leak; giving agents operator keys would let one stolen node drain the fleet,
 * and giving them viewer/developer keys would let it read the region or spend
 * its inference capacity. An agent key scoped to its own geozone can, at worst,
 * send telemetry for that geozone. Operators keep `ingest` too, for tooling.
 *
 * Geozone isolation: a key scoped to CAISO may read or touch only CAISO. A
 * refusal says what was refused, never which geozones the key holds; for a
 * lookup by id (a node, a reservation) in a geozone the key cannot see, answer
 * 404 exactly as for an id that does not exist (see `canSee`), so a key cannot
 * learn what exists elsewhere.
 */

export const PERMISSIONS = ['read', 'infer', 'ingest', 'operate'] as const;
export type Permission = (typeof PERMISSIONS)[number];

const grants: Readonly<Record<Role, ReadonlySet<Permission>>> = {
  viewer: new Set(['read']),
  developer: new Set(['read', 'infer']),
  operator: new Set(['read', 'infer', 'ingest', 'operate']),
  agent: new Set(['ingest']),
};

export interface Allowed {
  readonly ok: true;
}

export interface Denied {
  readonly ok: false;
  readonly status: 403;
  readonly code: typeof ErrorCodes.FORBIDDEN;
  readonly message: string;
}

const ALLOWED: Allowed = Object.freeze({ ok: true });

const verbs: Readonly<Record<Permission, string>> = {
  read: 'read region state',
  infer: 'submit inference requests',
  ingest: 'post telemetry or results',
  operate: 'drain or resume nodes',
};

function denied(message: string): Denied {
  return { ok: false, status: 403, code: ErrorCodes.FORBIDDEN, message };
}

export function permissionsOf(role: Role): readonly Permission[] {
  return PERMISSIONS.filter((p) => grants[role].has(p));
}

/** Whether the principal's geozone scope includes this geozone. */
export function canSee(principal: Principal, geozone: string): boolean {
  return principal.geozones === 'all' || principal.geozones.includes(geozone);
}

/**
 * Checks a permission, and the geozone when the action is about one. Leave
 * `geozone` out only for actions that concern no single geozone (listings,
 * which filter with `visibleGeozones` instead).
 */
export function authorize(principal: Principal, permission: Permission, geozone?: string): Allowed | Denied {
  if (!grants[principal.role].has(permission)) return denied(`this API key may not ${verbs[permission]}`);
  if (geozone !== undefined && !canSee(principal, geozone)) return denied(`this API key may not ${verbs[permission]} in that geozone`);
  return ALLOWED;
}

/**
 * The geozones a listing may show: the requested ones the key can see (an
 * empty list when it can see none of them: an empty answer, not a 403, so
 * asking reveals nothing), or all the key's geozones when none were requested.
 * `'all'` means unfiltered.
 */
export function visibleGeozones(principal: Principal, requested?: readonly string[]): readonly string[] | 'all' {
  if (requested === undefined) return principal.geozones === 'all' ? 'all' : principal.geozones;
  const unique = [...new Set(requested)];
  return principal.geozones === 'all' ? unique : unique.filter((g) => canSee(principal, g));
}

