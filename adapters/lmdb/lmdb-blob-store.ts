import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { SHA256_HEX, sha256Hex, type BlobStore } from '../../runtime/blob-store.js';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { assertDataKey, lmdbFileEncrypted, lmdbPageKey, matchesKeyCheck, writeKeyCheck } from './data-key.js';

/**
 * The embedded region's blob store: its own LMDB environment (`blobs.mdb`) in
 * the data folder, beside the journal's, so a restart finds every weight vector
 * the journal names by hash. Its own environment because blobs are large and
 * written off the shard's path: they never wait behind, or hold up, a journal
 * commit. A put resolves after LMDB's synced commit (overlappingSync off), the
 * same durability as a journal append; encrypted with the data key when the
 * folder is.
 */
export class LmdbBlobStore implements BlobStore {
  static readonly fileName = 'blobs.mdb';
  /** A single blob larger than this is refused (weights of the models trained here are a few KiB). */
  static readonly maxBlobBytes = 64 * 1024 * 1024;

  private readonly root: RootDatabase;
  private readonly db: Database<Buffer, string>;

  constructor(dataDir: string, options: { encryptionKey?: Buffer | undefined } = {}) {
    mkdirSync(dataDir, { recursive: true });
    const key = options.encryptionKey;
    if (key !== undefined) assertDataKey(key);
    const file = join(dataDir, LmdbBlobStore.fileName);
    const isNew = !existsSync(file);
    // As for the journal's store (lmdb-store.ts): a key/file mismatch or a wrong key is refused before LMDB reads a page.
    const encrypted = lmdbFileEncrypted(file);
    if (encrypted === true && key === undefined) throw new ArcError(ErrorCodes.DATA_KEY, `the blob store at '${file}' is encrypted: give its data key`);
    if (encrypted === false && key !== undefined) throw new ArcError(ErrorCodes.DATA_KEY, `the blob store at '${file}' is not encrypted, but a data key was given`);
    const keyCheck = key === undefined || isNew ? undefined : matchesKeyCheck(file, key);
    if (keyCheck === false) throw new ArcError(ErrorCodes.DATA_KEY, `the blob store at '${file}' cannot be read with this data key`);
    this.root = open({
      path: file,
      overlappingSync: false,
      maxDbs: 4,
      ...(options.encryptionKey === undefined ? {} : { encryptionKey: lmdbPageKey(options.encryptionKey) }),
    });
    this.db = this.root.openDB<Buffer, string>({ name: 'blobs', encoding: 'binary' });
    if (key !== undefined && isNew) writeKeyCheck(file, key);
  }

  async put(bytes: Uint8Array): Promise<string> {
    if (bytes.byteLength > LmdbBlobStore.maxBlobBytes) throw new RangeError(`a blob of ${bytes.byteLength} bytes is over the ${LmdbBlobStore.maxBlobBytes}-byte limit`);
    const sha = sha256Hex(bytes);
    // Same hash, same bytes: a second put of the same blob writes nothing.
    if (this.db.doesExist(sha)) return sha;
    await this.db.put(sha, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    return sha;
  }

  get(sha256: string): Promise<Uint8Array | undefined> {
    if (!SHA256_HEX.test(sha256)) return Promise.resolve(undefined);
    const value = this.db.getBinary(sha256);
    return Promise.resolve(value === undefined ? undefined : Uint8Array.from(value));
  }

  has(sha256: string): Promise<boolean> {
    return Promise.resolve(SHA256_HEX.test(sha256) && this.db.doesExist(sha256));
  }

  async close(): Promise<void> {
    await this.root.close();
  }
}
