import { hash as oneShotHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';

/**
 * API keys for the region's HTTP API and console. A key is `arc_` followed by
 * 32 random bytes in base64url (43 characters). It is shown once, when created;
 * the keys file holds only its SHA-256 hash, the role and the geozones it may see.
 *
 * Why SHA-256 and not a slow KDF (scrypt, argon2): slow hashes exist to make
 * guessing low-entropy passwords expensive. A key here is 256 bits from the CSPRNG,
 * so guessing is hopeless at any hash speed, and a fast hash lets every request
 * be checked with one digest and one map lookup instead of ~50 ms of KDF work
 * (which would also hand an attacker a cheap CPU-exhaustion lever).
 */

export const ROLES = ['viewer', 'developer', 'operator', 'agent'] as const;
/**
 * viewer reads, developer also submits inference, operator does everything;
 * agent is what node agents use to post telemetry and results (see access-policy.ts).
 */
export type Role = (typeof ROLES)[number];

/** What an authenticated request acts as. `geozones: 'all'` is a key stored with `['*']`. */
export interface Principal {
  readonly keyId: string;
  readonly role: Role;
  readonly geozones: readonly string[] | 'all';
}

/** A refused credential: answer HTTP 401 with `{ code, message }` (and `WWW-Authenticate: Bearer`). */
export interface AuthFailure {
  readonly status: 401;
  readonly code: typeof ErrorCodes.UNAUTHENTICATED;
  readonly message: string;
}

export function isAuthFailure(result: Principal | AuthFailure): result is AuthFailure {
  return 'code' in result;
}

const KEY_PREFIX = 'arc_';
const KEY_BYTES = 32;
/** The base64url body of a key; longer tokens are refused before hashing (headers are attacker-sized). */
const keyPattern = /^arc_[A-Za-z0-9_-]{22,128}$/;
/** Key ids are the first 12 hex digits of the hash: printable, not secret, and recomputable from a key one holds. */
const KEY_ID_HEX_DIGITS = 12;
/** A keys file is read whole into memory; keep it bounded. */
const MAX_KEYS = 10_000;
const geozonePattern = /^[A-Z0-9_-]{1,32}$/;

const geozoneScopeSchema = z.union([
  z.tuple([z.literal('*')]),
  z.array(z.string().regex(geozonePattern, 'geozone: upper-case letters, digits, _ or -')).min(1).max(256),
]);

export const storedKeySchema = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9_-]{4,64}$/),
  hash: z.string().regex(/^[0-9a-f]{64}$/, 'hash: 64 lower-case hex digits (SHA-256)'),
  role: z.enum(ROLES),
  geozones: geozoneScopeSchema,
  createdAt: z.iso.datetime(),
  label: z.string().max(200).optional(),
});
export type StoredKey = z.infer<typeof storedKeySchema>;

export const keysFileSchema = z
  .strictObject({ version: z.literal(1), keys: z.array(storedKeySchema).max(MAX_KEYS) })
  .superRefine((file, ctx) => {
    const ids = new Set<string>();
    const hashes = new Set<string>();
    for (const key of file.keys) {
      if (ids.has(key.id)) ctx.addIssue({ code: 'custom', message: `duplicate key id '${key.id}'` });
      if (hashes.has(key.hash)) ctx.addIssue({ code: 'custom', message: `key '${key.id}' repeats another key's hash` });
      ids.add(key.id);
      hashes.add(key.hash);
    }
  });
export type KeysFile = z.infer<typeof keysFileSchema>;

export const API_KEYS_ENV = 'ARCNET_API_KEYS';

/** One-shot (crypto.hash): every keyed request hashes its key, and a Hash object per call cost half of it. */
function sha256(text: string): Buffer {
  return oneShotHash('sha256', text, 'buffer');
}

/** The id a key is listed and logged under (derived from its hash, so it reveals nothing about the key). */
export function keyIdOf(key: string): string {
  return sha256(key).toString('hex').slice(0, KEY_ID_HEX_DIGITS);
}

/**
 * Reads a geozone scope as typed on a command line: `*` (every geozone) or a
 * comma-separated list (upper-cased). ARC_ERR_USAGE when malformed.
 */
export function parseGeozoneScope(text: string): string[] {
  const list = text
    .split(',')
    .map((g) => g.trim().toUpperCase())
    .filter((g) => g !== '');
  if (list.length === 1 && list[0] === '*') return ['*'];
  if (list.length === 0) throw new ArcError(ErrorCodes.USAGE, 'a key needs at least one geozone, or * for all of them');
  for (const g of list) {
    if (!geozonePattern.test(g)) throw new ArcError(ErrorCodes.USAGE, `bad geozone '${g}': use letters, digits, _ or - (or * alone for all geozones)`);
  }
  return [...new Set(list)];
}

export interface CreateKeyOptions {
  readonly role: Role;
  /** Geozone names, or `['*']` for all. */
  readonly geozones: readonly string[];
  readonly label?: string | undefined;
  /** The creation time stamped on the stored key (default: now). */
  readonly nowMs?: number;
}

/** A new key: `key` is the plaintext (show it once, never store it), `stored` is what goes in the keys file. */
export function createKey(options: CreateKeyOptions): { key: string; stored: StoredKey } {
  const key = KEY_PREFIX + randomBytes(KEY_BYTES).toString('base64url');
  const hash = sha256(key).toString('hex');
  const candidate = {
    id: hash.slice(0, KEY_ID_HEX_DIGITS),
    hash,
    role: options.role,
    geozones: [...options.geozones],
    createdAt: new Date(options.nowMs ?? Date.now()).toISOString(),
    ...(options.label === undefined ? {} : { label: options.label }),
  };
  const parsed = storedKeySchema.safeParse(candidate);
  if (!parsed.success) throw new ArcError(ErrorCodes.VALIDATION, `cannot create key: ${describeIssues(parsed.error)}`);
  return { key, stored: parsed.data };
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.length === 0 ? '(root)' : issue.path.join('.')}: ${issue.message}`)
    .join('; ');
}

/** Parses keys-file JSON from `source` (a path or the variable name, for messages). */
export function parseKeysFile(text: string, source: string): KeysFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ArcError(ErrorCodes.MALFORMED_JSON, `${source} is not valid JSON (${error instanceof Error ? error.message : String(error)}); expected {"version":1,"keys":[...]}`);
  }
  const parsed = keysFileSchema.safeParse(json);
  if (!parsed.success) throw new ArcError(ErrorCodes.VALIDATION, `${source} is not a valid keys file: ${describeIssues(parsed.error)}`, { source });
  return parsed.data;
}

/** Reads and validates a keys file. ARC_ERR_USAGE when it cannot be read; see parseKeysFile for bad contents. */
export function readKeysFile(path: string): KeysFile {
  const text = readKeysText(path);
  if (text === undefined) throw new ArcError(ErrorCodes.USAGE, `cannot read keys file ${path}: ENOENT (create one with arcnet keys create)`, { path });
  return parseKeysFile(text, `keys file ${path}`);
}

/** The file's text, or undefined when it does not exist; any other read failure is ARC_ERR_USAGE. */
function readKeysText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new ArcError(ErrorCodes.USAGE, `cannot read keys file ${path}: ${code ?? String(error)}`, { path });
  }
}

/**
 * Replaces the keys file atomically: the new content goes to a temporary file
 * (mode 0600) in the same directory, is flushed, and is renamed over the old
 * one, so a reader sees the old file or the new one, never half of either. The
 * file is always 0600 afterwards. Concurrent writers are not merged (the last
 * rename wins): the keys command is an operator's tool, run one at a time.
 */
export function writeKeysFile(path: string, file: KeysFile): void {
  const parsed = keysFileSchema.safeParse(file);
  if (!parsed.success) throw new ArcError(ErrorCodes.VALIDATION, `refusing to write an invalid keys file ${path}: ${describeIssues(parsed.error)}`);
  const checked = parsed.data;
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    writeFileSync(temp, `${JSON.stringify(checked, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    const fd = openSync(temp, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (error) {
    rmSync(temp, { force: true });
    throw new ArcError(ErrorCodes.USAGE, `cannot write keys file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { path });
  }
  syncDirectory(dirname(path));
}

/** Makes the rename itself durable; not every platform lets a directory be fsynced, which is harmless. */
function syncDirectory(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // best effort
  }
}

/** Adds a stored key to the keys file, creating it (mode 0600) when missing. */
export function appendKeyToFile(path: string, stored: StoredKey): void {
  const text = readKeysText(path);
  const file: KeysFile = text === undefined ? { version: 1, keys: [] } : parseKeysFile(text, `keys file ${path}`);
  if (file.keys.some((k) => k.id === stored.id || k.hash === stored.hash)) {
    throw new ArcError(ErrorCodes.VALIDATION, `keys file ${path} already holds key '${stored.id}'`);
  }
  writeKeysFile(path, { version: 1, keys: [...file.keys, stored] });
}

/** Removes the key with this id; ARC_ERR_NOT_FOUND when the file has no such key. */
export function removeKeyFromFile(path: string, id: string): StoredKey {
  const file = readKeysFile(path);
  const found = file.keys.find((k) => k.id === id);
  if (found === undefined) throw new ArcError(ErrorCodes.NOT_FOUND, `keys file ${path} has no key '${id}'`);
  writeKeysFile(path, { version: 1, keys: file.keys.filter((k) => k.id !== id) });
  return found;
}

interface KnownKey {
  readonly hash: Buffer;
  readonly principal: Principal;
}

function failure(message: string): AuthFailure {
  return { status: 401, code: ErrorCodes.UNAUTHENTICATED, message };
}

const MISSING = failure('send an API key: Authorization: Bearer arc_...');
const WRONG_SCHEME = failure('use the Bearer scheme: Authorization: Bearer arc_...');
// One message for every token that is not a live key: malformed, unknown and revoked look alike.
const UNKNOWN = failure('the API key is not valid');

/**
 * The keys a process accepts, indexed by hash. Immutable: to pick up a changed
 * keys file (a revocation), build a new store and swap the reference.
 */
export class ApiKeyStore {
  readonly #byHash: ReadonlyMap<string, KnownKey>;

  constructor(keys: readonly StoredKey[]) {
    const byHash = new Map<string, KnownKey>();
    for (const key of keys) {
      const geozones = key.geozones.length === 1 && key.geozones[0] === '*' ? 'all' : Object.freeze([...key.geozones]);
      byHash.set(key.hash, { hash: Buffer.from(key.hash, 'hex'), principal: Object.freeze({ keyId: key.id, role: key.role, geozones }) });
    }
    this.#byHash = byHash;
  }

  static fromFile(path: string): ApiKeyStore {
    return new ApiKeyStore(readKeysFile(path).keys);
  }

  /** From `ARCNET_API_KEYS` (keys-file JSON); undefined when the variable is unset or empty. */
  static fromEnv(env: Readonly<Record<string, string | undefined>>): ApiKeyStore | undefined {
    const text = env[API_KEYS_ENV];
    if (text === undefined || text.trim() === '') return undefined;
    return new ApiKeyStore(parseKeysFile(text, API_KEYS_ENV).keys);
  }

  get size(): number {
    return this.#byHash.size;
  }

  /**
   * Checks an `Authorization` header value. The token is never logged, echoed or
   * kept: only its hash is looked up, and the match is confirmed with a
   * constant-time comparison.
   */
  authenticate(authorizationHeader: string | undefined): Principal | AuthFailure {
    if (authorizationHeader === undefined || authorizationHeader.trim() === '') return MISSING;
    const match = /^\s*(\S+)\s+(\S+)\s*$/.exec(authorizationHeader);
    if (match === null || match[1]?.toLowerCase() !== 'bearer') return WRONG_SCHEME;
    return this.authenticateKey(match[2] ?? '');
  }

  /** Checks a bare key (e.g. one taken from somewhere other than a header). */
  authenticateKey(key: string): Principal | AuthFailure {
    if (!keyPattern.test(key)) return UNKNOWN;
    const digest = sha256(key);
    const known = this.#byHash.get(digest.toString('hex'));
    if (known === undefined || !timingSafeEqual(known.hash, digest)) return UNKNOWN;
    return known.principal;
  }
}
