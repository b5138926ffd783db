/**
 * A sorted list kept as a run of small sorted chunks, so an insert or a removal
 * costs two binary searches and a splice of at most `maxChunk` entries instead
 * of a splice of the whole list. A plain sorted array moves every entry after
 * the insertion point: with tens of thousands of entries that memmove, done on
 * every change, made the cost of each change grow with the size of the list.
 *
 * Iteration goes in order from the smallest entry; entries that compare equal
 * keep the order they were inserted in (each lands after its equals).
 */
const DEFAULT_MAX_CHUNK = 512;

export class SortedList<T> {
  private readonly chunks: T[][] = [];
  private readonly compare: (a: T, b: T) => number;
  private readonly maxChunk: number;
  private count = 0;

  /** `maxChunk`: entries per chunk before it splits in two (small ones only to test the splits). */
  constructor(compare: (a: T, b: T) => number, maxChunk = DEFAULT_MAX_CHUNK) {
    if (!(Number.isInteger(maxChunk) && maxChunk >= 2)) throw new RangeError(`maxChunk must be an integer >= 2, got ${maxChunk}`);
    this.compare = compare;
    this.maxChunk = maxChunk;
  }

  get size(): number {
    return this.count;
  }

  insert(item: T): void {
    const chunks = this.chunks;
    if (chunks.length === 0) {
      chunks.push([item]);
      this.count = 1;
      return;
    }
    // The first chunk whose last entry comes after the item takes it; past every chunk, the last one does.
    let c = this.chunkAfter(item);
    if (c === chunks.length) c--;
    const chunk = chunks[c] as T[];
    chunk.splice(this.upperBound(chunk, item), 0, item);
    this.count++;
    if (chunk.length > this.maxChunk) chunks.splice(c + 1, 0, chunk.splice(this.maxChunk >>> 1));
  }

  /** Removes the entry that compares equal to `item` and satisfies `same`; whether one was found. */
  remove(item: T, same: (candidate: T) => boolean): boolean {
    const chunks = this.chunks;
    for (let c = this.chunkAtOrAfter(item); c < chunks.length; c++) {
      const chunk = chunks[c] as T[];
      for (let i = this.lowerBound(chunk, item); i < chunk.length; i++) {
        const candidate = chunk[i] as T;
        if (this.compare(candidate, item) !== 0) return false;
        if (!same(candidate)) continue;
        chunk.splice(i, 1);
        this.count--;
        if (chunk.length === 0) chunks.splice(c, 1);
        return true;
      }
    }
    return false;
  }

  /** The first entry, in order, that satisfies `accept` (a loop, not the iterator: routing calls this per request). */
  find(accept: (item: T) => boolean): T | undefined {
    for (const chunk of this.chunks) {
      for (const item of chunk) if (accept(item)) return item;
    }
    return undefined;
  }

  clear(): void {
    this.chunks.length = 0;
    this.count = 0;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (const chunk of this.chunks) yield* chunk;
  }

  /** The first chunk whose last entry is >= item (chunks.length when none). */
  private chunkAtOrAfter(item: T): number {
    let lo = 0;
    let hi = this.chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const chunk = this.chunks[mid] as T[];
      if (this.compare(chunk[chunk.length - 1] as T, item) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The first chunk whose last entry is > item (chunks.length when none). */
  private chunkAfter(item: T): number {
    let lo = 0;
    let hi = this.chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const chunk = this.chunks[mid] as T[];
      if (this.compare(chunk[chunk.length - 1] as T, item) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private lowerBound(chunk: readonly T[], item: T): number {
    let lo = 0;
    let hi = chunk.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.compare(chunk[mid] as T, item) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private upperBound(chunk: readonly T[], item: T): number {
    let lo = 0;
    let hi = chunk.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.compare(chunk[mid] as T, item) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
