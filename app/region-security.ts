import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type { Logger } from 'pino';
import type { Refusal, RefusalContext } from '../adapters/http/access.js';
import { ApiKeyStore } from '../adapters/security/api-keys.js';
import { createKeyGuard, type KeyGuard } from '../adapters/security/key-guard.js';
import { RateLimiter } from '../adapters/security/rate-limiter.js';
import { TicketBook } from '../adapters/security/tickets.js';
import { httpsServerOptions, parseClientAuth } from '../adapters/security/tls-options.js';

/** The region's security settings, as `arcnet region` and `arcnet inspect` take them. */
export interface SecurityOptions {
  /** Keys file (`arcnet keys create`); ARCNET_API_KEYS in the environment otherwise; open without either. */
  readonly apiKeysFile?: string | undefined;
  /** Requests per second per key, with a burst of twice that. */
  readonly rateLimitPerSec: number;
  readonly tlsCert?: string | undefined;
  readonly tlsKey?: string | undefined;
  readonly tlsCa?: string | undefined;
  readonly tlsClientAuth?: string | undefined;
}

export const defaultRateLimitPerSec = 1_000;

export interface RegionSecurity {
  readonly guard: KeyGuard | undefined;
  readonly https: HttpsServerOptions | undefined;
  /** How many keys were loaded (0: the API is open). */
  readonly keys: number;
}

/**
 * Loads the keys and TLS files once at start. Without keys the API and the
 * console are open, which is only sensible on loopback: the log says so.
 */
export function regionSecurity(
  options: SecurityOptions,
  env: Readonly<Record<string, string | undefined>>,
  log: Logger,
  onRefused: (refusal: Refusal, context: RefusalContext) => void,
): RegionSecurity {
  const store = options.apiKeysFile !== undefined ? ApiKeyStore.fromFile(options.apiKeysFile) : ApiKeyStore.fromEnv(env);
  const guard =
    store === undefined
      ? undefined
      : createKeyGuard({
          keys: store,
          limiter: new RateLimiter({ ratePerSec: options.rateLimitPerSec, burst: options.rateLimitPerSec * 2 }),
          tickets: new TicketBook(),
          nowMs: () => Date.now(),
          onRefused,
        });
  if (guard === undefined) log.warn('no API keys configured (--api-keys or ARCNET_API_KEYS): the HTTP API and the console are open to anyone who reaches them');
  const tlsGiven = options.tlsCert !== undefined || options.tlsKey !== undefined;
  const https = tlsGiven
    ? httpsServerOptions({ certFile: options.tlsCert ?? '', keyFile: options.tlsKey ?? '', caFile: options.tlsCa, clientAuth: parseClientAuth(options.tlsClientAuth) })
    : undefined;
  return { guard, https, keys: store?.size ?? 0 };
}
