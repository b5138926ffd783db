import { MinHeap } from '../runtime/min-heap.js';

/**
 * The simulator's agenda: callbacks ordered by (time, insertion sequence), so
 * events at the same simulated time always run in the order they were scheduled.
 */
interface Scheduled {
  readonly atMs: number;
  readonly seq: number;
  readonly run: () => void;
}

export class EventQueue {
  private readonly heap = new MinHeap<Scheduled>((a, b) => a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq));
  private seq = 0;

  get size(): number {
    return this.heap.size;
  }

  schedule(atMs: number, run: () => void): void {
    this.heap.push({ atMs, seq: this.seq++, run });
  }

  peekMs(): number | undefined {
    return this.heap.peek()?.atMs;
  }

  pop(): Scheduled | undefined {
    return this.heap.pop();
  }
}
