import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { inScope, isRefusal, openAccess, type Permission, type Principal, type Refusal, type RequestGuard } from './access.js';

/**
 * Puts a guard in front of every route of an app that declares
 * `config: { permission }` (routes without one are public): the key, its role
 * and its budget are settled in onRequest, before the body is read. Routes
 * then ask `principalOf(request)` what the caller may reach.
 */
export interface GuardedRoutes {
  readonly principalOf: (request: FastifyRequest) => Principal;
  /** Which geozones the caller reaches. */
  readonly scopeOf: (request: FastifyRequest) => (geozone: string) => boolean;
  /** Answers a refusal (401 with WWW-Authenticate, 429 with Retry-After) and reports it to the guard. */
  readonly refuse: (reply: FastifyReply, request: FastifyRequest, refusal: Refusal) => FastifyReply;
  /** A geozone the key does not reach: 403, the same answer whatever the geozone holds. */
  readonly outOfScope: (reply: FastifyReply, request: FastifyRequest) => FastifyReply;
}

/** Paths whose routes must say what they need: a route there without a permission is a bug, not a public route. */
const GUARDED_PATHS = /^\/(v1|metrics|inspector\/api)(\/|$)/;

export function installGuard(app: FastifyInstance, guard: RequestGuard | undefined): GuardedRoutes {
  // Deny by default: registering such a route without `config.permission` fails at start, not in production.
  app.addHook('onRoute', (route) => {
    const permission = (route.config as { permission?: Permission } | undefined)?.permission;
    if (GUARDED_PATHS.test(route.url) && permission === undefined) {
      throw new ArcError(ErrorCodes.INVARIANT, `route ${route.method.toString()} ${route.url} declares no permission (config: { permission })`);
    }
  });
  const principals = new WeakMap<FastifyRequest, Principal>();
  const principalOf = (request: FastifyRequest): Principal => principals.get(request) ?? openAccess;

  const refuse = (reply: FastifyReply, request: FastifyRequest, refusal: Refusal): FastifyReply => {
    const keyId = refusal.keyId ?? principals.get(request)?.keyId;
    guard?.refused(refusal, { method: request.method, path: request.routeOptions.url ?? request.url.split('?')[0] ?? '', ...(keyId === undefined ? {} : { keyId }) });
    if (refusal.status === 401) void reply.header('www-authenticate', 'Bearer realm="arcnet"');
    if (refusal.retryAfterMs !== undefined) void reply.header('retry-after', String(Math.max(1, Math.ceil(refusal.retryAfterMs / 1000))));
    return reply.code(refusal.status).send({ code: refusal.code, message: refusal.message });
  };

  // An open API (no keys) adds no hook: every hook is a call on every request, whatever the route.
  if (guard !== undefined) {
    app.addHook('onRequest', (request, reply, done) => {
      const permission = (request.routeOptions.config as { permission?: Permission }).permission;
      if (permission === undefined) return done();
      const admitted = guard.admit(request.headers, permission);
      if (!isRefusal(admitted)) {
        principals.set(request, admitted);
        return done();
      }
      // Answered here: the route (and its body) is never reached.
      refuse(reply, request, admitted);
    });
  }

  return {
    principalOf,
    scopeOf: (request) => {
      const principal = principalOf(request);
      return (geozone) => inScope(principal, geozone);
    },
    refuse,
    outOfScope: (reply, request) => refuse(reply, request, { status: 403, code: ErrorCodes.FORBIDDEN, message: 'this key may not act on that geozone' }),
  };
}
