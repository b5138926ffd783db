import test from 'ava';
import fc from 'fast-check';
import { join } from 'node:path';
import { request as httpRequest } from 'undici';
import { tempDir } from '../helpers/fixtures.js';
import { createKeyWithCli } from '../helpers/live-region.js';
import { ApiContract, type OpenApiDocument, type ReceivedAnswer } from '../helpers/openapi-contract.js';
import { requestsFor, type ApiRequest, type Hints } from '../helpers/openapi-requests.js';
import { eventually, jobBody, makeDataset, startEmbeddedCentral } from './helpers.js';

/**
 * The orchestrator's routes keep the contract of the OpenAPI document the
 * process serves: each answer's status is documented for its operation and its
 * body matches the documented schema, for examples that reach every status and
 * for generated requests (valid and broken) from every role.
 */
async function send(origin: string, request: ApiRequest): Promise<ReceivedAnswer> {
  const reply = await httpRequest(`${origin}${request.url}`, { method: request.method as 'GET', headers: request.headers, ...(request.payload === undefined ? {} : { body: request.payload }) });
  return { status: reply.statusCode, headers: reply.headers, body: await reply.body.text() };
}

test('the orchestrator routes answer as their OpenAPI document says, for examples of every status and for generated requests of every role', async (t) => {
  t.timeout(180_000);
  const { dir, cleanup } = tempDir();
  const keys = join(dir, 'keys.json');
  const callers: Record<string, string> = {};
  for (const role of ['viewer', 'developer', 'operator', 'agent']) callers[role] = createKeyWithCli(keys, role, '*');
  callers['viewer-caiso'] = createKeyWithCli(keys, 'viewer', 'CAISO');
  const central = await startEmbeddedCentral(dir, { apiKeysFile: keys, trainCommand: 'sleep 20' });
  const { origin } = central;
  const auth = (caller: string): Record<string, string> => (callers[caller] === undefined ? {} : { authorization: `Bearer ${callers[caller]}` });
  const dataset = join(dir, 'dataset.bin');
  makeDataset(dataset, 64 * 1024);
  try {
    const document = JSON.parse((await send(origin, { method: 'GET', url: '/openapi.json', headers: {} })).body) as OpenApiDocument;
    const contract = new ApiContract(document);
    const central_ = contract.operations.filter((o) => /^\/v1\/(jobs|global)/.test(o.path));
    t.deepEqual(central_.map((o) => `${o.method} ${o.path}`).sort(), ['GET /v1/global', 'GET /v1/global/history', 'GET /v1/jobs', 'GET /v1/jobs/{id}', 'POST /v1/jobs', 'POST /v1/jobs/{id}/cancel']);
    central.process.publish({ type: 'summary.in', summary: { geozoneId: 'CAISO', atMs: Date.now(), totalNodes: 4, activeNodes: 4, avgGpuUtil: 0.3, energyBreakdown: { cogen: 4, grid: 0, battery: 0 }, openReservations: 0 } });
    const post = (jobId: string, overrides: Record<string, unknown> = {}): string => jobBody(jobId, dataset, join(dir, 'ckpt', jobId), overrides);
    const examples: (ApiRequest & { status: number })[] = [
      { method: 'POST', url: '/v1/jobs', payload: post('hpc-a'), status: 202, headers: {} },
      { method: 'POST', url: '/v1/jobs', payload: post('fed-a', { 'estimated-flops': 1 }), status: 202, headers: {} },
      { method: 'POST', url: '/v1/jobs', payload: post('hpc-a'), status: 409, headers: {} },
      { method: 'POST', url: '/v1/jobs', payload: '{"job-id":', status: 400, headers: {} },
      { method: 'POST', url: '/v1/jobs', payload: JSON.stringify({ pad: 'x'.repeat(40_000) }), status: 413, headers: {} },
      { method: 'GET', url: '/v1/jobs?limit=1', status: 200, headers: {} },
      { method: 'GET', url: '/v1/jobs?limit=0', status: 400, headers: {} },
      { method: 'GET', url: '/v1/jobs/hpc-a', status: 200, headers: {} },
      { method: 'GET', url: '/v1/jobs/nobody', status: 404, headers: {} },
      { method: 'POST', url: '/v1/jobs/nobody/cancel', status: 404, headers: {} },
      { method: 'POST', url: '/v1/jobs/fed-a/cancel', status: 409, headers: {} },
      { method: 'GET', url: '/v1/global', status: 200, headers: {} },
      { method: 'GET', url: '/v1/global/history?geozone=CAISO', status: 200, headers: {} },
      { method: 'GET', url: '/v1/global/history?geozone=NOWHERE', status: 404, headers: {} },
      { method: 'GET', url: '/v1/global/history', status: 400, headers: {} },
      { method: 'DELETE', url: '/v1/jobs', status: 405, headers: {} },
    ];
    const failures: string[] = [];
    for (const example of examples) {
      const caller = example.method === 'POST' && example.url.endsWith('/cancel') ? 'operator' : example.method === 'POST' ? 'developer' : 'viewer';
      const request: ApiRequest = { ...example, headers: { ...auth(caller), ...(example.payload === undefined ? {} : { 'content-type': 'application/json' }) } };
      const answer = await send(origin, request);
      t.is(answer.status, example.status, `${example.method} ${example.url}: ${answer.body.slice(0, 200)}`);
      failures.push(...contract.violations(request, answer).map((v) => `${example.method} ${example.url}: ${v}`));
    }
    // Cancel while the batch job runs: 202 with the job's view.
    await eventually('hpc-a running', async () => ((JSON.parse((await send(origin, { method: 'GET', url: '/v1/jobs/hpc-a', headers: auth('viewer') })).body) as { state: string }).state === 'running' ? true : undefined));
    const cancel: ApiRequest = { method: 'POST', url: '/v1/jobs/hpc-a/cancel', headers: auth('operator') };
    const cancelled = await send(origin, cancel);
    t.is(cancelled.status, 202);
    failures.push(...contract.violations(cancel, cancelled));

    const hints: Hints = {
      id: fc.constantFrom('hpc-a', 'fed-a', 'nobody', 'x y'),
      'job-id': fc.stringMatching(/^[a-z0-9-]{1,20}$/),
      geozone: fc.constantFrom('CAISO', 'ERCOT'),
      'dataset-uri': fc.constant(`file://${dataset}`),
      'checkpoint-uri': fc.constant(`file://${join(dir, 'ckpt', 'gen')}`),
      'estimated-flops': fc.constant(1),
      after: fc.constantFrom('hpc-a', 'fed-a'),
    };
    const authorizations = fc.constantFrom(...['viewer', 'developer', 'operator', 'agent', 'viewer-caiso', 'none'].map(auth));
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(fc.oneof(...central_.map((o) => requestsFor(o, hints, authorizations))), async (request) => {
        const answer = await send(origin, request);
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
        failures.push(...contract.violations(request, answer).map((v) => `${request.method} ${request.url.slice(0, 100)}: ${v}`));
      }),
      { numRuns: 300 },
    );
    t.log(`generated answers by status: ${[...statuses].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}x${n}`).join(' ')}`);
    t.deepEqual(failures.slice(0, 10), [], `${failures.length} answers broke the contract`);
  } finally {
    await central.process.stop('test');
    cleanup();
  }
});
