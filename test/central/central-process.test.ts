import test from 'ava';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import WebSocket from 'ws';
import { hpcJobWireSchema } from '../../actors/central/training-wire.js';
import { federatedTaskSchema } from '../../actors/training-wire.js';
import type { RegionEffect } from '../../actors/region-io.js';
import { effectToWire } from '../../adapters/bus/topics.js';
import { tempDir } from '../helpers/fixtures.js';
import { createKeyWithCli } from '../helpers/live-region.js';
import { eventually, jobBody, makeDataset, replayedHash, sha256File, startEmbeddedCentral } from './helpers.js';

/**
 * `arcnet central` on the embedded journal, over HTTP, with the local data
 * mover copying real files and the local batch queue running real child
 * processes: a job of each class end to end, cancel during the transfer and
 * during the queue, an alert live on the wall clock, and the journal replaying
 * to the live state hash.
 */

type Json = Record<string, unknown>;
const json = { 'content-type': 'application/json' };

async function call(origin: string, method: string, path: string, key?: string, body?: string): Promise<{ status: number; body: Json }> {
  const response = await fetch(`${origin}${path}`, { method, headers: { ...(body === undefined ? {} : json), ...(key === undefined ? {} : { authorization: `Bearer ${key}` }) }, ...(body === undefined ? {} : { body }) });
  return { status: response.status, body: (await response.json()) as Json };
}

const summaryInput = (geozone: string, active: number, breakdown: { cogen: number; grid: number; battery: number }) =>
  ({ type: 'summary.in', summary: { geozoneId: geozone, atMs: Date.now(), totalNodes: active, activeNodes: active, avgGpuUtil: 0.4, energyBreakdown: breakdown, openReservations: 0 } }) as const;

test('an HPC job ends completed with its checkpoint, live on the console; a federated job is published for the best-ranked geozone; the journal replays to the live hash', async (t) => {
  const { dir, cleanup } = tempDir();
  const keys = join(dir, 'keys.json');
  const developer = createKeyWithCli(keys, 'developer', '*');
  const operator = createKeyWithCli(keys, 'operator', '*');
  const central = await startEmbeddedCentral(dir, { bytesPerSec: 4 * 1024 * 1024, apiKeysFile: keys });
  const { origin } = central;
  const dataset = join(dir, 'dataset.bin');
  makeDataset(dataset, 8 * 1024 * 1024);
  const console: Json[] = [];
  const socket = new WebSocket(`${origin.replace(/^http/, 'ws')}/telemetry`, { headers: { authorization: `Bearer ${operator}` } });
  socket.on('message', (data: Buffer) => console.push(JSON.parse(data.toString()) as Json));
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  let line: Json;
  try {
    const accepted = await call(origin, 'POST', '/v1/jobs', developer, jobBody('hpc-1', dataset, join(dir, 'ckpt', 'hpc-1.json')));
    t.is(accepted.status, 202);
    t.like(accepted.body, { 'job-id': 'hpc-1', target: 'hpc', reason: 'estimatedFlops > 1e18' });

    // Refusals: a duplicate job id, a bad body, a developer key cancelling, an unknown job.
    const again = await call(origin, 'POST', '/v1/jobs', developer, jobBody('hpc-1', dataset, join(dir, 'x.json')));
    t.is(again.status, 409);
    t.is(again.body['code'], 'ARC_ERR_DUPLICATE_JOB');
    const bad = await call(origin, 'POST', '/v1/jobs', developer, JSON.stringify({ 'job-id': 'x', urgency: 'whenever' }));
    t.is(bad.status, 400);
    t.is(bad.body['code'], 'ARC_ERR_VALIDATION');
    t.is((await call(origin, 'POST', '/v1/jobs/hpc-1/cancel', developer)).status, 403);
    t.is((await call(origin, 'GET', '/v1/jobs/nope', developer)).status, 404);

    const done = await eventually('hpc-1 completed', async () => {
      const job = await call(origin, 'GET', '/v1/jobs/hpc-1', developer);
      return job.body['state'] === 'completed' || job.body['state'] === 'failed' ? job.body : undefined;
    });
    t.like(done, { state: 'completed', 'bytes-transferred': 8 * 1024 * 1024, progress: 1, 'failure-reason': null });
    t.regex(String(done['queue-job-id']), /^local-\d+-hpc-1$/);
    // The staged copy is whole and named after the job; the batch job read it and wrote the checkpoint.
    const staged = join(dir, 'hpc', 'staging', 'hpc-1', 'dataset.bin');
    t.is(await sha256File(staged), await sha256File(dataset));
    t.deepEqual(readdirSync(join(dir, 'hpc', 'staging', 'hpc-1')), ['dataset.bin']);
    t.deepEqual(JSON.parse(readFileSync(join(dir, 'ckpt', 'hpc-1.json'), 'utf8')), { 'job-id': 'hpc-1', 'dataset-sha256': await sha256File(dataset) });
    t.deepEqual(central.queue.names(), ['hpc-1']);
    // HpcJob v1 went to arc.bridge.pending as the job was classified, then to ornl.bridge.ingress once staged.
    const bridge = central.released.map((e) => effectToWire(e)?.topic).filter((topic) => topic === 'arc.bridge.pending' || topic === 'ornl.bridge.ingress');
    t.deepEqual(bridge, ['arc.bridge.pending', 'ornl.bridge.ingress']);
    const ingress = central.released.filter((e) => e.type === 'hpc-ingress').map((e) => effectToWire(e));
    t.is(ingress.length, 1);
    t.is(ingress[0]?.topic, 'ornl.bridge.ingress');
    // The local mover copies the file straight to its destination: HpcJob v1 names that file.
    t.like(hpcJobWireSchema.parse(ingress[0]?.message), { 'job-id': 'hpc-1', 'batch-job-name': 'hpc-1', 'staged-uri': pathToFileURL(staged).href });
    t.is(done['staged-uri'], pathToFileURL(staged).href);

    // The console showed the seed's hpc messages as it went: progress with bytes, then completed.
    const hpc = await eventually('hpc console messages', () => Promise.resolve(console.some((m) => m['type'] === 'hpc' && m['status'] === 'completed') ? console.filter((m) => m['type'] === 'hpc') : undefined));
    const moving = hpc.filter((m) => m['status'] === 'transferring' && (m['bytesTransferred'] as number) > 0);
    t.true(moving.length >= 1, 'at least one progress message mid-transfer');
    t.like(moving[0], { jobId: 'hpc-1', datasetSizeGb: 0.01 });
    const progress = hpc.map((m) => m['progress'] as number);
    t.deepEqual(progress, [...progress].sort((a, b) => a - b), 'progress never goes backwards');

    // The global view from regional summaries (on the bus, validated like any input), then a federated job.
    central.process.publish(summaryInput('CAISO', 10, { cogen: 2, grid: 8, battery: 0 }));
    central.process.publish(summaryInput('ERCOT', 10, { cogen: 6, grid: 2, battery: 2 }));
    const global = await eventually('the global view', async () => {
      const view = await call(origin, 'GET', '/v1/global', developer);
      if (view.status !== 200) throw new Error(JSON.stringify(view));
      return (view.body['geozones'] as Json[]).length === 2 ? view.body : undefined;
    });
    t.deepEqual((global['geozones'] as Json[]).map((g) => [g['geozone'], g['state']]), [['CAISO', 'reporting'], ['ERCOT', 'reporting']]);
    const caiso = await call(origin, 'GET', '/v1/global/history?geozone=CAISO', developer);
    t.is((caiso.body['summaries'] as Json[] | undefined)?.length, 1, JSON.stringify(caiso));
    t.is((await call(origin, 'GET', '/v1/global/history?geozone=NOWHERE', developer)).status, 404);

    const federated = await call(origin, 'POST', '/v1/jobs', developer, jobBody('fed-1', dataset, join(dir, 'ckpt', 'fed-1.pt'), { 'estimated-flops': 1e15, 'model-id': 'llama-3-8b' }));
    t.is(federated.status, 202);
    t.like(federated.body, { target: 'federated', state: 'published', geozone: 'ERCOT' });
    const task = await eventually('the FederatedTask', () => Promise.resolve(central.released.find((e): e is Extract<RegionEffect, { type: 'federated-task' }> => e.type === 'federated-task')));
    const wire = effectToWire(task);
    t.is(wire?.topic, 'arc.scheduler.training');
    t.like(federatedTaskSchema.parse(wire?.message), { 'job-id': 'fed-1', geozone: 'ERCOT', 'model-id': 'llama-3-8b' });
    // The inspector shows the orchestrator's actors, and time travel rebuilds them as they were mid-transfer.
    const actors = await call(origin, 'GET', '/inspector/api/actors', operator);
    t.deepEqual((actors.body['rows'] as Json[]).map((r) => [r['id'], r['kind'], r['state']]), [
      ['global-view/CAISO', 'global-view', 'reporting'],
      ['global-view/ERCOT', 'global-view', 'reporting'],
    ]);
    // Offsets 0..2: the classification, the job's spawn, its transfer started.
    const past = await call(origin, 'GET', '/inspector/api/at?geozone=CENTRAL&offset=2', operator);
    t.deepEqual((past.body['shards'] as Json[])[0]?.['counts'], { 'hpc-job': { transferring: 1 } });

    const list = await call(origin, 'GET', '/v1/jobs?limit=1', developer);
    t.deepEqual([(list.body['jobs'] as Json[]).map((j) => j['job-id']), list.body['next']], [['hpc-1'], 'hpc-1']);
  } finally {
    socket.close();
    line = await central.process.stop('test');
  }
  t.is(line['role'], 'central');
  t.is(await replayedHash(join(dir, 'data')), line['stateHash'] as string);
  cleanup();
});

test('cancel during the transfer stops the copy (nothing staged, no batch job); cancel in the queue stops the batch job', async (t) => {
  const { dir, cleanup } = tempDir();
  const central = await startEmbeddedCentral(dir, { bytesPerSec: 1024 * 1024, trainCommand: 'sleep 120' });
  const { origin } = central;
  const dataset = join(dir, 'dataset.bin');
  makeDataset(dataset, 16 * 1024 * 1024);
  const small = join(dir, 'small.bin');
  makeDataset(small, 64 * 1024);
  try {
    t.is((await call(origin, 'POST', '/v1/jobs', undefined, jobBody('moving', dataset, join(dir, 'ckpt', 'moving')))).status, 202);
    await eventually('bytes moved', async () => {
      const job = await call(origin, 'GET', '/v1/jobs/moving');
      return (job.body['bytes-transferred'] as number) > 0 ? true : undefined;
    });
    const cancelled = await call(origin, 'POST', '/v1/jobs/moving/cancel');
    t.is(cancelled.status, 202);
    t.is(cancelled.body['state'], 'cancelled');
    await eventually('the copy stopped', async () => ((await central.mover.find('moving'))?.state === 'cancelled' ? true : undefined));
    const stagedDir = join(dir, 'hpc', 'staging', 'moving');
    await eventually('no partial copy left', () => Promise.resolve(!existsSync(stagedDir) || readdirSync(stagedDir).length === 0 ? true : undefined));
    t.deepEqual(central.queue.names(), []);
    const again = await call(origin, 'POST', '/v1/jobs/moving/cancel');
    t.is(again.status, 409);
    t.is(again.body['code'], 'ARC_ERR_JOB_ENDED');

    t.is((await call(origin, 'POST', '/v1/jobs', undefined, jobBody('queued', small, join(dir, 'ckpt', 'queued')))).status, 202);
    const running = await eventually('the batch job running', async () => {
      const job = await call(origin, 'GET', '/v1/jobs/queued');
      return job.body['state'] === 'running' ? job.body : undefined;
    });
    const queueJobId = String(running['queue-job-id']);
    t.is((await call(origin, 'POST', '/v1/jobs/queued/cancel')).body['state'], 'cancelled');
    await eventually('the batch job cancelled', async () => ((await central.queue.status(queueJobId)).state === 'cancelled' ? true : undefined));
    const pid = Number(/^local-(\d+)-/.exec(queueJobId)?.[1]);
    await eventually('its process gone', () => {
      try {
        process.kill(pid, 0);
        return Promise.resolve(undefined);
      } catch {
        return Promise.resolve(true);
      }
    });
    t.pass();
  } finally {
    await central.process.stop('test');
    cleanup();
  }
});

test('a region that goes silent raises an alert on the wall clock, as a system event on the console feed', async (t) => {
  const { dir, cleanup } = tempDir();
  const central = await startEmbeddedCentral(dir, { config: { summaryEveryMs: 300 } });
  try {
    central.process.publish(summaryInput('PJM', 5, { cogen: 0, grid: 5, battery: 0 }));
    const alert = await eventually('the silence alert', () =>
      Promise.resolve(central.released.find((e): e is Extract<RegionEffect, { type: 'system' }> => e.type === 'system' && e.details['rule'] === 'region-silent')),
    );
    t.is(alert.severity, 'error');
    t.like(alert.details, { geozone: 'PJM', periods: 3, summaryEveryMs: 300 });
    t.true((alert.details['silentForMs'] as number) >= 900);
    const view = await call(central.origin, 'GET', '/v1/global');
    t.is((view.body['geozones'] as Json[])[0]?.['state'], 'silent');
  } finally {
    await central.process.stop('test');
    cleanup();
  }
});
