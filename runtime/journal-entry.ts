import { createHash, hash as oneShotHash } from 'node:crypto';
import type { JournalRecord } from './journal.js';

/**
 * The hash-chained journal entry, shared by every store (LMDB keeps one entry
 * per append; Kafka one per message). An entry is UTF-8 text, so a verifier
 * hashes exactly the bytes stored rather than a re-serialisation:
 *
 *   J1 <first offset> <record count> <head after the last record> <8-hex prefix of each record's head, comma-separated>
 *   <record JSON>            one line per record (JSON.stringify escapes every newline)
 *
 * Every record is chained to the one before it, h(n) = SHA-256(h(n-1) ‖ the
 * record's bytes), starting from a genesis value derived from the shard id (so
 * two shards' journals cannot be swapped). The record bytes are the same in
 * every store, so the same journal has the same heads in LMDB and in Kafka.
 * The per-record prefixes only locate which record of an entry changed; the
 * full head is what proves the chain.
 */
export const ENTRY_FORMAT = 'J1';
export const HEAD_BYTES = 32;
/** Hex characters of each record's head kept in the entry header. */
export const RECORD_PREFIX_HEX = 8;
const NEWLINE = 0x0a;
/** Upper bound of a header line's length besides its prefixes: tag, a 16-digit offset, a count, the head, spaces. */
const HEADER_FIXED_BYTES = 3 + 17 + 11 + 1 + HEAD_BYTES * 2 + 1;

type StoredRecord = [atMs: number, actorId: string, kind: string, event: JournalRecord['event'], state: string];

/** h(-1) of a shard's journal. */
export function genesisHead(shardId: string): Buffer {
  return createHash('sha256').update('arcnet journal genesis\n').update(shardId, 'utf8').digest();
}

/** A record's stored text (one entry line): the same bytes in every store. */
export function encodeRecord(r: JournalRecord): string {
  return JSON.stringify([r.atMs, r.actorId, r.kind, r.event, r.state] satisfies StoredRecord);
}

export function decodeRecord(offset: number, line: string): JournalRecord {
  const [atMs, actorId, kind, event, state] = JSON.parse(line) as StoredRecord;
  return { offset, atMs, actorId, kind, event, state };
}

/**
 * One chain step, h(n) = SHA-256(h(n-1) ‖ record bytes). A scratch buffer makes
 * it a single one-shot hash per record on the append path, and leaves the
 * record's UTF-8 bytes there for the entry (each record is encoded once).
 */
export class ChainHasher {
  private scratch = Buffer.allocUnsafe(16 * 1024);
  private recordLength = 0;

  next(previous: Buffer, record: string | Uint8Array): Buffer {
    const maxBytes = HEAD_BYTES + (typeof record === 'string' ? record.length * 3 : record.length);
    if (maxBytes > this.scratch.length) this.scratch = Buffer.allocUnsafe(Math.max(maxBytes, this.scratch.length * 2));
    previous.copy(this.scratch, 0, 0, HEAD_BYTES);
    if (typeof record === 'string') this.recordLength = this.scratch.write(record, HEAD_BYTES, 'utf8');
    else {
      this.scratch.set(record, HEAD_BYTES);
      this.recordLength = record.length;
    }
    const input = this.scratch.subarray(0, HEAD_BYTES + this.recordLength);
    return typeof oneShotHash === 'function' ? oneShotHash('sha256', input, 'buffer') : createHash('sha256').update(input).digest();
  }

  /** Copies the bytes of the record last hashed into `target` at `at`; returns the end position. */
  copyRecord(target: Buffer, at: number): number {
    return at + this.scratch.copy(target, at, HEAD_BYTES, HEAD_BYTES + this.recordLength);
  }

  /** Length in bytes of the record last hashed (what copyRecord writes). */
  get recordBytes(): number {
    return this.recordLength;
  }
}

export interface EntryHeader {
  readonly first: number;
  readonly count: number;
  /** Hex head after the entry's last record. */
  readonly head: string;
  /** Hex prefix of the head after each record. */
  readonly prefixes: readonly string[];
}

const HEADER_PATTERN = /^J1 (\d+) (\d+) ([0-9a-f]{64}) ([0-9a-f,]*)$/;

/** The header line of an entry, or undefined when it is not in a format this version reads. */
export function parseEntryHeader(line: string): EntryHeader | undefined {
  const match = HEADER_PATTERN.exec(line);
  if (match === null) return undefined;
  const [, first, count, head, prefixes] = match as unknown as [string, string, string, string, string];
  const list = prefixes === '' ? [] : prefixes.split(',');
  if (list.length !== Number(count) || list.some((p) => p.length !== RECORD_PREFIX_HEX)) return undefined;
  return { first: Number(first), count: Number(count), head, prefixes: list };
}

/** The header of an entry given as bytes (only its first line is decoded). */
export function peekEntryHeader(bytes: Uint8Array): EntryHeader | undefined {
  const end = bytes.indexOf(NEWLINE);
  return parseEntryHeader(utf8(end === -1 ? bytes : bytes.subarray(0, end)));
}

/** An entry split into its header and the byte ranges of its record lines. */
export interface DecodedEntry {
  readonly header: EntryHeader;
  readonly records: readonly Uint8Array[];
}

/** Decodes an entry's bytes; undefined when its header is unreadable or its line count disagrees with it. */
export function decodeEntry(bytes: Uint8Array): DecodedEntry | undefined {
  const lines = splitLines(bytes);
  const header = parseEntryHeader(utf8(lines[0] as Uint8Array));
  if (header === undefined || header.count !== lines.length - 1) return undefined;
  return { header, records: lines.slice(1) };
}

/** Text of a byte range, without copying it. */
export function utf8(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8');
}

/** The byte ranges of an entry's lines (the first is the header); 0x0A never occurs inside a UTF-8 sequence. */
export function splitLines(bytes: Uint8Array): Uint8Array[] {
  const lines: Uint8Array[] = [];
  let start = 0;
  for (let i = bytes.indexOf(NEWLINE); i !== -1; i = bytes.indexOf(NEWLINE, start)) {
    lines.push(bytes.subarray(start, i));
    start = i + 1;
  }
  lines.push(bytes.subarray(start));
  return lines;
}

/** Where an entry's chain breaks, or the head after it. */
export type ChainStep = { readonly ok: true; readonly head: Buffer } | { readonly ok: false; readonly badOffset: number; readonly head: Buffer; readonly reason: 'record' | 'head' };

/**
 * Re-hashes an entry's records from `from` on (default: its first), given the
 * chain head after record from-1, and checks them against the prefixes and the
 * head stored with the entry. Records before `from` are not looked at (a
 * reader that starts from a snapshot's anchor in the middle of an entry).
 * On a record that does not hash to its prefix, `head` is the head before it.
 */
export function chainThrough(hasher: ChainHasher, entry: DecodedEntry, headBefore: Buffer, from = entry.header.first): ChainStep {
  const { header, records } = entry;
  let head = headBefore;
  for (let i = Math.max(0, from - header.first); i < header.count; i++) {
    const next = hasher.next(head, records[i] as Uint8Array);
    if (next.toString('hex', 0, RECORD_PREFIX_HEX / 2) !== header.prefixes[i]) return { ok: false, badOffset: header.first + i, head, reason: 'record' };
    head = next;
  }
  if (head.toString('hex') !== header.head) return { ok: false, badOffset: header.first, head, reason: 'head' };
  return { ok: true, head };
}

/** An encoded entry: its bytes as stored, and the chain head after its last record. */
export interface EncodedEntry {
  readonly first: number;
  readonly count: number;
  readonly bytes: Buffer;
  readonly head: Buffer;
}

/**
 * Encodes appends as chained entries. Buffers are reused between appends: the
 * record lines are assembled in one, then copied out once per entry.
 */
export class EntryEncoder {
  private readonly hasher = new ChainHasher();
  private body = Buffer.allocUnsafe(64 * 1024);

  /**
   * Records (whose offsets continue from the first one's) as entries chained
   * from `head`, each at most `maxEntryBytes` long (one entry when unlimited).
   * Throws when a single record would not fit an entry.
   */
  encode(records: readonly JournalRecord[], head: Buffer, maxEntryBytes = Number.POSITIVE_INFINITY): EncodedEntry[] {
    const entries: EncodedEntry[] = [];
    const first = records[0];
    if (first === undefined) return entries;
    let entryFirst = first.offset;
    let prefixes: string[] = [];
    let end = 0;
    const close = (): void => {
      const header = Buffer.from(`${ENTRY_FORMAT} ${entryFirst} ${prefixes.length} ${head.toString('hex')} ${prefixes.join(',')}`, 'utf8');
      entries.push({ first: entryFirst, count: prefixes.length, bytes: Buffer.concat([header, this.body.subarray(0, end)]), head });
      entryFirst += prefixes.length;
      prefixes = [];
      end = 0;
    };
    for (let i = 0; i < records.length; i++) {
      const r = records[i] as JournalRecord;
      if (r.offset !== first.offset + i) throw new Error(`append is not contiguous: record ${i} has offset ${r.offset}, expected ${first.offset + i}`);
      const next = this.hasher.next(head, encodeRecord(r));
      const lineBytes = 1 + this.hasher.recordBytes;
      if (HEADER_FIXED_BYTES + (RECORD_PREFIX_HEX + 1) + lineBytes > maxEntryBytes) {
        throw new RangeError(`journal record at offset ${r.offset} is ${this.hasher.recordBytes} bytes, more than a journal message may hold (${maxEntryBytes})`);
      }
      // `head` is still the one before this record: the entry closed here ends with it.
      if (prefixes.length > 0 && HEADER_FIXED_BYTES + (prefixes.length + 1) * (RECORD_PREFIX_HEX + 1) + end + lineBytes > maxEntryBytes) close();
      head = next;
      prefixes.push(next.toString('hex', 0, RECORD_PREFIX_HEX / 2));
      if (end + lineBytes > this.body.length) {
        const grown = Buffer.allocUnsafe(Math.max(this.body.length * 2, end + lineBytes));
        this.body.copy(grown, 0, 0, end);
        this.body = grown;
      }
      this.body[end++] = NEWLINE;
      end = this.hasher.copyRecord(this.body, end);
    }
    close();
    return entries;
  }
}
