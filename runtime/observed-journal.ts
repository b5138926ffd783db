import type { Journal, JournalRecord, JournalStore } from './journal.js';

/**
 * Something that watches a store's appends (metrics timing them, traces, a
 * feed of durable records). Called as an append starts; the function it
 * returns, if any, is told how the append ended: no argument once it is
 * durable, the error when it failed. Neither may throw: an observer's trouble
 * must never look like a journal failure to the shard.
 */
export type AppendObserver = (shardId: string, records: readonly JournalRecord[]) => ((error?: unknown) => void) | undefined;

/** The store with every journal's appends observed; everything else passes through. */
export function observeAppends<S extends JournalStore>(store: S, observer: AppendObserver): S {
  return new Proxy(store, {
    get(target, property, receiver): unknown {
      if (property !== 'journal') return Reflect.get(target, property, receiver);
      return (shardId: string): Journal => {
        const journal = target.journal(shardId);
        return {
          nextOffset: () => journal.nextOffset(),
          read: (from?: number) => journal.read(from),
          append: (records: readonly JournalRecord[]) => {
            const ended = observer(shardId, records);
            if (ended === undefined) return journal.append(records);
            return journal.append(records).then(
              () => ended(),
              (error: unknown) => {
                ended(error);
                throw error;
              },
            );
          },
        };
      };
    },
  });
}
