/**
 * The DataMover port: copies a dataset from where it lives to where a batch job can read it,
 * asynchronously, with progress, cancel and a checksum comparison at the end.
 *
 * Every transfer is named by a caller-chosen `key` (stable across restarts of the caller), so a
 * caller that crashed mid-transfer can `find(key)` the copy it started instead of starting a
 * second one. Adapters: rclone's remote-control API (adapters/rclone), a simulated mover on
 * simulated time (simulations/); Globus's transfer API is the production target of the same port.
 */
export interface TransferRequest {
  /** Caller-chosen, stable across restarts: one live copy per key. [A-Za-z0-9._-], at most 128 characters. */
  readonly key: string;
  /** A folder (local path, file:// URI, or a mover-specific remote such as rclone's `remote:path`). */
  readonly sourceUri: string;
  /** The staging folder: the copy lands in `transferDestination(request)`, a sub-folder named after the key. */
  readonly destinationUri: string;
}

export type TransferState = 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface TransferStatus {
  readonly transferId: string;
  readonly key: string;
  readonly state: TransferState;
  /**
   * Bytes of the copy in progress. A copy started again for a key counts only what it still has to
   * move (files already at the destination are skipped), so a caller showing progress across a
   * restart keeps its own maximum. bytesDone <= bytesTotal whenever bytesTotal is known.
   */
  readonly bytesDone: number;
  /** Null until the mover knows the size of what it copies. */
  readonly bytesTotal: number | null;
  /** Why it failed or was cancelled; null while running or after success. */
  readonly error: string | null;
}

export interface DataMover {
  /** Starts (or finds, by key, the live or finished transfer of) a copy; idempotent by key: never two live copies for one key. */
  start(request: TransferRequest): Promise<TransferStatus>;
  status(transferId: string): Promise<TransferStatus>;
  /** The transfer for a key, if the mover knows one (after a restart of the caller). */
  find(key: string): Promise<TransferStatus | undefined>;
  cancel(transferId: string): Promise<void>;
  /** Checksums of source and destination compared; ok false with the differences named. */
  verify(request: TransferRequest): Promise<{ readonly ok: boolean; readonly detail: string }>;
  /**
   * Where the copy of a request lands, when not `transferDestination(request)` (a mover that
   * copies straight into destinationUri, or one that renames the key): what a batch job reads.
   */
  landsAt?(request: TransferRequest): string;
}

/** Where a mover puts the copy of a request (its own answer, else the port's layout). */
export function stagedLocation(mover: DataMover, request: TransferRequest): string {
  return mover.landsAt?.(request) ?? transferDestination(request);
}

/** Keys become folder names and stats-group names in adapters: a small, safe alphabet. */
export const TRANSFER_KEY_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;

export function isTerminalTransferState(state: TransferState): boolean {
  return state !== 'running';
}

/**
 * Where a transfer's files land: the destination folder's sub-folder named after the key. One
 * folder per key means a copy started again after a crash writes over its own partial files (and
 * skips the complete ones) and never mixes with another job's data.
 */
export function transferDestination(request: Pick<TransferRequest, 'key' | 'destinationUri'>): string {
  return `${request.destinationUri.replace(/\/+$/, '')}/${request.key}`;
}
