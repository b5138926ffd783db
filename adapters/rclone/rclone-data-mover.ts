import { setTimeout as sleep } from 'node:timers/promises';
import {
  TRANSFER_KEY_PATTERN,
  transferDestination,
  type DataMover,
  type TransferRequest,
  type TransferState,
  type TransferStatus,
} from '../../runtime/data-mover.js';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { RcCallError, RcClient, type RcClientOptions } from './rc-client.js';
import { compareListings, type ListedFile } from './verify-listing.js';

export interface RcloneDataMoverOptions extends RcClientOptions {
  /** find(key) looks at most this many of rcd's newest jobs (every rc call is a job in rclone 1.60). */
  readonly maxJobsScanned?: number;
  /** verify() compares at most this many files per side; more is refused rather than half-checked. */
  readonly maxVerifyFiles?: number;
  /** cancel() waits this long for rclone to stop writing before it returns. */
  readonly cancelWaitMs?: number;
}

const DEFAULT_MAX_JOBS_SCANNED = 50_000;
const DEFAULT_MAX_VERIFY_FILES = 200_000;
const DEFAULT_CANCEL_WAIT_MS = 30_000;
const CANCEL_POLL_MS = 100;
/** Jobs looked up at once while scanning for a key: enough to be quick, few enough not to swamp rcd. */
const SCAN_CONCURRENCY = 8;
/** Checksums in order of preference; the first both sides support is compared. */
const HASH_PREFERENCE = ['sha256', 'sha1', 'md5', 'quickxor', 'crc32'] as const;
const URI_MAX_LENGTH = 2048;

interface RcJobStatus {
  readonly id: number;
  readonly group: string;
  readonly finished: boolean;
  readonly success: boolean;
  readonly error: string;
}

interface RcStats {
  readonly bytes?: number;
  readonly totalBytes?: number;
  readonly lastError?: string;
}

/**
 * The DataMover port on rclone's remote-control daemon (`rclone rcd`). A transfer is an async
 * `sync/copy` into `transferDestination(request)` with its stats group named after the key, so
 * a new instance (a restarted caller) finds it by scanning rcd's jobs for that group. Copies
 * compare files by checksum, so a copy started again skips every complete file and rewrites a
 * partial one: the destination never holds duplicates. The transfer id is "<rcd job id>:<key>",
 * which lets status() tell a job of this key from an unrelated one after rcd restarted and
 * reused its job ids.
 */
export class RcloneDataMover implements DataMover {
  private readonly rc: RcClient;
  private readonly maxJobsScanned: number;
  private readonly maxVerifyFiles: number;
  private readonly cancelWaitMs: number;
  /** The newest rcd job this instance knows per key, so only the first find(key) scans. */
  private readonly jobByKey = new Map<string, number>();
  /** In-flight start per key: a second start of a key waits and then finds the first one's copy. */
  private readonly starting = new Map<string, Promise<TransferStatus>>();

  constructor(options: RcloneDataMoverOptions) {
    this.rc = new RcClient(options);
    this.maxJobsScanned = options.maxJobsScanned ?? DEFAULT_MAX_JOBS_SCANNED;
    this.maxVerifyFiles = options.maxVerifyFiles ?? DEFAULT_MAX_VERIFY_FILES;
    this.cancelWaitMs = options.cancelWaitMs ?? DEFAULT_CANCEL_WAIT_MS;
  }

  async start(request: TransferRequest): Promise<TransferStatus> {
    validateRequest(request);
    for (;;) {
      const inFlight = this.starting.get(request.key);
      if (inFlight === undefined) break;
      await inFlight.catch(() => undefined);
    }
    const attempt = this.startOnce(request);
    this.starting.set(request.key, attempt);
    try {
      return await attempt;
    } finally {
      if (this.starting.get(request.key) === attempt) this.starting.delete(request.key);
    }
  }

  async status(transferId: string): Promise<TransferStatus> {
    const { jobId, key } = parseTransferId(transferId);
    const job = await this.jobStatus(jobId);
    if (job === undefined || job.group !== key) {
      throw new ArcError(
        ErrorCodes.UNKNOWN_QUEUE_ITEM,
        `rclone's rcd does not know transfer ${transferId} (it forgets finished copies after its --rc-job-expire-duration, and all of them when it restarts): start the transfer again; files already copied are skipped`,
        { transferId },
      );
    }
    this.jobByKey.set(key, Math.max(jobId, this.jobByKey.get(key) ?? 0));
    return this.describe(job, key);
  }

  async find(key: string): Promise<TransferStatus | undefined> {
    if (!TRANSFER_KEY_PATTERN.test(key)) throw new ArcError(ErrorCodes.VALIDATION, `transfer key '${key}' must be 1 to 128 of A-Z a-z 0-9 . _ -`);
    const known = this.jobByKey.get(key);
    if (known !== undefined) {
      const job = await this.jobStatus(known);
      if (job !== undefined && job.group === key) return this.describe(job, key);
      this.jobByKey.delete(key);
    }
    // A stats group exists from a copy's start until rcd restarts: without one, no scan is needed.
    const groups = await this.rc.call<{ groups?: string[] | null }>('core/group-list');
    if (!(groups.groups ?? []).includes(key)) return undefined;
    const job = await this.scanForKey(key);
    if (job === undefined) return undefined;
    this.jobByKey.set(key, job.id);
    return this.describe(job, key);
  }

  async cancel(transferId: string): Promise<void> {
    const { jobId, key } = parseTransferId(transferId);
    const job = await this.jobStatus(jobId);
    if (job === undefined || job.group !== key) {
      throw new ArcError(ErrorCodes.UNKNOWN_QUEUE_ITEM, `rclone's rcd does not know transfer ${transferId}; nothing to cancel`, { transferId });
    }
    if (job.finished) return;
    try {
      await this.rc.call('job/stop', { jobid: jobId });
    } catch (err) {
      if (!(err instanceof RcCallError)) throw err;
      // Finished between the two calls: nothing left to stop.
    }
    // job/stop only asks the copy to stop; wait until rclone says it did, so nothing writes after we return.
    const deadline = performance.now() + this.cancelWaitMs;
    for (;;) {
      const now = await this.jobStatus(jobId);
      if (now === undefined || now.finished) return;
      if (performance.now() > deadline) {
        throw new ArcError(ErrorCodes.DATA_MOVER, `rclone did not stop transfer ${transferId} within ${this.cancelWaitMs} ms of job/stop; cancel it again or look at rcd's log`, { transferId });
      }
      await sleep(CANCEL_POLL_MS);
    }
  }

  async verify(request: TransferRequest): Promise<{ readonly ok: boolean; readonly detail: string }> {
    validateRequest(request);
    const source = toRcloneFs(request.sourceUri);
    const destination = toRcloneFs(transferDestination(request));
    const [sourceHashes, destinationHashes] = await Promise.all([this.hashTypes(source), this.hashTypes(destination)]);
    const hash = HASH_PREFERENCE.find((h) => sourceHashes.includes(h) && destinationHashes.includes(h));
    if (hash === undefined) {
      return { ok: false, detail: `no checksum both sides support (source: ${sourceHashes.join(',') || 'none'}; destination: ${destinationHashes.join(',') || 'none'})` };
    }
    const [sourceFiles, destinationFiles] = await Promise.all([this.listWithHash(source, hash), this.listWithHash(destination, hash)]);
    if (sourceFiles === undefined) return { ok: false, detail: `source ${request.sourceUri} not found` };
    if (destinationFiles === undefined) return { ok: false, detail: `destination ${transferDestination(request)} not found` };
    for (const [side, files] of [['source', sourceFiles], ['destination', destinationFiles]] as const) {
      if (files.length > this.maxVerifyFiles) return { ok: false, detail: `${side} has ${files.length} files, more than the ${this.maxVerifyFiles} verify compares` };
    }
    return compareListings(sourceFiles, destinationFiles, hash);
  }

  private async startOnce(request: TransferRequest): Promise<TransferStatus> {
    const existing = await this.find(request.key);
    // A live copy, or one that already succeeded, is the answer; a failed or cancelled one is started again.
    if (existing !== undefined && (existing.state === 'running' || existing.state === 'succeeded')) return existing;
    // Stats accumulate per group: a fresh count for the new copy (no group yet is fine).
    await this.rc.call('core/stats-reset', { group: request.key }).catch((err: unknown) => {
      if (!(err instanceof RcCallError && /not found/i.test(err.message))) throw err;
    });
    const answer = await this.rcOrDataMoverError('sync/copy', {
      srcFs: toRcloneFs(request.sourceUri),
      dstFs: toRcloneFs(transferDestination(request)),
      _async: true,
      _group: request.key,
      // Compare by checksum, not modification time: a partial file from a cancelled copy is rewritten.
      _config: { CheckSum: true },
    });
    const jobId = (answer as { jobid?: unknown }).jobid;
    if (typeof jobId !== 'number') throw new ArcError(ErrorCodes.DATA_MOVER, `rclone's sync/copy answered without a job id: ${JSON.stringify(answer)}`);
    this.jobByKey.set(request.key, jobId);
    const job = await this.jobStatus(jobId);
    if (job === undefined) throw new ArcError(ErrorCodes.DATA_MOVER, `rclone forgot job ${jobId} right after starting it`);
    return this.describe(job, request.key);
  }

  private async describe(job: RcJobStatus, key: string): Promise<TransferStatus> {
    const stats = await this.rc.call<RcStats>('core/stats', { group: key });
    const state = transferState(job);
    const bytes = stats.bytes ?? 0;
    const total = stats.totalBytes ?? 0;
    // While rclone still lists the source, totalBytes is what it found so far (0 before the first file).
    const bytesTotal = state === 'succeeded' ? Math.max(total, bytes) : total > 0 ? Math.max(total, bytes) : null;
    return {
      transferId: `${job.id}:${key}`,
      key,
      state,
      bytesDone: bytesTotal === null ? bytes : Math.min(bytes, bytesTotal),
      bytesTotal,
      error: state === 'running' || state === 'succeeded' ? null : job.error || stats.lastError || 'rclone reported failure without a message',
    };
  }

  private async jobStatus(jobId: number): Promise<RcJobStatus | undefined> {
    try {
      return await this.rc.call<RcJobStatus>('job/status', { jobid: jobId });
    } catch (err) {
      if (err instanceof RcCallError && /job not found/i.test(err.message)) return undefined;
      if (err instanceof RcCallError) throw new ArcError(ErrorCodes.DATA_MOVER, `rclone's job/status failed: ${err.message}`, { jobId });
      throw err;
    }
  }

  /** The newest rcd job whose stats group is the key, among at most maxJobsScanned of the newest jobs. */
  private async scanForKey(key: string): Promise<RcJobStatus | undefined> {
    const list = await this.rc.call<{ jobids?: number[] | null }>('job/list');
    const ids = [...(list.jobids ?? [])].sort((a, b) => b - a).slice(0, this.maxJobsScanned);
    let best: RcJobStatus | undefined;
    for (let i = 0; i < ids.length; i += SCAN_CONCURRENCY) {
      const batch = await Promise.all(ids.slice(i, i + SCAN_CONCURRENCY).map((id) => this.jobStatus(id)));
      for (const job of batch) {
        if (job !== undefined && job.group === key && (best === undefined || job.id > best.id)) best = job;
      }
      // Newest first: the first batch holding a match holds the newest one.
      if (best !== undefined) return best;
    }
    return best;
  }

  private async hashTypes(fs: string): Promise<readonly string[]> {
    try {
      const info = await this.rc.call<{ Hashes?: string[] | null }>('operations/fsinfo', { fs });
      return info.Hashes ?? [];
    } catch (err) {
      if (err instanceof RcCallError) return [];
      throw err;
    }
  }

  private async listWithHash(fs: string, hash: string): Promise<ListedFile[] | undefined> {
    try {
      const answer = await this.rc.call<{ list?: { Path: string; Size: number; Hashes?: Record<string, string> }[] | null }>('operations/list', {
        fs,
        remote: '',
        opt: { recurse: true, filesOnly: true, showHash: true, hashTypes: [hash], noMimeType: true, noModTime: true },
      });
      return (answer.list ?? []).map((f) => ({ path: f.Path, sizeBytes: f.Size, hash: f.Hashes?.[hash] ?? '' }));
    } catch (err) {
      if (err instanceof RcCallError && /not found/i.test(err.message)) return undefined;
      if (err instanceof RcCallError) throw new ArcError(ErrorCodes.DATA_MOVER, `rclone could not list ${fs}: ${err.message}`, { fs });
      throw err;
    }
  }

  private async rcOrDataMoverError(path: string, body: Record<string, unknown>): Promise<unknown> {
    try {
      return await this.rc.call(path, body);
    } catch (err) {
      if (err instanceof RcCallError) throw new ArcError(ErrorCodes.DATA_MOVER, `rclone refused ${path}: ${err.message}`, { path });
      throw err;
    }
  }
}

function transferState(job: RcJobStatus): TransferState {
  if (!job.finished) return 'running';
  if (job.success) return 'succeeded';
  // job/stop cancels the copy's context; rclone reports that as the job's error.
  return /context canceled/i.test(job.error) ? 'cancelled' : 'failed';
}

function parseTransferId(transferId: string): { jobId: number; key: string } {
  const m = /^(\d{1,15}):(.+)$/.exec(transferId);
  if (!m || !TRANSFER_KEY_PATTERN.test(m[2] ?? '')) {
    throw new ArcError(ErrorCodes.VALIDATION, `'${transferId}' is not an rclone transfer id ("<job id>:<key>")`);
  }
  return { jobId: Number(m[1]), key: m[2] ?? '' };
}

function validateRequest(request: TransferRequest): void {
  if (!TRANSFER_KEY_PATTERN.test(request.key)) throw new ArcError(ErrorCodes.VALIDATION, `transfer key '${request.key}' must be 1 to 128 of A-Z a-z 0-9 . _ -`);
  for (const [name, uri] of [['sourceUri', request.sourceUri], ['destinationUri', request.destinationUri]] as const) {
    if (uri.length === 0 || uri.length > URI_MAX_LENGTH || uri.includes('\0')) throw new ArcError(ErrorCodes.VALIDATION, `${name} must be 1 to ${URI_MAX_LENGTH} characters`);
    toRcloneFs(uri);
  }
}

/**
 * What rclone calls an fs: a local absolute path, or "remote:path" for a configured remote (S3,
 * SFTP, ...). file:// URIs become local paths; other URI schemes are refused with what to use.
 */
export function toRcloneFs(uri: string): string {
  if (uri.startsWith('file://')) {
    const path = decodeURIComponent(new URL(uri).pathname);
    if (!path.startsWith('/')) throw new ArcError(ErrorCodes.VALIDATION, `'${uri}' is not an absolute file:// URI`);
    return path;
  }
  if (uri.startsWith('/')) return uri;
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(uri)) {
    throw new ArcError(ErrorCodes.VALIDATION, `'${uri}': the rclone data mover takes a local path, a file:// URI or an rclone remote ("name:path", configured in rclone.conf)`);
  }
  if (/^[A-Za-z0-9_. -]+:/.test(uri) || uri.startsWith(':')) return uri;
  throw new ArcError(ErrorCodes.VALIDATION, `'${uri}' is relative: give an absolute path, a file:// URI or an rclone remote ("name:path")`);
}
