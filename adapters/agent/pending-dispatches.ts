/**
 * Dispatches sent (or waiting to be sent) to node agents and not yet
 * acknowledged, per node: what makes delivery at-least-once. An entry leaves
 * when the node acknowledges it (an `ack`, or its result for that request),
 * when its reservation's expiry has passed (the reservation is over, so the
 * command is moot), or when a limit pushes it out.
 *
 * Limits, and why dropping the oldest rather than refusing: a dispatch reaches
 * this store after the region made it durable, so there is nobody upstream to
 * refuse to; and the oldest entry is the one closest to its expiry, with the
 * least use left to the node.
 * - `maxPerNode`: a node holds at most reservationsPerGpu (2) × its GPUs
 *   reservations at once, and each entry leaves at the latest when its
 *   reservation expires (30 s), so a node that acknowledges never comes near
 *   the default; one that does not (gone, or a broken agent) stops growing.
 * - `maxNodes`: nodes with anything pending. Past it, the node whose pending
 *   set was added to least recently loses all of it (a node that has received
 *   nothing for longest is the likeliest to be gone).
 * Memory at the defaults is at most 64 × 10,000 entries of about 400 bytes.
 */

export interface PendingDispatch {
  readonly requestId: string;
  /** The geozone whose shard released it (a connection must be scoped to it to receive it). */
  readonly geozone: string;
  readonly expiresAtMs: number;
  /** The frame sent to the agent, serialized once. */
  readonly frame: Buffer;
  /** How many times it was handed to an agent's socket. */
  sends: number;
}

export interface PendingLimits {
  readonly maxPerNode: number;
  readonly maxNodes: number;
}

export const DEFAULT_MAX_PENDING_PER_NODE = 64;
export const DEFAULT_MAX_NODES_WITH_PENDING = 10_000;

export class PendingDispatches {
  /** Node → its entries by request id, oldest first; nodes least recently added to first (Map order). */
  private readonly byNode = new Map<string, Map<string, PendingDispatch>>();
  private count = 0;
  /** Entries removed because their reservation's expiry passed before an acknowledgement. */
  expired = 0;
  /** Entries pushed out by maxPerNode or maxNodes. */
  dropped = 0;

  constructor(private readonly limits: PendingLimits) {
    if (!(limits.maxPerNode >= 1 && limits.maxNodes >= 1)) throw new RangeError('pending dispatch limits must be at least 1');
  }

  get size(): number {
    return this.count;
  }

  get nodes(): number {
    return this.byNode.size;
  }

  /**
   * Keeps a dispatch until it is acknowledged or expires. Returns the entry to
   * send, or undefined when there is nothing to send: already expired, or
   * already pending (a dispatch offered twice, as a redelivering bus may).
   */
  add(nodeId: string, entry: Omit<PendingDispatch, 'sends'>, nowMs: number): PendingDispatch | undefined {
    if (entry.expiresAtMs <= nowMs) {
      this.expired++;
      return undefined;
    }
    let entries = this.byNode.get(nodeId);
    if (entries?.has(entry.requestId) === true) return undefined;
    if (entries === undefined) {
      entries = new Map();
      if (this.byNode.size >= this.limits.maxNodes) this.dropLeastRecentNode();
    } else {
      // Most recently added to goes last.
      this.byNode.delete(nodeId);
    }
    this.byNode.set(nodeId, entries);
    if (entries.size >= this.limits.maxPerNode) {
      const oldest = entries.keys().next();
      if (oldest.done !== true) {
        entries.delete(oldest.value);
        this.count--;
        this.dropped++;
      }
    }
    const pending: PendingDispatch = { ...entry, sends: 0 };
    entries.set(entry.requestId, pending);
    this.count++;
    return pending;
  }

  /** Removes an acknowledged dispatch; false when it was not pending (acknowledged before, expired, or never sent). */
  ack(nodeId: string, requestId: string): boolean {
    const entries = this.byNode.get(nodeId);
    if (entries?.delete(requestId) !== true) return false;
    this.count--;
    if (entries.size === 0) this.byNode.delete(nodeId);
    return true;
  }

  /** The node's unexpired entries, oldest first (expired ones are removed). */
  live(nodeId: string, nowMs: number): PendingDispatch[] {
    const entries = this.byNode.get(nodeId);
    if (entries === undefined) return [];
    const live: PendingDispatch[] = [];
    for (const [requestId, entry] of entries) {
      if (entry.expiresAtMs > nowMs) {
        live.push(entry);
        continue;
      }
      entries.delete(requestId);
      this.count--;
      this.expired++;
    }
    if (entries.size === 0) this.byNode.delete(nodeId);
    return live;
  }

  /**
   * Removes expired entries. Each node's entries are checked from the oldest
   * and only until the first live one: one shard releases a node's dispatches
   * with the same reservation TTL, so they expire in the order they came.
   * (An entry out of that order is removed by `live` when its node connects.)
   */
  sweep(nowMs: number): void {
    for (const [nodeId, entries] of this.byNode) {
      for (const [requestId, entry] of entries) {
        if (entry.expiresAtMs > nowMs) break;
        entries.delete(requestId);
        this.count--;
        this.expired++;
      }
      if (entries.size === 0) this.byNode.delete(nodeId);
    }
  }

  private dropLeastRecentNode(): void {
    const least = this.byNode.entries().next();
    if (least.done === true) return;
    const [nodeId, entries] = least.value;
    this.byNode.delete(nodeId);
    this.count -= entries.size;
    this.dropped += entries.size;
  }
}
