import type { IHeaders } from 'kafkajs';
import { headerText } from './topic-reader.js';

/**
 * The messages of a journal topic (`arc.journal.{shard}`):
 *
 * - an entry: the value is a J1 entry (runtime/journal-entry.ts), the same
 *   hash-chained text the LMDB store keeps per append: a header line with the
 *   first offset, the record count, the chain head after the last record and a
 *   prefix of each record's head, then one JSON line per record. The chain
 *   travels in the value, not in Kafka headers, so that what is hashed is
 *   exactly the bytes the message holds, that a copy of the value alone (a
 *   console consumer's output, a mirror that drops headers) can still be
 *   verified, and so that both stores share one format and one verifier.
 * - a claim: `CLAIM <writer id>`, committed by a store when it opens the
 *   journal, before it reads it. It carries no record; it tells an older owner
 *   that was fenced that a newer one exists (see kafka-journal.ts).
 *
 * Every message carries the id of the store instance that wrote it in the
 * `arcnet-writer` header. Headers are not covered by the chain: they only tell
 * a writer its own messages from another's.
 */
export const WRITER_HEADER = 'arcnet-writer';
const CLAIM_PREFIX = 'CLAIM ';

export type JournalMessage =
  | { readonly kind: 'entry'; readonly writer: string | undefined; readonly bytes: Buffer }
  | { readonly kind: 'claim'; readonly writer: string | undefined }
  | { readonly kind: 'unknown'; readonly writer: string | undefined; readonly bytes: Buffer };

export function claimValue(writerId: string): string {
  return `${CLAIM_PREFIX}${writerId}`;
}

/** What a journal topic message is (entries are recognised by their format tag; their content is checked by whoever decodes them). */
export function classifyJournalMessage(value: Buffer | null, headers: IHeaders | undefined): JournalMessage {
  const writer = headerText(headers, WRITER_HEADER);
  const bytes = value ?? Buffer.alloc(0);
  if (bytes.subarray(0, 3).toString('latin1') === 'J1 ') return { kind: 'entry', writer, bytes };
  if (bytes.length <= 256 && bytes.toString('utf8').startsWith(CLAIM_PREFIX)) return { kind: 'claim', writer };
  return { kind: 'unknown', writer, bytes };
}
