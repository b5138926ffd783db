import { parseArgs } from 'node:util';
import { loadDataKey } from '../adapters/lmdb/data-key.js';
import { verifyJournal, type JournalVerification } from '../adapters/lmdb/journal-chain.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';

/** Exit status of `arcnet audit verify` when a journal fails its integrity check. */
export const TAMPERED_EXIT_CODE = 4;

const usage = `arcnet audit verify --journal DIR [--data-key-file FILE] [--json]
    Recompute every shard journal's hash chain in DIR and check it against the heads stored
    with its entries and snapshots. Exit 0 when intact, ${TAMPERED_EXIT_CODE} when a record was altered,
    removed or reordered (the first bad offset is printed). An encrypted store needs its key:
    --data-key-file FILE or ARCNET_DATA_KEY (hex).
`;

/** `arcnet audit <subcommand> ...` (only `verify` for now). */
export async function runAuditCommand(args: string[]): Promise<void> {
  const [subcommand, ...rest] = args;
  if (subcommand !== 'verify') {
    throw new ArcError(ErrorCodes.USAGE, `${subcommand === undefined ? 'missing audit subcommand' : `unknown audit subcommand '${subcommand}'`}\n\n${usage}`);
  }
  const values = parseVerifyArgs(rest);
  const dir = values.journal;
  if (dir === undefined || dir === '') throw new ArcError(ErrorCodes.USAGE, `missing --journal\n\n${usage}`);
  const encryptionKey = loadDataKey({ ...(values['data-key-file'] === undefined ? {} : { file: values['data-key-file'] }), env: process.env });
  const result = await verifyJournal(dir, encryptionKey === undefined ? {} : { encryptionKey });
  process.stdout.write(values.json === true ? `${JSON.stringify(result)}\n` : describe(result));
  const bad = result.shards.find((s) => s.problem !== undefined);
  if (bad !== undefined) {
    process.stderr.write(`arcnet: ${ErrorCodes.JOURNAL_TAMPERED}: shard ${bad.shardId}: ${bad.problem} at offset ${bad.firstBadOffset}: ${bad.detail}\n`);
    process.exitCode = TAMPERED_EXIT_CODE;
  }
}

function parseVerifyArgs(args: string[]): { journal?: string; 'data-key-file'?: string; json?: boolean } {
  try {
    return parseArgs({
      args,
      strict: true,
      options: { journal: { type: 'string' }, 'data-key-file': { type: 'string' }, json: { type: 'boolean' } },
    }).values;
  } catch (error) {
    throw new ArcError(ErrorCodes.USAGE, `${error instanceof Error ? error.message : String(error)}\n\n${usage}`);
  }
}

function describe(result: JournalVerification): string {
  const lines = result.shards.map((s) => {
    const status = s.problem === undefined ? 'intact' : `${s.problem.toUpperCase()} at offset ${s.firstBadOffset}`;
    return `${s.shardId.padEnd(12)} ${status.padEnd(24)} records ${String(s.records).padStart(8)}  head ${s.head}\n${''.padEnd(13)}${s.detail}\n`;
  });
  const verdict = result.shards.length === 0 ? 'no shard journals in this store\n' : result.ok ? 'journal intact\n' : 'journal TAMPERED\n';
  return `${lines.join('')}${verdict}`;
}
