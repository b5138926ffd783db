/**
 * The timer wheel: at most one deadline per actor, fired in a fixed order
 * (deadline, then actor id) whenever logical time reaches it. Deadlines are data
 * held in actor context; this structure is only an index over them, rebuilt from
 * the actors on recovery, so it never needs to be persisted.
 *
 * Implemented as a binary min-heap with lazy deletion: changing or clearing an
 * actor's deadline leaves the old heap entry behind, and stale entries are
 * skipped when they reach the top. O(log n) per change, no scan at 10,000 actors.
 */
interface Entry {
  readonly atMs: number;
  readonly actorId: string;
}

function before(x: Entry, y: Entry): boolean {
  return x.atMs < y.atMs || (x.atMs === y.atMs && x.actorId < y.actorId);
}

export class TimerWheel {
  private readonly heap: Entry[] = [];
  private readonly current = new Map<string, number>();

  /** Sets (or, with undefined, clears) the deadline of one actor. */
  set(actorId: string, atMs: number | undefined): void {
    const existing = this.current.get(actorId);
    if (existing === atMs) return;
    if (atMs === undefined) {
      this.current.delete(actorId);
      return;
    }
    this.current.set(actorId, atMs);
    this.push({ atMs, actorId });
    // Stale entries would otherwise pile up under heavy churn: compact when they dominate.
    if (this.heap.length > 1024 && this.heap.length > 4 * this.current.size) this.rebuild();
  }

  get(actorId: string): number | undefined {
    return this.current.get(actorId);
  }

  get size(): number {
    return this.current.size;
  }

  /** The earliest live deadline, or undefined when none is set. */
  peek(): Entry | undefined {
    this.dropStale();
    return this.heap[0];
  }

  /** Removes and returns the earliest deadline if it is due at `nowMs`. */
  popDue(nowMs: number): Entry | undefined {
    const top = this.peek();
    if (top === undefined || top.atMs > nowMs) return undefined;
    this.popTop();
    this.current.delete(top.actorId);
    return top;
  }

  clear(): void {
    this.heap.length = 0;
    this.current.clear();
  }

  private dropStale(): void {
    for (;;) {
      const top = this.heap[0];
      if (top === undefined || this.current.get(top.actorId) === top.atMs) return;
      this.popTop();
    }
  }

  private rebuild(): void {
    this.heap.length = 0;
    for (const [actorId, atMs] of this.current) this.heap.push({ atMs, actorId });
    for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  private push(entry: Entry): void {
    const heap = this.heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as Entry;
      if (!before(entry, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = entry;
  }

  private popTop(): void {
    const heap = this.heap;
    const last = heap.pop();
    if (last === undefined || heap.length === 0) return;
    heap[0] = last;
    this.siftDown(0);
  }

  private siftDown(start: number): void {
    const heap = this.heap;
    const n = heap.length;
    const entry = heap[start] as Entry;
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      let child = left;
      if (right < n && before(heap[right] as Entry, heap[left] as Entry)) child = right;
      const c = heap[child] as Entry;
      if (!before(c, entry)) break;
      heap[i] = c;
      i = child;
    }
    heap[i] = entry;
  }
}
