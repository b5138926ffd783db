import test from 'ava';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { authorize, PERMISSIONS, visibleGeozones, type Permission } from '../../adapters/security/access-policy.js';
import {
  API_KEYS_ENV,
  ApiKeyStore,
  appendKeyToFile,
  createKey,
  isAuthFailure,
  keyIdOf,
  readKeysFile,
  removeKeyFromFile,
  ROLES,
  type Principal,
  type Role,
} from '../../adapters/security/api-keys.js';
import { RateLimiter } from '../../adapters/security/rate-limiter.js';
import { TicketBook } from '../../adapters/security/tickets.js';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { tempDir } from '../helpers/fixtures.js';

function principal(role: Role, geozones: readonly string[] | 'all' = 'all', keyId = `k-${role}`): Principal {
  return { keyId, role, geozones };
}

test('a created key has the arc_ format, and the keys file (mode 0600) holds its hash, never the key', (t) => {
  const { dir, cleanup } = tempDir();
  t.teardown(cleanup);
  const path = join(dir, 'keys.json');
  const { key, stored } = createKey({ role: 'developer', geozones: ['CAISO'], label: 'ci', nowMs: Date.UTC(2030, 0, 1) });
  t.regex(key, /^arc_[A-Za-z0-9_-]{43}$/);
  t.is(stored.id, keyIdOf(key));
  t.is(stored.createdAt, '2030-01-01T00:00:00.000Z');
  appendKeyToFile(path, stored);

  const text = readFileSync(path, 'utf8');
  t.false(text.includes(key), 'no plaintext key in the file');
  t.false(text.includes(key.slice(4)), 'not even the key body');
  t.true(text.includes(stored.hash));
  t.is(statSync(path).mode & 0o777, 0o600);
  t.deepEqual(readKeysFile(path), { version: 1, keys: [stored] });

  const second = createKey({ role: 'viewer', geozones: ['*'] });
  appendKeyToFile(path, second.stored);
  t.is(statSync(path).mode & 0o777, 0o600, 'rewrites keep 0600');
  t.deepEqual(readKeysFile(path).keys.map((k) => k.id), [stored.id, second.stored.id]);
  t.not(createKey({ role: 'viewer', geozones: ['*'] }).key, second.key, 'keys are random');
});

test('a revoked key is gone from the file and a store loaded from it refuses the key', (t) => {
  const { dir, cleanup } = tempDir();
  t.teardown(cleanup);
  const path = join(dir, 'keys.json');
  const a = createKey({ role: 'operator', geozones: ['*'] });
  const b = createKey({ role: 'viewer', geozones: ['PJM'] });
  appendKeyToFile(path, a.stored);
  appendKeyToFile(path, b.stored);
  t.false(isAuthFailure(ApiKeyStore.fromFile(path).authenticate(`Bearer ${a.key}`)));

  t.is(removeKeyFromFile(path, a.stored.id).id, a.stored.id);
  t.deepEqual(readKeysFile(path).keys.map((k) => k.id), [b.stored.id]);
  const store = ApiKeyStore.fromFile(path);
  t.like(store.authenticate(`Bearer ${a.key}`), { status: 401, code: ErrorCodes.UNAUTHENTICATED });
  t.false(isAuthFailure(store.authenticate(`Bearer ${b.key}`)));

  const again = t.throws(() => removeKeyFromFile(path, a.stored.id), { instanceOf: ArcError });
  t.is(again.code, ErrorCodes.NOT_FOUND);
});

test('authenticate: missing header, wrong scheme, malformed and unknown keys are UNAUTHENTICATED; the right key is its principal', (t) => {
  const viewer = createKey({ role: 'viewer', geozones: ['CAISO', 'ERCOT'] });
  const admin = createKey({ role: 'operator', geozones: ['*'] });
  const store = new ApiKeyStore([viewer.stored, admin.stored]);
  const stranger = createKey({ role: 'operator', geozones: ['*'] });

  for (const header of [undefined, '', '   ', `Basic ${viewer.key}`, viewer.key, `Bearer`, `Bearer ${stranger.key}`, `Bearer ${viewer.key}x`, 'Bearer arc_short', `Bearer ${viewer.key} extra`]) {
    const result = store.authenticate(header);
    t.true(isAuthFailure(result), `refused: ${String(header)}`);
    if (!isAuthFailure(result)) continue;
    t.is(result.status, 401);
    t.is(result.code, ErrorCodes.UNAUTHENTICATED);
    for (const k of [viewer.key, stranger.key]) t.false(result.message.includes(k.slice(4, 12)), 'the key is never echoed');
  }
  t.deepEqual(store.authenticate(`Bearer ${viewer.key}`), { keyId: viewer.stored.id, role: 'viewer', geozones: ['CAISO', 'ERCOT'] });
  t.deepEqual(store.authenticate(`bearer  ${admin.key} `), { keyId: admin.stored.id, role: 'operator', geozones: 'all' });
});

test('keys load from ARCNET_API_KEYS; unset is undefined, malformed JSON or a bad schema is a coded error', (t) => {
  const k = createKey({ role: 'developer', geozones: ['ERCOT'] });
  const store = ApiKeyStore.fromEnv({ [API_KEYS_ENV]: JSON.stringify({ version: 1, keys: [k.stored] }) });
  t.is(store?.size, 1);
  t.like(store?.authenticate(`Bearer ${k.key}`), { keyId: k.stored.id, role: 'developer' });
  t.is(ApiKeyStore.fromEnv({}), undefined);

  t.is(t.throws(() => ApiKeyStore.fromEnv({ [API_KEYS_ENV]: '{"version":1,' }), { instanceOf: ArcError }).code, ErrorCodes.MALFORMED_JSON);
  const invalid: unknown[] = [
    { version: 2, keys: [] },
    { version: 1, keys: [{ ...k.stored, role: 'root' }] },
    { version: 1, keys: [{ ...k.stored, extra: true }] },
    { version: 1, keys: [{ ...k.stored, hash: 'abc' }] },
    { version: 1, keys: [{ ...k.stored, geozones: [] }] },
    { version: 1, keys: [{ ...k.stored, geozones: ['*', 'CAISO'] }] },
    { version: 1, keys: [k.stored, k.stored] },
    { version: 1, keys: [k.stored], extra: 1 },
  ];
  for (const file of invalid) {
    const error = t.throws(() => ApiKeyStore.fromEnv({ [API_KEYS_ENV]: JSON.stringify(file) }), { instanceOf: ArcError });
    t.is(error.code, ErrorCodes.VALIDATION, JSON.stringify(file));
    t.regex(error.message, /ARCNET_API_KEYS is not a valid keys file/);
  }
});

test('a malformed or missing keys file is a clear coded error naming the file', (t) => {
  const { dir, cleanup } = tempDir();
  t.teardown(cleanup);
  const path = join(dir, 'keys.json');
  t.is(t.throws(() => ApiKeyStore.fromFile(path), { instanceOf: ArcError }).code, ErrorCodes.USAGE);
  writeFileSync(path, 'not json');
  const bad = t.throws(() => ApiKeyStore.fromFile(path), { instanceOf: ArcError });
  t.is(bad.code, ErrorCodes.MALFORMED_JSON);
  t.true(bad.message.includes(path));
  writeFileSync(path, JSON.stringify({ version: 1, keys: [{ id: 'x' }] }));
  t.is(t.throws(() => ApiKeyStore.fromFile(path), { instanceOf: ArcError }).code, ErrorCodes.VALIDATION);
  t.is(t.throws(() => appendKeyToFile(path, createKey({ role: 'viewer', geozones: ['*'] }).stored), { instanceOf: ArcError }).code, ErrorCodes.VALIDATION, 'a bad file is not overwritten');
});

const expected: Readonly<Record<Role, readonly Permission[]>> = {
  viewer: ['read'],
  developer: ['read', 'infer'],
  operator: ['read', 'infer', 'ingest', 'operate'],
  agent: ['ingest'],
};

test('every role × permission', (t) => {
  for (const role of ROLES) {
    for (const permission of PERMISSIONS) {
      const decision = authorize(principal(role), permission, 'CAISO');
      const allowed = expected[role].includes(permission);
      t.is(decision.ok, allowed, `${role} ${permission}`);
      if (!decision.ok) t.like(decision, { status: 403, code: ErrorCodes.FORBIDDEN });
    }
  }
});

test('geozone isolation: a CAISO key acts only in CAISO and the refusal names none of its geozones', (t) => {
  const caiso = principal('operator', ['CAISO', 'SECRETZONE']);
  for (const permission of PERMISSIONS) {
    t.true(authorize(caiso, permission, 'CAISO').ok);
    const refused = authorize(caiso, permission, 'ERCOT');
    t.false(refused.ok);
    if (refused.ok) continue;
    t.is(refused.status, 403);
    t.is(refused.code, ErrorCodes.FORBIDDEN);
    t.false(refused.message.includes('CAISO') || refused.message.includes('SECRETZONE'));
  }
  t.true(authorize(principal('viewer', 'all'), 'read', 'ERCOT').ok);
  t.false(authorize(principal('viewer', ['CAISO']), 'operate', 'CAISO').ok, 'the role is checked before the geozone');
});

test('visibleGeozones filters listings to the key’s geozones', (t) => {
  const scoped = principal('viewer', ['CAISO', 'PJM']);
  t.deepEqual(visibleGeozones(scoped), ['CAISO', 'PJM']);
  t.deepEqual(visibleGeozones(scoped, ['PJM', 'ERCOT']), ['PJM']);
  t.deepEqual(visibleGeozones(scoped, ['ERCOT']), [], 'asking for another geozone gives an empty listing, not a hint');
  t.is(visibleGeozones(principal('viewer', 'all')), 'all');
  t.deepEqual(visibleGeozones(principal('viewer', 'all'), ['ERCOT', 'ERCOT']), ['ERCOT']);
});

test('tickets are single use, bound to their principal, and refused once expired', (t) => {
  const book = new TicketBook({ ttlMs: 30_000 });
  const who = principal('viewer', ['CAISO']);
  const { ticket, expiresAtMs } = book.issue(who, 1_000);
  t.is(expiresAtMs, 31_000);
  t.regex(ticket, /^[A-Za-z0-9_-]{43}$/);
  t.deepEqual(book.redeem(ticket, 30_999), who);
  t.is(book.redeem(ticket, 30_999), undefined, 'second use refused');

  const late = book.issue(who, 1_000).ticket;
  t.is(book.redeem(late, 31_000), undefined, 'expired at expiresAtMs');
  t.is(book.redeem(late, 1_000), undefined, 'an expired redeem still consumed it');
  t.is(book.redeem('made-up', 1_000), undefined);
});

test('the ticket book is bounded: expired tickets are pruned on issue, and past the cap the oldest goes', (t) => {
  const book = new TicketBook({ ttlMs: 100, maxTickets: 3 });
  const who = principal('viewer');
  const first = book.issue(who, 0).ticket;
  const second = book.issue(who, 10).ticket;
  const third = book.issue(who, 20).ticket;
  const fourth = book.issue(who, 30).ticket;
  t.is(book.size, 3);
  t.is(book.redeem(first, 40), undefined, 'oldest dropped at the cap');
  t.deepEqual(book.redeem(second, 40), who);
  book.issue(who, 125);
  t.is(book.size, 2, 'third (expired at 120) was pruned, fourth (130) kept');
  book.issue(who, 130);
  t.is(book.size, 2, 'fourth pruned at 130');
  t.is(book.redeem(third, 100), undefined, 'pruned tickets are gone for good');
  t.is(book.redeem(fourth, 100), undefined);
});

test('rate limiter: a burst, then refusal with retryAfterMs, then refill; keys are independent', (t) => {
  const limiter = new RateLimiter({ ratePerSec: 2, burst: 3 });
  for (let i = 0; i < 3; i++) t.deepEqual(limiter.take('a', 0), { ok: true });
  t.deepEqual(limiter.take('a', 0), { ok: false, retryAfterMs: 500 });
  t.deepEqual(limiter.take('a', 200), { ok: false, retryAfterMs: 300 });
  t.deepEqual(limiter.take('b', 200), { ok: true }, 'another key has its own bucket');
  t.deepEqual(limiter.take('a', 500), { ok: true }, 'one token earned after 500 ms');
  t.false(limiter.take('a', 500).ok);
  for (let i = 0; i < 3; i++) t.true(limiter.take('a', 60_000).ok, 'refilled, but only up to the burst');
  t.false(limiter.take('a', 60_000).ok);
});

test('rate limiter tracks a bounded number of keys, dropping idle ones first', (t) => {
  const limiter = new RateLimiter({ ratePerSec: 1, burst: 2, maxKeys: 2 });
  limiter.take('busy', 0);
  limiter.take('busy', 0);
  limiter.take('idle', 0);
  t.is(limiter.size, 2);
  limiter.take('busy', 0);
  limiter.take('third', 0);
  t.is(limiter.size, 2);
  t.false(limiter.take('busy', 0).ok, 'the busy key kept its empty bucket; the least recently used one went');
  limiter.take('fourth', 0);
  t.is(limiter.size, 2, 'still capped');
  t.false(limiter.take('busy', 0).ok, 'the recently used bucket survived');
  limiter.take('fifth', 10_000);
  t.is(limiter.size, 1, 'buckets that refilled while idle are dropped');

  const roomy = new RateLimiter({ ratePerSec: 1, burst: 2, maxKeys: 10 });
  roomy.take('a', 0);
  roomy.take('b', 0);
  roomy.take('b', 5_000);
  roomy.take('c', 5_000);
  t.is(roomy.size, 2, 'a refilled to a full bucket while idle, so it was dropped even below the cap');
  t.throws(() => new RateLimiter({ ratePerSec: 0, burst: 1 }), { instanceOf: ArcError });
});
