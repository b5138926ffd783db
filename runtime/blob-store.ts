import { createHash } from 'node:crypto';

/**
 * Content-addressed bytes: a blob's key is the SHA-256 of its bytes, so a
 * journal that records only the hash still names exactly one value, and
 * storing the same bytes twice stores them once. Used for what is too large
 * for the journal (training weights).
 */
export interface BlobStore {
  /** Stores the bytes durably (resolves once they survive a crash) and returns their SHA-256, lower-case hex. */
  put(bytes: Uint8Array): Promise<string>;
  /** The bytes stored under this hash; undefined when none are. */
  get(sha256: string): Promise<Uint8Array | undefined>;
  has(sha256: string): Promise<boolean>;
}

export const SHA256_HEX = /^[0-9a-f]{64}$/;

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * A blob store in memory, for a simulation (which has no data folder and whose
 * process is the whole run). Bounded: beyond `maxBytes` a put is refused rather
 * than let a long run exhaust memory.
 */
export class MemoryBlobStore implements BlobStore {
  private readonly blobs = new Map<string, Uint8Array>();
  private bytes = 0;

  constructor(private readonly maxBytes = 512 * 1024 * 1024) {}

  put(bytes: Uint8Array): Promise<string> {
    const sha = sha256Hex(bytes);
    if (!this.blobs.has(sha)) {
      if (this.bytes + bytes.byteLength > this.maxBytes) return Promise.reject(new RangeError(`the in-memory blob store holds ${this.bytes} bytes; the limit is ${this.maxBytes}`));
      this.blobs.set(sha, Uint8Array.from(bytes));
      this.bytes += bytes.byteLength;
    }
    return Promise.resolve(sha);
  }

  /** Synchronous read, for a simulation that decides on simulated time without awaiting. */
  getNow(sha256: string): Uint8Array | undefined {
    return this.blobs.get(sha256);
  }

  get(sha256: string): Promise<Uint8Array | undefined> {
    return Promise.resolve(this.blobs.get(sha256));
  }

  has(sha256: string): Promise<boolean> {
    return Promise.resolve(this.blobs.has(sha256));
  }
}
