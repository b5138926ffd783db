import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import { replayJournal } from '../../simulations/replay.js';
import { tempDir } from '../helpers/fixtures.js';

const cli = fileURLToPath(new URL('../../cli/arcnet.js', import.meta.url));

function startRegion(dataDir: string, effectsLog: string, seed: number): { child: ChildProcess; stdout: Promise<string> } {
  const child = spawn(
    process.execPath,
    [cli, 'region', '--data', dataDir, '--geozones', 'CAISO,ERCOT', '--sim-nodes', '200', '--rate', '400', '--seed', String(seed), '--status-every', '1s', '--effects-log', effectsLog, '--port', '0'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'warn' } },
  );
  let out = '';
  child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr?.resume();
  const stdout = new Promise<string>((resolve) => child.on('exit', () => resolve(out)));
  return { child, stdout };
}

function acknowledged(effectsLog: string): { requestId: string; nodeId: string }[] {
  if (!existsSync(effectsLog)) return [];
  const acks: { requestId: string; nodeId: string }[] = [];
  for (const line of readFileSync(effectsLog, 'utf8').split('\n')) {
    if (line === '') continue;
    let effect: { type?: string; requestId?: string; nodeId?: string };
    try {
      effect = JSON.parse(line) as typeof effect;
    } catch {
      continue; // a line cut by the kill was never a complete acknowledgement
    }
    if (effect.type === 'dispatch' && effect.requestId !== undefined && effect.nodeId !== undefined) acks.push({ requestId: effect.requestId, nodeId: effect.nodeId });
  }
  return acks;
}

async function waitFor(predicate: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await sleep(100);
  }
}

test('kill -9 of a live region mid-stream loses nothing acknowledged, and the restarted state agrees with replay', async (t) => {
  const { dir, cleanup } = tempDir();
  const dataDir = `${dir}/data`;
  const effectsLog = `${dir}/effects.jsonl`;
  try {
    // First life: traffic flowing, then killed without warning.
    const first = startRegion(dataDir, effectsLog, 1);
    await waitFor(() => acknowledged(effectsLog).length > 1_500, 60_000);
    first.child.kill('SIGKILL');
    await first.stdout;
    const acksBeforeCrash = acknowledged(effectsLog);
    t.true(acksBeforeCrash.length > 1_500);

    // Every dispatch anyone was told about is in the journal, with the same node.
    const store = new LmdbStore(dataDir);
    const reserved = new Map<string, Set<string>>();
    for (const shard of store.shardIds()) {
      for (const record of store.journal(shard).read(0)) {
        if (record.event.type !== 'route.reserved') continue;
        const requestId = record.actorId.slice('reservation/'.length);
        const nodes = reserved.get(requestId) ?? new Set<string>();
        nodes.add(String(record.event['nodeId']));
        reserved.set(requestId, nodes);
      }
    }
    await store.close();
    const lost = acksBeforeCrash.filter((ack) => reserved.get(ack.requestId)?.has(ack.nodeId) !== true);
    t.deepEqual(lost, [], 'acknowledged dispatches missing from the journal');

    // Second life on the same folder: recovers, keeps going, stops cleanly.
    const second = startRegion(dataDir, effectsLog, 2);
    await waitFor(() => acknowledged(effectsLog).length > acksBeforeCrash.length + 500, 60_000);
    second.child.kill('SIGTERM');
    const out = await second.stdout;
    const line = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { stateHash?: string; recoveredRecords?: number };
    t.true((line.recoveredRecords ?? 0) > 0, 'the second life recovered the first one\'s journal');
    t.regex(line.stateHash ?? '', /^[0-9a-f]{64}$/);

    const replayed = await replayJournal(dataDir);
    t.is(replayed.stateHash, line.stateHash ?? 'missing', 'replay of the folder agrees with the live state hash');
    t.is(replayed.invariantViolations, 0, JSON.stringify(replayed.violationsByRule));
  } finally {
    cleanup();
  }
});
