import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';

/**
 * The data key: 32 bytes that encrypt an LMDB store at rest. It comes from a key
 * file (64 hex characters, or the 32 raw bytes) or from ARCNET_DATA_KEY (hex), and
 * never lives in the data folder it unlocks.
 */
export const DATA_KEY_BYTES = 32;
export const DATA_KEY_ENV = 'ARCNET_DATA_KEY';

/** A fresh random data key (write it out with `toString('hex')`, to a file only its owner can read). */
export function createDataKey(): Buffer {
  return randomBytes(DATA_KEY_BYTES);
}

/**
 * The data key from a key file (preferred when both are given) or the environment;
 * undefined when neither names one. Any key that is there but unusable is an
 * ArcError(DATA_KEY): silently running unencrypted on a typo would be worse.
 */
export function loadDataKey(source: { file?: string; env?: NodeJS.ProcessEnv } = {}): Buffer | undefined {
  if (source.file !== undefined) return keyFromFile(source.file);
  const hex = source.env?.[DATA_KEY_ENV];
  if (hex === undefined || hex.trim() === '') return undefined;
  return keyFromHex(hex.trim(), DATA_KEY_ENV);
}

function keyFromFile(file: string): Buffer {
  let mode: number;
  let content: Buffer;
  try {
    mode = statSync(file).mode;
    content = readFileSync(file);
  } catch (error) {
    throw new ArcError(ErrorCodes.DATA_KEY, `cannot read the data key file '${file}': ${error instanceof Error ? error.message : String(error)}`);
  }
  // POSIX permission bits only mean something off Windows.
  if (process.platform !== 'win32' && (mode & 0o006) !== 0) {
    throw new ArcError(
      ErrorCodes.DATA_KEY,
      `the data key file '${file}' is readable or writable by every user (mode ${(mode & 0o777).toString(8)}): run chmod 600 '${file}' (and consider a new key)`,
    );
  }
  const text = content.toString('latin1').trim();
  if (text.length === DATA_KEY_BYTES * 2 && /^[0-9a-fA-F]+$/.test(text)) return Buffer.from(text, 'hex');
  if (content.length === DATA_KEY_BYTES) return Buffer.from(content);
  throw new ArcError(
    ErrorCodes.DATA_KEY,
    `the data key file '${file}' holds ${content.length} bytes: it must hold ${DATA_KEY_BYTES * 2} hex characters or exactly ${DATA_KEY_BYTES} raw bytes`,
  );
}

function keyFromHex(hex: string, where: string): Buffer {
  if (!/^[0-9a-fA-F]*$/.test(hex) || hex.length !== DATA_KEY_BYTES * 2) {
    throw new ArcError(ErrorCodes.DATA_KEY, `${where} must be ${DATA_KEY_BYTES * 2} hex characters (${DATA_KEY_BYTES} bytes), got ${hex.length} characters`);
  }
  return Buffer.from(hex, 'hex');
}

/** Checks a key handed over in code (LmdbStoreOptions.encryptionKey). */
export function assertDataKey(key: Buffer): void {
  if (key.length !== DATA_KEY_BYTES) {
    throw new ArcError(ErrorCodes.DATA_KEY, `a data key is ${DATA_KEY_BYTES} bytes, got ${key.length}`);
  }
}

/**
 * The key as lmdb-js takes it. lmdb 3.5 accepts only a string whose UTF-8 form
 * is 32 bytes (a Buffer aborts the process), so the data key is stretched
 * through SHA-256 and each byte kept to 7 bits: 32 ASCII characters, 224 bits of
 * the key. Hashing first means two data keys never share a page key because
 * they differ only in the bits dropped.
 */
export function lmdbPageKey(key: Buffer): string {
  assertDataKey(key);
  const derived = createHash('sha256').update('arcnet lmdb page key\n').update(key).digest();
  return String.fromCharCode(...derived.map((byte) => byte & 0x7f));
}

/** LMDB meta page layout (data format 2): magic at byte 24, the persistent environment flags at byte 52. */
const LMDB_MAGIC = 0xbeefc0de;
const MAGIC_AT = 24;
const ENV_FLAGS_AT = 52;
/** MDB_ENCRYPT: set in the stored environment flags when the pages are encrypted. */
const MDB_ENCRYPT = 0x2000;

/**
 * Whether an LMDB file is encrypted, read from its first (plaintext) meta page;
 * undefined when the file is not one LMDB wrote. lmdb-js must be told this
 * before it opens the file: opening an encrypted file without the key, or a
 * plain one with a key, crashes the process instead of raising an error.
 */
export function lmdbFileEncrypted(file: string): boolean | undefined {
  const header = Buffer.alloc(ENV_FLAGS_AT + 2);
  let read: number;
  try {
    const fd = openSync(file, 'r');
    try {
      read = readSync(fd, header, 0, header.length, 0);
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
  if (read < header.length || header.readUInt32LE(MAGIC_AT) !== LMDB_MAGIC) return undefined;
  return (header.readUInt16LE(ENV_FLAGS_AT) & MDB_ENCRYPT) !== 0;
}

/**
 * The key check beside an encrypted LMDB file (`<file>-keycheck`): an HMAC of a
 * fixed label under the data key, so a key can be told right or wrong without
 * LMDB reading a page. lmdb-js's cipher has no authentication: with a wrong key
 * LMDB walks decrypted garbage as a B-tree, which usually fails cleanly and
 * sometimes crashes the process (a SIGSEGV was seen). The check reveals nothing
 * of the key (HMAC-SHA-256 is one-way) and is not a secret.
 */
export const KEY_CHECK_SUFFIX = '-keycheck';
const KEY_CHECK_LABEL = 'arcnet data key check v1';

function keyCheckOf(key: Buffer): Buffer {
  return createHmac('sha256', key).update(KEY_CHECK_LABEL).digest();
}

/**
 * Whether `key` is the key of the encrypted LMDB file `file`, by its key check:
 * true or false when the check is there, undefined when it is not (a store made
 * before checks were written: the caller falls back to reading a page).
 */
export function matchesKeyCheck(file: string, key: Buffer): boolean | undefined {
  const checkFile = `${file}${KEY_CHECK_SUFFIX}`;
  if (!existsSync(checkFile)) return undefined;
  const stored = Buffer.from(readFileSync(checkFile, 'latin1').trim(), 'hex');
  const expected = keyCheckOf(key);
  return stored.length === expected.length && timingSafeEqual(stored, expected);
}

/** Writes the key check of an encrypted LMDB file (atomically: a torn check would lock the store out). */
export function writeKeyCheck(file: string, key: Buffer): void {
  const checkFile = `${file}${KEY_CHECK_SUFFIX}`;
  writeFileSync(`${checkFile}.tmp`, `${keyCheckOf(key).toString('hex')}\n`, { mode: 0o600 });
  renameSync(`${checkFile}.tmp`, checkFile);
}
