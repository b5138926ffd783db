import test from 'ava';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiKeyStore, isAuthFailure } from '../../adapters/security/api-keys.js';
import { tempDir } from '../helpers/fixtures.js';

const cli = fileURLToPath(new URL('../../cli/arcnet.js', import.meta.url));

function arcnet(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

test('keys create prints the key once and stores only its hash; list shows no secrets; revoke removes it', (t) => {
  const { dir, cleanup } = tempDir();
  t.teardown(cleanup);
  const file = join(dir, 'keys.json');

  const created = arcnet('keys', 'create', '--role', 'viewer', '--geozones', 'caiso,ERCOT', '--file', file, '--label', 'grafana', '--json');
  t.is(created.status, 0, created.stderr);
  const out = JSON.parse(created.stdout) as { id: string; role: string; geozones: string[]; key: string; label: string };
  t.like(out, { role: 'viewer', geozones: ['CAISO', 'ERCOT'], label: 'grafana' });
  t.regex(out.key, /^arc_[A-Za-z0-9_-]{43}$/);
  t.false(created.stderr.includes(out.key), 'the key goes to stdout only');
  t.false(readFileSync(file, 'utf8').includes(out.key.slice(4)), 'the file holds no plaintext key');
  t.is(statSync(file).mode & 0o777, 0o600);
  t.deepEqual(ApiKeyStore.fromFile(file).authenticate(`Bearer ${out.key}`), { keyId: out.id, role: 'viewer', geozones: ['CAISO', 'ERCOT'] });

  const text = arcnet('keys', 'create', '--role', 'operator', '--geozones', '*', '--file', file);
  t.is(text.status, 0, text.stderr);
  const second = /^key\s+(arc_\S+)$/m.exec(text.stdout)?.[1];
  t.truthy(second);
  t.false(isAuthFailure(ApiKeyStore.fromFile(file).authenticate(`Bearer ${second ?? ''}`)));

  const listed = arcnet('keys', 'list', '--file', file, '--json');
  t.is(listed.status, 0, listed.stderr);
  const keys = (JSON.parse(listed.stdout) as { keys: Record<string, unknown>[] }).keys;
  t.deepEqual(keys.map((k) => [k['role'], k['geozones']]), [['viewer', ['CAISO', 'ERCOT']], ['operator', ['*']]]);
  for (const k of keys) t.deepEqual(Object.keys(k).sort(), (k['label'] === undefined ? ['createdAt', 'geozones', 'id', 'role'] : ['createdAt', 'geozones', 'id', 'label', 'role']));
  t.false(listed.stdout.includes(out.key.slice(4)) || listed.stdout.includes('hash'));
  const plainList = arcnet('keys', 'list', '--file', file);
  t.is(plainList.stdout.trim().split('\n').length, 2);
  t.true(plainList.stdout.includes(out.id));

  const revoked = arcnet('keys', 'revoke', '--id', out.id, '--file', file);
  t.is(revoked.status, 0, revoked.stderr);
  t.like(ApiKeyStore.fromFile(file).authenticate(`Bearer ${out.key}`), { code: 'ARC_ERR_UNAUTHENTICATED' });
  const again = arcnet('keys', 'revoke', '--id', out.id, '--file', file);
  t.is(again.status, 1);
  t.regex(again.stderr, /ARC_ERR_NOT_FOUND/);
});

test('keys usage errors exit 2 with ARC_ERR_USAGE', (t) => {
  const { dir, cleanup } = tempDir();
  t.teardown(cleanup);
  const file = join(dir, 'keys.json');
  for (const args of [
    ['keys', 'create', '--role', 'root', '--geozones', 'CAISO', '--file', file],
    ['keys', 'create', '--role', 'viewer', '--file', file],
    ['keys', 'create', '--role', 'viewer', '--geozones', 'CA ISO', '--file', file],
    ['keys', 'create', '--role', 'viewer', '--geozones', 'CAISO'],
    ['keys', 'create', '--role', 'viewer', '--geozones', 'CAISO', '--file', file, '--bogus'],
    ['keys', 'revoke', '--file', file],
    ['keys', 'rotate'],
  ]) {
    const run = arcnet(...args);
    t.is(run.status, 2, args.join(' '));
    t.regex(run.stderr, /ARC_ERR_USAGE/, args.join(' '));
    t.is(run.stdout, '', 'no key printed on a usage error');
  }
  t.is(arcnet('keys', 'list', '--file', file).status, 2, 'listing a missing file is a usage error');
  t.true(arcnet('--help').stdout.includes('arcnet keys create'));
});
