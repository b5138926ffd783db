import type { JournalRecord } from './journal.js';

/**
 * Records of actors spawned within a recovered journal tail, held back (not yet
 * run through their machines) until it is known whether the life ends within
 * the tail: a life that ends leaves nothing in the recovered state, so its
 * records are dropped unrun; one that does not is run at the end, or as soon as
 * it is given up on. Keyed by actor id: an id has at most one open life.
 *
 * Both limits only trade speed for memory: a life given up on is run through
 * its machine like any other record, which is always correct.
 */
export class PendingLives {
  private readonly lives = new Map<string, JournalRecord[]>();
  private held = 0;

  /**
   * @param maxRecordsPerLife a life with more records than this is given up on
   *   (long-lived actors spawned in the tail, e.g. a node's telemetry stream)
   * @param maxRecords records held in all; beyond it the oldest lives are given up on
   */
  constructor(
    private readonly maxRecordsPerLife: number,
    private readonly maxRecords: number,
  ) {}

  has(actorId: string): boolean {
    return this.lives.has(actorId);
  }

  /** Holds one more record of a life (a spawn opens it); returns the records of lives given up on, to run now, each life in order. */
  hold(record: JournalRecord): JournalRecord[] | undefined {
    let life = this.lives.get(record.actorId);
    if (life === undefined) {
      life = [];
      this.lives.set(record.actorId, life);
    }
    life.push(record);
    this.held++;
    let released: JournalRecord[] | undefined;
    if (life.length > this.maxRecordsPerLife) released = this.release(record.actorId);
    while (this.held > this.maxRecords) {
      const oldest = this.lives.keys().next().value as string;
      released = (released ?? []).concat(this.release(oldest));
    }
    return released;
  }

  /** The life ended within the tail: its records are dropped. Returns how many were held. */
  end(actorId: string): number {
    const life = this.lives.get(actorId);
    if (life === undefined) return 0;
    this.lives.delete(actorId);
    this.held -= life.length;
    return life.length;
  }

  /** Every life still open at the end of the tail, oldest first, each in journal order. */
  drain(): JournalRecord[] {
    const records: JournalRecord[] = [];
    for (const id of [...this.lives.keys()]) for (const record of this.release(id)) records.push(record);
    return records;
  }

  private release(actorId: string): JournalRecord[] {
    const life = this.lives.get(actorId) ?? [];
    this.lives.delete(actorId);
    this.held -= life.length;
    return life;
  }
}
