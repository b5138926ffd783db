import test from 'ava';
import { open } from 'lmdb';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDataKey, DATA_KEY_ENV } from '../../adapters/lmdb/data-key.js';
import { randomUUID } from 'node:crypto';
import { KafkaStore, journalTopic } from '../../adapters/kafka/kafka-store.js';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import { EntryEncoder, genesisHead, type EncodedEntry } from '../../runtime/journal-entry.js';
import { makeRecords } from '../contract/journal-contract.js';
import { tempDir } from '../helpers/fixtures.js';
import { brokers, deleteTopicsWithPrefix, kafkaTest, testKafka } from '../helpers/kafka-broker.js';

const cli = fileURLToPath(new URL('../../cli/arcnet.js', import.meta.url));

function arcnet(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const inherited = { ...process.env };
  delete inherited[DATA_KEY_ENV];
  const run = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000, env: { ...inherited, ...env } });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

interface Verification {
  ok: boolean;
  shards: { shardId: string; records: number; head: string; problem?: string; firstBadOffset?: number }[];
}

test('arcnet audit verify: a journal made by arcnet sim is intact (exit 0); one altered record makes it exit 4 naming the offset', async (t) => {
  const { dir, cleanup } = tempDir('arcnet-audit-');
  try {
    const journal = join(dir, 'j');
    const sim = arcnet(['sim', '--seed', '5', '--nodes', '40', '--geozones', 'CAISO,ERCOT', '--duration', '1m', '--rate', '20', '--journal', journal, '--json', '--progress', 'off']);
    t.is(sim.status, 0, sim.stderr);
    const events = (JSON.parse(sim.stdout) as { events: number }).events;

    const intact = arcnet(['audit', 'verify', '--journal', journal, '--json']);
    t.is(intact.status, 0, intact.stderr);
    const result = JSON.parse(intact.stdout) as Verification;
    t.true(result.ok);
    // arcnet sim runs the central orchestrator too (--training on, the default): its shard is audited with the regions'.
    t.deepEqual(result.shards.map((s) => s.shardId), ['CAISO', 'CENTRAL', 'ERCOT']);
    t.is(result.shards.reduce((sum, s) => sum + s.records, 0), events, 'every journaled event was verified');
    for (const shard of result.shards) t.regex(shard.head, /^[0-9a-f]{64}$/);
    const text = arcnet(['audit', 'verify', '--journal', journal]);
    t.is(text.status, 0);
    t.regex(text.stdout, /CAISO\s+intact/);
    t.regex(text.stdout, /journal intact/);

    // Change one byte of the first record of CAISO's third entry, straight in the LMDB file.
    const root = open({ path: join(journal, LmdbStore.fileName), maxDbs: 256, pageSize: 8192 });
    const db = root.openDB<Buffer, number>({ name: 'journal:CAISO', encoding: 'binary' });
    const keys = [...db.getKeys({ start: 0 })];
    const target = keys[2] as number;
    const lines = Buffer.from(db.get(target) as Buffer).toString('utf8').split('\n');
    lines[1] = (lines[1] as string).replace(/^\[(\d)/, (_, digit: string) => `[${(Number(digit) + 1) % 10}`);
    db.putSync(target, Buffer.from(lines.join('\n'), 'utf8'));
    await root.close();

    const tampered = arcnet(['audit', 'verify', '--journal', journal, '--json']);
    t.is(tampered.status, 4, tampered.stderr);
    const bad = (JSON.parse(tampered.stdout) as Verification).shards.find((s) => s.shardId === 'CAISO');
    t.is(bad?.problem, 'altered');
    t.is(bad?.firstBadOffset, target);
    t.regex(tampered.stderr, new RegExp(`ARC_ERR_JOURNAL_TAMPERED: shard CAISO: altered at offset ${target}\\b`));
    const tamperedText = arcnet(['audit', 'verify', '--journal', journal]);
    t.is(tamperedText.status, 4);
    t.regex(tamperedText.stdout, new RegExp(`CAISO\\s+ALTERED at offset ${target}`));
    t.regex(tamperedText.stdout, /ERCOT\s+intact/);
  } finally {
    cleanup();
  }
});

test('arcnet audit verify opens an encrypted store with --data-key-file or ARCNET_DATA_KEY, and without a key fails with ARC_ERR_DATA_KEY', async (t) => {
  const { dir, cleanup } = tempDir('arcnet-audit-');
  try {
    const key = createDataKey();
    const data = join(dir, 'data');
    const store = new LmdbStore(data, { encryptionKey: key });
    const journal = store.journal('CAISO');
    for (const size of [4, 2, 5]) await journal.append(makeRecords(journal.nextOffset(), size));
    await store.close();
    const keyFile = join(dir, 'data.key');
    writeFileSync(keyFile, key.toString('hex'), { mode: 0o600 });

    const withFile = arcnet(['audit', 'verify', '--journal', data, '--data-key-file', keyFile, '--json']);
    t.is(withFile.status, 0, withFile.stderr);
    t.is((JSON.parse(withFile.stdout) as Verification).shards[0]?.records, 11);
    const withEnv = arcnet(['audit', 'verify', '--journal', data], { [DATA_KEY_ENV]: key.toString('hex') });
    t.is(withEnv.status, 0, withEnv.stderr);

    const without = arcnet(['audit', 'verify', '--journal', data]);
    t.is(without.status, 1);
    t.regex(without.stderr, /ARC_ERR_DATA_KEY: .*is encrypted/);
    const wrong = arcnet(['audit', 'verify', '--journal', data], { [DATA_KEY_ENV]: createDataKey().toString('hex') });
    t.is(wrong.status, 1);
    t.regex(wrong.stderr, /ARC_ERR_DATA_KEY: .*cannot be read with this data key/);
  } finally {
    cleanup();
  }
});

test('arcnet audit: usage errors exit 2; a missing journal is ARC_ERR_NO_JOURNAL', (t) => {
  const none = arcnet(['audit']);
  t.is(none.status, 2);
  t.regex(none.stderr, /ARC_ERR_USAGE: missing audit subcommand/);
  const noJournal = arcnet(['audit', 'verify']);
  t.is(noJournal.status, 2);
  t.regex(noJournal.stderr, /ARC_ERR_USAGE: missing --journal/);
  const unknownFlag = arcnet(['audit', 'verify', '--journal', '/tmp/x', '--fix']);
  t.is(unknownFlag.status, 2);
  const { dir, cleanup } = tempDir('arcnet-audit-');
  try {
    const missing = arcnet(['audit', 'verify', '--journal', join(dir, 'nothing-here')]);
    t.is(missing.status, 1);
    t.regex(missing.stderr, /ARC_ERR_NO_JOURNAL/);
  } finally {
    cleanup();
  }
});

kafkaTest('arcnet audit verify --kafka: a Kafka journal is intact (exit 0); a forged message makes it exit 4 naming the offset, in the same report as a folder', async (t) => {
  t.timeout(300_000);
  const geozone = `AUDIT-${randomUUID().slice(0, 8).toUpperCase()}`;
  const producer = testKafka(`audit-forger-${geozone}`).producer({ idempotent: true, maxInFlightRequests: 1 });
  try {
    const store = await KafkaStore.open({ brokers, shardIds: [geozone], clientId: `audit-${geozone}` });
    const journal = store.journal(geozone);
    for (const size of [4, 2, 5]) await journal.append(makeRecords(journal.nextOffset(), size));
    const head = journal.head();
    await store.close();

    const kafka = ['--kafka', brokers.join(','), '--geozone', geozone.toLowerCase()];
    const intact = arcnet(['audit', 'verify', ...kafka, '--json']);
    t.is(intact.status, 0, intact.stderr);
    const result = JSON.parse(intact.stdout) as Verification;
    t.true(result.ok);
    t.deepEqual(result.shards.map((s) => [s.shardId, s.records, s.head]), [[geozone, 11, head]]);
    const text = arcnet(['audit', 'verify', ...kafka]);
    t.is(text.status, 0, text.stderr);
    t.regex(text.stdout, new RegExp(`${geozone}\\s+intact`));
    t.regex(text.stdout, /journal intact/);

    // Records 11..12 produced at the topic by someone else, chained from the wrong place.
    const [forged] = new EntryEncoder().encode(makeRecords(11, 2, 'node/forged'), genesisHead(geozone));
    await producer.connect();
    await producer.send({ topic: journalTopic('', geozone), acks: -1, messages: [{ key: geozone, value: (forged as EncodedEntry).bytes, partition: 0 }] });

    const tampered = arcnet(['audit', 'verify', ...kafka, '--json']);
    t.is(tampered.status, 4, tampered.stderr);
    const bad = (JSON.parse(tampered.stdout) as Verification).shards[0];
    t.is(bad?.problem, 'altered');
    t.is(bad?.firstBadOffset, 11);
    t.is(bad?.records, 11);
    t.regex(tampered.stderr, new RegExp(`ARC_ERR_JOURNAL_TAMPERED: shard ${geozone}: altered at offset 11\\b`));
    const tamperedText = arcnet(['audit', 'verify', ...kafka]);
    t.is(tamperedText.status, 4);
    t.regex(tamperedText.stdout, new RegExp(`${geozone}\\s+ALTERED at offset 11`));
    t.regex(tamperedText.stdout, /journal TAMPERED/);

    const missing = arcnet(['audit', 'verify', '--kafka', brokers.join(','), '--geozone', `${geozone}-NONE`]);
    t.is(missing.status, 1);
    t.regex(missing.stderr, /ARC_ERR_NO_JOURNAL: no Kafka journal for/);
  } finally {
    await producer.disconnect().catch(() => undefined);
    await deleteTopicsWithPrefix(journalTopic('', geozone));
  }
});

test('arcnet audit verify --kafka: usage errors exit 2 and unreadable TLS files are ARC_ERR_TLS_CONFIG', (t) => {
  const noGeozone = arcnet(['audit', 'verify', '--kafka', '127.0.0.1:1']);
  t.is(noGeozone.status, 2);
  t.regex(noGeozone.stderr, /ARC_ERR_USAGE: missing --geozone/);
  const both = arcnet(['audit', 'verify', '--kafka', '127.0.0.1:1', '--geozone', 'CAISO', '--journal', '/tmp/x']);
  t.is(both.status, 2);
  t.regex(both.stderr, /--journal DIR or --kafka BROKERS, not both/);
  const geozoneWithFolder = arcnet(['audit', 'verify', '--journal', '/tmp/x', '--geozone', 'CAISO']);
  t.is(geozoneWithFolder.status, 2);
  t.regex(geozoneWithFolder.stderr, /--geozone goes with --kafka/);
  const certWithoutCa = arcnet(['audit', 'verify', '--kafka', '127.0.0.1:1', '--geozone', 'CAISO', '--kafka-tls-cert', '/tmp/c.pem']);
  t.is(certWithoutCa.status, 2);
  t.regex(certWithoutCa.stderr, /--kafka-tls-cert and --kafka-tls-key need --kafka-tls-ca/);
  const { dir, cleanup } = tempDir('arcnet-audit-');
  try {
    const unreadable = arcnet(['audit', 'verify', '--kafka', '127.0.0.1:1', '--geozone', 'CAISO', '--kafka-tls-ca', join(dir, 'no-such-ca.pem')]);
    t.is(unreadable.status, 1);
    t.regex(unreadable.stderr, /ARC_ERR_TLS_CONFIG: .*--kafka-tls-ca/);
  } finally {
    cleanup();
  }
});
