export interface TransferRequest { readonly key: string; readonly sourceUri: string; readonly destinationUri: string }
export type TransferState = 'running' | 'succeeded' | 'failed' | 'cancelled';
export interface TransferStatus { readonly transferId: string; readonly key: string; readonly state: TransferState;
  readonly bytesDone: number; readonly bytesTotal: number | null; readonly error: string | null }
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
