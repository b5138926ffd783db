/**
 * The simulator's agenda: callbacks ordered by (time, insertion sequence), so
 * events at the same simulated time always run in the order they were scheduled.
 */
interface Scheduled {
  readonly atMs: number;
  readonly seq: number;
  readonly run: () => void;
}

function before(a: Scheduled, b: Scheduled): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
}

export class EventQueue {
  private readonly heap: Scheduled[] = [];
  private seq = 0;

  get size(): number {
    return this.heap.length;
  }

  schedule(atMs: number, run: () => void): void {
    const item: Scheduled = { atMs, seq: this.seq++, run };
    const heap = this.heap;
    heap.push(item);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as Scheduled;
      if (!before(item, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = item;
  }

  peekMs(): number | undefined {
    return this.heap[0]?.atMs;
  }

  pop(): Scheduled | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    let i = 0;
    const n = heap.length;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && before(heap[right] as Scheduled, heap[left] as Scheduled) ? right : left;
      const c = heap[child] as Scheduled;
      if (!before(c, last)) break;
      heap[i] = c;
      i = child;
    }
    heap[i] = last;
    return top;
  }
}
