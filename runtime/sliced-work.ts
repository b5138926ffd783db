import { monotonicNowMs } from './clock.js';

/**
 * Long jobs on the shard's event loop (a snapshot of 100,000 actors) cut into
 * slices, with the loop let go between them so input keeps flowing: no slice
 * holds the loop much longer than its budget.
 *
 * Yielding is scheduling only: the monotonic clock decides where a job is cut,
 * never what it computes, so the result is the same however it was cut (replay
 * and state hashes do not see this clock).
 */
export type YieldToLoop = () => Promise<void>;

/** Lets queued I/O and timers run (setImmediate: after the poll phase, so input is read between slices). */
export const yieldToLoop: YieldToLoop = () => new Promise((resolve) => setImmediate(resolve));

/** The loop time a slice may take before it yields: input waits at most about this long behind a snapshot. */
export const DEFAULT_SLICE_BUDGET_MS = 2;
/** Items between clock reads: an item here (sorting step, one actor persisted) costs microseconds. */
const ITEMS_PER_CHECK = 16;

/** Tells a loop over many items when its slice is spent; `await slicer.pause()` then lets input run. */
export class Slicer {
  private items = 0;
  private sliceStartMs: number;

  constructor(
    private readonly yieldNow: YieldToLoop = yieldToLoop,
    private readonly budgetMs = DEFAULT_SLICE_BUDGET_MS,
    private readonly nowMs: () => number = monotonicNowMs,
  ) {
    this.sliceStartMs = nowMs();
  }

  /** Whether the current slice is spent (call once per item; reads the clock every few items). */
  due(): boolean {
    if (++this.items % ITEMS_PER_CHECK !== 0) return false;
    return this.nowMs() - this.sliceStartMs >= this.budgetMs;
  }

  /** Whether the slice is spent, read from the clock now (for loops whose items are large). */
  spent(): boolean {
    return this.nowMs() - this.sliceStartMs >= this.budgetMs;
  }

  async pause(): Promise<void> {
    await this.yieldNow();
    this.sliceStartMs = this.nowMs();
  }
}

/** Items sorted per run before merging: sorting one run fits well inside a slice. */
const RUN_ITEMS = 512;

/**
 * Returns `[...items].sort(compare)`, computed in slices: runs of RUN_ITEMS are
 * sorted, then merged bottom-up, pausing whenever the slice is spent. Stable,
 * like Array.sort.
 */
export async function sortInSlices<T>(items: readonly T[], compare: (a: T, b: T) => number, slicer: Slicer = new Slicer()): Promise<T[]> {
  const n = items.length;
  let from: T[] = new Array<T>(n);
  for (let start = 0; start < n; start += RUN_ITEMS) {
    const run = items.slice(start, start + RUN_ITEMS).sort(compare);
    for (let i = 0; i < run.length; i++) from[start + i] = run[i] as T;
    // A run costs about what RUN_ITEMS merge steps do: count it as that many items.
    for (let i = 0; i < run.length; i++) if (slicer.due()) await slicer.pause();
  }
  let to: T[] = new Array<T>(n);
  for (let width = RUN_ITEMS; width < n; width *= 2) {
    for (let left = 0; left < n; left += 2 * width) {
      const middle = Math.min(left + width, n);
      const right = Math.min(left + 2 * width, n);
      let i = left;
      let j = middle;
      let k = left;
      while (k < right) {
        // Take from the left run on ties: the merge stays stable.
        if (j >= right || (i < middle && compare(from[i] as T, from[j] as T) <= 0)) to[k++] = from[i++] as T;
        else to[k++] = from[j++] as T;
        if (slicer.due()) await slicer.pause();
      }
    }
    [from, to] = [to, from];
  }
  return from;
}

/** Maps `items` in order, pausing whenever the slice is spent. */
export async function mapInSlices<T, U>(items: readonly T[], map: (item: T) => U, slicer: Slicer = new Slicer()): Promise<U[]> {
  const out = new Array<U>(items.length);
  for (let i = 0; i < items.length; i++) {
    out[i] = map(items[i] as T);
    if (slicer.due()) await slicer.pause();
  }
  return out;
}

/** Arrays longer than this are encoded an item at a time; shorter ones (and everything deeper) at once. */
const LONG_ARRAY_ITEMS = 256;
/** Objects are taken apart down to this depth: far enough to reach a snapshot's actors and its behaviour's lists. */
const MAX_SPLIT_DEPTH = 3;

/** JSON.stringify as it behaves: undefined for undefined, functions and symbols (its typing says string). */
const stringify = (value: unknown): string | undefined => JSON.stringify(value);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return (proto === Object.prototype || proto === null) && typeof (value as { toJSON?: unknown }).toJSON !== 'function';
}

/**
 * `JSON.stringify(value)` (no replacer, no indent), built in slices: plain
 * objects near the top are taken apart key by key and long arrays item by item,
 * pausing whenever the slice is spent; the text is the same as the one-call
 * encoding (keys in the same order, undefined and functions skipped in objects
 * and null in arrays).
 */
export async function jsonInSlices(value: unknown, slicer: Slicer = new Slicer(), depth = 0): Promise<string | undefined> {
  if (depth < MAX_SPLIT_DEPTH && Array.isArray(value) && value.length > LONG_ARRAY_ITEMS) {
    const pieces = new Array<string>(value.length);
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      // An item is encoded whole (an actor is small), unless it is itself a long array.
      pieces[i] = Array.isArray(item) && item.length > LONG_ARRAY_ITEMS ? ((await jsonInSlices(item, slicer, depth + 1)) ?? 'null') : (stringify(item) ?? 'null');
      if (slicer.due()) await slicer.pause();
    }
    return `[${pieces.join(',')}]`;
  }
  if (depth < MAX_SPLIT_DEPTH && isPlainObject(value)) {
    const members: string[] = [];
    for (const key of Object.keys(value)) {
      const encoded = await jsonInSlices(value[key], slicer, depth + 1);
      if (encoded !== undefined) members.push(`${JSON.stringify(key)}:${encoded}`);
    }
    return `{${members.join(',')}}`;
  }
  return stringify(value);
}
