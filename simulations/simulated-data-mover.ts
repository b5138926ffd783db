import type { Clock } from '../runtime/clock.js';
import { TRANSFER_KEY_PATTERN, type DataMover, type TransferRequest, type TransferState, type TransferStatus } from '../runtime/data-mover.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import { pickByWeight, prngFor } from './seeded-fate.js';

/** What happens to one copy: it completes, stops moving forever, fails, or completes with a corrupt file. */
export type TransferFault = 'none' | 'stall' | 'fail' | 'corrupt';

export interface SimulatedDataMoverOptions {
  /** Simulated time (a ManualClock): progress is a function of it, nothing runs between calls. */
  readonly clock: Clock;
  readonly seed: number;
  /** The dataset's size for a request (the simulation knows it from the job); default 1 GiB. */
  readonly sourceSizeBytes?: (request: TransferRequest) => number;
  /** Copy speed; default 1 GB/s (a site's data transfer node). */
  readonly bytesPerSecond?: number;
  /** Chance per copy of each fault; default stall 0.03, fail 0.03, corrupt 0.01. */
  readonly faultRates?: Partial<Record<Exclude<TransferFault, 'none'>, number>>;
  /** Faults for given keys' first copy, whatever the seed draws (scenarios and tests). */
  readonly forcedFaults?: Readonly<Record<string, TransferFault>>;
}

interface Copy {
  readonly transferId: string;
  readonly key: string;
  readonly startedAtMs: number;
  /** What this copy moves: the dataset less what earlier copies of the key left complete. */
  readonly bytesTotal: number;
  readonly fault: TransferFault;
  /** Where a stall or failure strikes, in bytes of this copy. */
  readonly faultAtBytes: number;
  cancelledAtMs: number | null;
}

const DEFAULT_SIZE_BYTES = 1024 ** 3;
const DEFAULT_BYTES_PER_SECOND = 1e9;
const DEFAULT_FAULT_RATES = { stall: 0.03, fail: 0.03, corrupt: 0.01 } as const;
/** Copies a simulated mover keeps; a run asking for more is a bug in the scenario, not a reason to grow without bound. */
export const MAX_SIMULATED_TRANSFERS = 1_000_000;

/**
 * The DataMover port on simulated time, for the simulation harness: copies progress at a fixed
 * rate as the Clock moves, and seeded faults strike some of them (a copy that stalls and never
 * finishes, one that fails part-way, one whose data fails verification). Deterministic: the same
 * seed and the same calls at the same simulated times give the same answers. The mover outlives
 * its caller, as rclone's rcd does, so a simulated crash of the caller can be followed by find(key).
 */
export class SimulatedDataMover implements DataMover {
  private readonly clock: Clock;
  private readonly seed: number;
  private readonly sizeOf: (request: TransferRequest) => number;
  private readonly bytesPerMs: number;
  private readonly faultRates: Record<Exclude<TransferFault, 'none'>, number>;
  private readonly forcedFaults: Readonly<Record<string, TransferFault>>;
  private readonly copies = new Map<string, Copy>();
  /** Copies per key, oldest first. */
  private readonly copiesByKey = new Map<string, Copy[]>();

  constructor(options: SimulatedDataMoverOptions) {
    this.clock = options.clock;
    this.seed = options.seed;
    this.sizeOf = options.sourceSizeBytes ?? (() => DEFAULT_SIZE_BYTES);
    this.bytesPerMs = (options.bytesPerSecond ?? DEFAULT_BYTES_PER_SECOND) / 1000;
    this.faultRates = { ...DEFAULT_FAULT_RATES, ...options.faultRates };
    this.forcedFaults = options.forcedFaults ?? {};
  }

  start(request: TransferRequest): Promise<TransferStatus> {
    return settle(() => {
      if (!TRANSFER_KEY_PATTERN.test(request.key)) throw new ArcError(ErrorCodes.VALIDATION, `transfer key '${request.key}' must be 1 to 128 of A-Z a-z 0-9 . _ -`);
      const latest = this.latest(request.key);
      if (latest !== undefined) {
        const status = this.describe(latest);
        if (status.state === 'running' || status.state === 'succeeded') return status;
      }
      if (this.copies.size >= MAX_SIMULATED_TRANSFERS) throw new ArcError(ErrorCodes.DATA_MOVER, `the simulated mover holds ${MAX_SIMULATED_TRANSFERS} transfers already`);
      const history = this.copiesByKey.get(request.key) ?? [];
      const attempt = history.length;
      const size = Math.max(0, Math.floor(this.sizeOf(request)));
      // Like rclone with checksums: what an earlier copy completed is skipped (unless it was corrupt).
      const staged = history.reduce((most, c) => Math.max(most, c.fault === 'corrupt' ? 0 : this.bytesAt(c, this.clock.nowMs())), 0);
      const prng = prngFor(this.seed, `${request.key}#${attempt}`);
      const forced = attempt === 0 ? this.forcedFaults[request.key] : undefined;
      const fault =
        forced ??
        pickByWeight<TransferFault>(prng, [['stall', this.faultRates.stall], ['fail', this.faultRates.fail], ['corrupt', this.faultRates.corrupt]], 'none');
      const bytesTotal = Math.max(0, size - staged);
      const copy: Copy = {
        transferId: `sim-${request.key}-${attempt}`,
        key: request.key,
        startedAtMs: this.clock.nowMs(),
        bytesTotal,
        fault,
        faultAtBytes: Math.floor(bytesTotal * prng.between(0.1, 0.9)),
        cancelledAtMs: null,
      };
      this.copies.set(copy.transferId, copy);
      this.copiesByKey.set(request.key, [...history, copy]);
      return this.describe(copy);
    });
  }

  status(transferId: string): Promise<TransferStatus> {
    return settle(() => this.describe(this.copy(transferId)));
  }

  find(key: string): Promise<TransferStatus | undefined> {
    return settle(() => {
      const latest = this.latest(key);
      return latest === undefined ? undefined : this.describe(latest);
    });
  }

  cancel(transferId: string): Promise<void> {
    return settle(() => {
      const copy = this.copy(transferId);
      if (this.describe(copy).state === 'running') copy.cancelledAtMs = this.clock.nowMs();
    });
  }

  verify(request: TransferRequest): Promise<{ readonly ok: boolean; readonly detail: string }> {
    return settle(() => {
      const latest = this.latest(request.key);
      if (latest === undefined) return { ok: false, detail: `nothing was copied for ${request.key}` };
      const status = this.describe(latest);
      if (status.state !== 'succeeded') return { ok: false, detail: `the copy for ${request.key} is ${status.state}, not complete` };
      if (latest.fault === 'corrupt') return { ok: false, detail: `1 difference(s): shard-0000.bin: sha256 differs (simulated corruption)` };
      return { ok: true, detail: `${status.bytesTotal ?? 0} bytes, sha256 checksums identical (simulated)` };
    });
  }

  /**
   * The simulated time at which the next copy finishes or fails (a stall never "happens": it is
   * the absence of progress). Lets a simulation poll exactly when something changes.
   */
  nextChangeAtMs(): number | undefined {
    const now = this.clock.nowMs();
    let next: number | undefined;
    for (const copy of this.copies.values()) {
      if (copy.cancelledAtMs !== null || copy.fault === 'stall') continue;
      const endBytes = copy.fault === 'fail' ? copy.faultAtBytes : copy.bytesTotal;
      const at = copy.startedAtMs + Math.ceil(endBytes / this.bytesPerMs);
      if (at > now && (next === undefined || at < next)) next = at;
    }
    return next;
  }

  /** Every copy ever started, in start order (for invariant checks: never two live copies per key). */
  transfers(): readonly { readonly transferId: string; readonly key: string; readonly startedAtMs: number; readonly fault: TransferFault }[] {
    return [...this.copies.values()].map(({ transferId, key, startedAtMs, fault }) => ({ transferId, key, startedAtMs, fault }));
  }

  private copy(transferId: string): Copy {
    const copy = this.copies.get(transferId);
    if (copy === undefined) throw new ArcError(ErrorCodes.UNKNOWN_QUEUE_ITEM, `the simulated mover knows no transfer ${transferId}: start it again`, { transferId });
    return copy;
  }

  private latest(key: string): Copy | undefined {
    return this.copiesByKey.get(key)?.at(-1);
  }

  /** Bytes this copy had moved at `atMs`. */
  private bytesAt(copy: Copy, atMs: number): number {
    const until = copy.cancelledAtMs === null ? atMs : Math.min(atMs, copy.cancelledAtMs);
    const moved = Math.floor(Math.max(0, until - copy.startedAtMs) * this.bytesPerMs);
    const ceiling = copy.fault === 'stall' || copy.fault === 'fail' ? copy.faultAtBytes : copy.bytesTotal;
    return Math.min(moved, ceiling);
  }

  private describe(copy: Copy): TransferStatus {
    const bytesDone = this.bytesAt(copy, this.clock.nowMs());
    let state: TransferState = 'running';
    let error: string | null = null;
    // A cancel is taken only while running, so a cancelled copy never reached its failure point.
    if (copy.fault === 'fail' && bytesDone >= copy.faultAtBytes) {
      state = 'failed';
      error = 'simulated: the connection to the source was reset';
    } else if (copy.cancelledAtMs !== null) {
      state = 'cancelled';
      error = 'cancelled';
    } else if (copy.fault !== 'stall' && copy.fault !== 'fail' && bytesDone >= copy.bytesTotal) {
      state = 'succeeded';
    }
    return { transferId: copy.transferId, key: copy.key, state, bytesDone, bytesTotal: copy.bytesTotal, error };
  }
}

/** Runs a synchronous body as the port's promise, its throw as a rejection. */
function settle<T>(body: () => T): Promise<T> {
  try {
    return Promise.resolve(body());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}
