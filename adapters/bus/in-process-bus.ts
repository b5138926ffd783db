import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import type { Scheduler } from '../../runtime/clock.js';

/**
 * The embedded default's message bus: named topics (the seed's Kafka topic
 * names), in-process. Each subscriber has its own bounded queue, drained on a
 * later turn in publish order, so a publisher never runs subscriber code inside
 * its own call stack. A full queue refuses the message with ARC_ERR_OVERLOADED
 * instead of growing without bound.
 */
export interface BusLimits {
  /** Messages waiting per subscriber before publish is refused. */
  readonly maxQueueDepth: number;
  /** Messages delivered per subscriber per turn (keeps one busy topic from starving the loop). */
  readonly maxBatch: number;
}

export const defaultBusLimits: BusLimits = { maxQueueDepth: 100_000, maxBatch: 4_096 };

type Handler = (message: unknown, topic: string) => void;

interface Subscriber {
  readonly handler: Handler;
  readonly queue: { topic: string; message: unknown }[];
  head: number;
  scheduled: boolean;
  active: boolean;
}

export class InProcessBus {
  private readonly topics = new Map<string, Set<Subscriber>>();
  private readonly prefixes = new Map<string, Set<Subscriber>>();
  private readonly scheduler: Scheduler;
  private readonly limits: BusLimits;
  private published = 0;
  private refused = 0;

  constructor(scheduler: Scheduler, limits: Partial<BusLimits> = {}) {
    this.scheduler = scheduler;
    this.limits = { ...defaultBusLimits, ...limits };
  }

  /** Subscribes to one topic, or to every topic starting with a prefix ending in '*'. Returns an unsubscribe function. */
  subscribe(pattern: string, handler: Handler): () => void {
    const subscriber: Subscriber = { handler, queue: [], head: 0, scheduled: false, active: true };
    const byPrefix = pattern.endsWith('*');
    const map = byPrefix ? this.prefixes : this.topics;
    const key = byPrefix ? pattern.slice(0, -1) : pattern;
    let set = map.get(key);
    if (set === undefined) {
      set = new Set();
      map.set(key, set);
    }
    set.add(subscriber);
    return () => {
      subscriber.active = false;
      set.delete(subscriber);
    };
  }

  /** Queues a message for every subscriber of the topic; throws ARC_ERR_OVERLOADED if one is full (nobody gets it then). */
  publish(topic: string, message: unknown): void {
    const targets = this.subscribersOf(topic);
    for (const subscriber of targets) {
      if (subscriber.queue.length - subscriber.head >= this.limits.maxQueueDepth) {
        this.refused++;
        throw new ArcError(ErrorCodes.OVERLOADED, `bus topic '${topic}' has ${this.limits.maxQueueDepth} messages waiting for a subscriber; retry later`);
      }
    }
    this.published++;
    for (const subscriber of targets) {
      subscriber.queue.push({ topic, message });
      if (!subscriber.scheduled) {
        subscriber.scheduled = true;
        this.scheduler.soon(() => this.drain(subscriber));
      }
    }
  }

  stats(): { published: number; refused: number; waiting: number } {
    let waiting = 0;
    for (const set of [...this.topics.values(), ...this.prefixes.values()]) for (const s of set) waiting += s.queue.length - s.head;
    return { published: this.published, refused: this.refused, waiting };
  }

  private subscribersOf(topic: string): Subscriber[] {
    const found = [...(this.topics.get(topic) ?? [])];
    for (const [prefix, set] of this.prefixes) if (topic.startsWith(prefix)) found.push(...set);
    return found;
  }

  private drain(subscriber: Subscriber): void {
    subscriber.scheduled = false;
    let delivered = 0;
    while (subscriber.active && subscriber.head < subscriber.queue.length && delivered < this.limits.maxBatch) {
      const item = subscriber.queue[subscriber.head++] as { topic: string; message: unknown };
      delivered++;
      subscriber.handler(item.message, item.topic);
    }
    if (subscriber.head === subscriber.queue.length) {
      subscriber.queue.length = 0;
      subscriber.head = 0;
    } else if (subscriber.active) {
      subscriber.scheduled = true;
      this.scheduler.soon(() => this.drain(subscriber));
    }
  }
}
