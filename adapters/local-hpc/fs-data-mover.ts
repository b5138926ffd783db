import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { DataMover, TransferRequest, TransferStatus } from '../../runtime/data-mover.js';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { localPath } from './file-uri.js';

export interface FsDataMoverOptions {
  /** Where the mover remembers its transfers by key (so a restarted caller finds them). */
  readonly stateDir: string;
  /** Copy no faster than this (bytes/s); unlimited when undefined. Lets a small machine watch progress. */
  readonly bytesPerSec?: number | undefined;
}

interface Live {
  readonly request: TransferRequest;
  readonly transferId: string;
  state: TransferStatus['state'];
  bytesDone: number;
  bytesTotal: number | null;
  error: string | null;
  readonly abort: AbortController;
}

const KEY = /^[A-Za-z0-9._-]{1,128}$/;
const CHUNK_BYTES = 256 * 1024;

/**
 * A DataMover for one machine: copies a local file with streams into a
 * `.part` file beside the destination and renames it into place only when the
 * copy is whole, so the staged data is never half-written under its real name.
 * Transfers are remembered by key in `stateDir`: after a restart `find` and
 * `start` see a finished copy as succeeded, and an interrupted one starts over
 * into the same `.part` (never a second copy). The production movers (rclone's
 * rcd, Globus) are other adapters of the same port.
 */
export class FsDataMover implements DataMover {
  private readonly options: FsDataMoverOptions;
  private readonly live = new Map<string, Live>();

  constructor(options: FsDataMoverOptions) {
    this.options = options;
    mkdirSync(options.stateDir, { recursive: true });
  }

  start(request: TransferRequest): Promise<TransferStatus> {
    if (!KEY.test(request.key)) return Promise.reject(new ArcError(ErrorCodes.VALIDATION, `transfer key '${request.key}' must be 1 to 128 letters, digits, . _ or -`));
    const known = this.live.get(request.key);
    if (known !== undefined && known.state !== 'failed' && known.state !== 'cancelled') return Promise.resolve(view(known));
    const done = this.finished(request.key);
    if (done !== undefined) return Promise.resolve(done);
    let source: string;
    let destination: string;
    try {
      source = localPath(request.sourceUri);
      destination = localPath(request.destinationUri);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    writeFileSync(this.stateFile(request.key), JSON.stringify(request));
    const entry: Live = { request, transferId: `fs-${request.key}`, state: 'running', bytesDone: 0, bytesTotal: null, error: null, abort: new AbortController() };
    this.live.set(request.key, entry);
    void this.copy(entry, source, destination);
    return Promise.resolve(view(entry));
  }

  status(transferId: string): Promise<TransferStatus> {
    const key = transferId.replace(/^fs-/, '');
    const entry = this.live.get(key);
    if (entry !== undefined) return Promise.resolve(view(entry));
    const done = this.finished(key);
    if (done !== undefined) return Promise.resolve(done);
    return Promise.reject(new ArcError(ErrorCodes.NOT_FOUND, `no transfer '${transferId}' (after a restart, start it again with the same key)`));
  }

  find(key: string): Promise<TransferStatus | undefined> {
    const entry = this.live.get(key);
    return Promise.resolve(entry === undefined ? this.finished(key) : view(entry));
  }

  cancel(transferId: string): Promise<void> {
    const entry = this.live.get(transferId.replace(/^fs-/, ''));
    if (entry !== undefined && entry.state === 'running') {
      entry.state = 'cancelled';
      entry.error = 'cancelled';
      entry.abort.abort();
    }
    return Promise.resolve();
  }

  async verify(request: TransferRequest): Promise<{ readonly ok: boolean; readonly detail: string }> {
    const [a, b] = await Promise.all([sha256Of(localPath(request.sourceUri)), sha256Of(localPath(request.destinationUri))]);
    return a === b ? { ok: true, detail: `sha256 ${a}` } : { ok: false, detail: `sha256 source ${a} != destination ${b ?? '(missing)'}` };
  }

  /** This mover copies the file straight to destinationUri (no sub-folder per key). */
  landsAt(request: TransferRequest): string {
    return request.destinationUri;
  }

  private stateFile(key: string): string {
    return join(this.options.stateDir, `${key}.json`);
  }

  /** A transfer from before a restart whose destination is whole (the rename happened). */
  private finished(key: string): TransferStatus | undefined {
    if (!existsSync(this.stateFile(key))) return undefined;
    const request = JSON.parse(readFileSync(this.stateFile(key), 'utf8')) as TransferRequest;
    const destination = localPath(request.destinationUri);
    if (!existsSync(destination)) return undefined;
    const size = statSync(destination).size;
    return { transferId: `fs-${key}`, key, state: 'succeeded', bytesDone: size, bytesTotal: size, error: null };
  }

  private async copy(entry: Live, source: string, destination: string): Promise<void> {
    const part = `${destination}.part`;
    try {
      entry.bytesTotal = statSync(source).size;
      mkdirSync(dirname(destination), { recursive: true });
      const throttle = new Throttle(this.options.bytesPerSec, (n) => {
        entry.bytesDone += n;
      });
      // 'w' truncates: an interrupted copy starts over in the same .part file.
      await pipeline(createReadStream(source, { highWaterMark: CHUNK_BYTES }), throttle, createWriteStream(part, { flags: 'w' }), { signal: entry.abort.signal });
      renameSync(part, destination);
      entry.state = 'succeeded';
    } catch (error) {
      rmSync(part, { force: true });
      if (entry.state === 'running') {
        entry.state = 'failed';
        entry.error = (error as Error).message;
      }
    }
  }
}

function view(entry: Live): TransferStatus {
  return { transferId: entry.transferId, key: entry.request.key, state: entry.state, bytesDone: entry.bytesDone, bytesTotal: entry.bytesTotal, error: entry.error };
}

async function sha256Of(path: string): Promise<string | undefined> {
  if (!existsSync(path)) return undefined;
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Counts bytes through and, with a rate, paces them. */
class Throttle extends Transform {
  private readonly bytesPerSec: number | undefined;
  private readonly onBytes: (n: number) => void;

  constructor(bytesPerSec: number | undefined, onBytes: (n: number) => void) {
    super();
    this.bytesPerSec = bytesPerSec;
    this.onBytes = onBytes;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    const pass = (): void => {
      this.onBytes(chunk.length);
      done(null, chunk);
    };
    if (this.bytesPerSec === undefined) return pass();
    setTimeout(pass, Math.round((chunk.length / this.bytesPerSec) * 1000));
  }
}
