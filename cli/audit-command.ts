import type { ConnectionOptions } from 'node:tls';
import { parseArgs } from 'node:util';
import { verifyKafkaJournal } from '../adapters/kafka/journal-audit.js';
import { loadDataKey } from '../adapters/lmdb/data-key.js';
import { verifyJournal, type JournalVerification } from '../adapters/lmdb/journal-chain.js';
import { kafkaTlsOptions } from '../adapters/security/tls-options.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';

/** Exit status of `arcnet audit verify` when a journal fails its integrity check. */
export const TAMPERED_EXIT_CODE = 4;

const usage = `arcnet audit verify --journal DIR [--data-key-file FILE] [--json]
arcnet audit verify --kafka BROKERS --geozone G[,G...] [--kafka-tls-ca F [--kafka-tls-cert F --kafka-tls-key F]] [--json]
    Recompute every shard journal's hash chain (in DIR, or the Kafka journal topics of the
    geozones) and check it against the heads stored with its entries and snapshots. Exit 0 when
    intact, ${TAMPERED_EXIT_CODE} when a record was altered, removed or reordered (the first bad offset is
    printed). An encrypted store needs its key: --data-key-file FILE or ARCNET_DATA_KEY (hex).
    Reading Kafka is read-only: it fences no owner and can run beside a live region.
`;

interface VerifyArgs {
  journal?: string;
  'data-key-file'?: string;
  kafka?: string;
  geozone?: string;
  'kafka-tls-ca'?: string;
  'kafka-tls-cert'?: string;
  'kafka-tls-key'?: string;
  json?: boolean;
}

/** `arcnet audit <subcommand> ...` (only `verify` for now). */
export async function runAuditCommand(args: string[]): Promise<void> {
  const [subcommand, ...rest] = args;
  if (subcommand !== 'verify') {
    throw new ArcError(ErrorCodes.USAGE, `${subcommand === undefined ? 'missing audit subcommand' : `unknown audit subcommand '${subcommand}'`}\n\n${usage}`);
  }
  const values = parseVerifyArgs(rest);
  const result = values.kafka === undefined ? await verifyDirectory(values) : await verifyKafka(values);
  process.stdout.write(values.json === true ? `${JSON.stringify(result)}\n` : describe(result));
  const bad = result.shards.find((s) => s.problem !== undefined);
  if (bad !== undefined) {
    process.stderr.write(`arcnet: ${ErrorCodes.JOURNAL_TAMPERED}: shard ${bad.shardId}: ${bad.problem} at offset ${bad.firstBadOffset}: ${bad.detail}\n`);
    process.exitCode = TAMPERED_EXIT_CODE;
  }
}

async function verifyDirectory(values: VerifyArgs): Promise<JournalVerification> {
  const dir = values.journal;
  if (dir === undefined || dir === '') throw new ArcError(ErrorCodes.USAGE, `missing --journal (or --kafka)\n\n${usage}`);
  for (const flag of ['geozone', 'kafka-tls-ca', 'kafka-tls-cert', 'kafka-tls-key'] as const) {
    if (values[flag] !== undefined) throw new ArcError(ErrorCodes.USAGE, `--${flag} goes with --kafka\n\n${usage}`);
  }
  const encryptionKey = loadDataKey({ ...(values['data-key-file'] === undefined ? {} : { file: values['data-key-file'] }), env: process.env });
  return verifyJournal(dir, encryptionKey === undefined ? {} : { encryptionKey });
}

async function verifyKafka(values: VerifyArgs): Promise<JournalVerification> {
  if (values.journal !== undefined || values['data-key-file'] !== undefined) {
    throw new ArcError(ErrorCodes.USAGE, `give --journal DIR or --kafka BROKERS, not both (--data-key-file is for a journal folder)\n\n${usage}`);
  }
  const brokers = (values.kafka ?? '').split(',').map((b) => b.trim()).filter((b) => b !== '');
  if (brokers.length === 0) throw new ArcError(ErrorCodes.USAGE, `--kafka needs at least one broker (host:port)\n\n${usage}`);
  const geozones = (values.geozone ?? '').split(',').map((g) => g.trim().toUpperCase()).filter((g) => g !== '');
  if (geozones.length === 0) throw new ArcError(ErrorCodes.USAGE, `missing --geozone: name the geozone(s) whose Kafka journal to verify\n\n${usage}`);
  for (const g of geozones) if (!/^[A-Z0-9_-]{1,32}$/.test(g)) throw new ArcError(ErrorCodes.USAGE, `bad geozone '${g}': use letters, digits, _ or -`);
  return verifyKafkaJournal({ brokers, ssl: kafkaTls(values), shardIds: geozones });
}

/** TLS 1.3 to Kafka (with a client certificate when --kafka-tls-cert/--kafka-tls-key are given), or plaintext: as `arcnet region --kafka`. */
function kafkaTls(values: VerifyArgs): ConnectionOptions | undefined {
  const ca = values['kafka-tls-ca'];
  if (ca === undefined) {
    if (values['kafka-tls-cert'] !== undefined || values['kafka-tls-key'] !== undefined) throw new ArcError(ErrorCodes.USAGE, '--kafka-tls-cert and --kafka-tls-key need --kafka-tls-ca');
    return undefined;
  }
  return kafkaTlsOptions({ caFile: ca, certFile: values['kafka-tls-cert'], keyFile: values['kafka-tls-key'] });
}

function parseVerifyArgs(args: string[]): VerifyArgs {
  try {
    return parseArgs({
      args,
      strict: true,
      options: {
        journal: { type: 'string' },
        'data-key-file': { type: 'string' },
        kafka: { type: 'string' },
        geozone: { type: 'string' },
        'kafka-tls-ca': { type: 'string' },
        'kafka-tls-cert': { type: 'string' },
        'kafka-tls-key': { type: 'string' },
        json: { type: 'boolean' },
      },
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
