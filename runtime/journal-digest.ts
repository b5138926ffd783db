import { CanonicalHasher } from './canonical.js';
import type { JournalStore } from './journal.js';

/**
 * SHA-256 over every record of every shard (shards in id order, records in
 * offset order), canonically encoded: two runs wrote the same journal exactly
 * when their digests are equal.
 */
export function journalDigest(store: JournalStore): { digest: string; records: number } {
  const hasher = new CanonicalHasher();
  let records = 0;
  for (const shardId of store.shardIds()) {
    hasher.add({ shard: shardId });
    for (const record of store.journal(shardId).read(0)) {
      hasher.add(record);
      records++;
    }
  }
  return { digest: hasher.hex(), records };
}
