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
  readonly sourceUri: string;
  readonly destinationUri: string;
}

export type TransferState = 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface TransferStatus {
  readonly transferId: string;
  readonly key: string;
  readonly state: TransferState;
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
}

/** Keys become folder names and stats-group names in adapters: a small, safe alphabet. */
export const TRANSFER_KEY_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;

export function isTerminalTransferState(state: TransferState): boolean {
  return state !== 'running';
}
