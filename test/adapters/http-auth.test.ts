import test from 'ava';
import Fastify from 'fastify';
import type { Refusal, RefusalContext } from '../../adapters/http/access.js';
import { installGuard } from '../../adapters/http/guard-hook.js';
import { createKey, ApiKeyStore, type Role } from '../../adapters/security/api-keys.js';
import { createKeyGuard } from '../../adapters/security/key-guard.js';
import { RateLimiter } from '../../adapters/security/rate-limiter.js';
import { TicketBook } from '../../adapters/security/tickets.js';
import { inferenceBody, jsonHeaders, telemetryBody, withHttpRegion, type HttpRegion } from '../helpers/http-region.js';

interface Keys {
  readonly bearer: (name: string) => Record<string, string>;
  readonly refusals: { refusal: Refusal; context: RefusalContext }[];
}

async function withKeys(run: (ctx: HttpRegion & Keys) => Promise<void>, budget = { ratePerSec: 1_000, burst: 1_000 }): Promise<void> {
  const made: Record<string, string> = {};
  const stored = [];
  const specs: [string, Role, string[]][] = [
    ['viewer-caiso', 'viewer', ['CAISO']],
    ['viewer-all', 'viewer', ['*']],
    ['developer-caiso', 'developer', ['CAISO']],
    ['developer-ercot', 'developer', ['ERCOT']],
    ['operator-caiso', 'operator', ['CAISO']],
    ['operator-all', 'operator', ['*']],
    ['agent-caiso', 'agent', ['CAISO']],
  ];
  for (const [name, role, geozones] of specs) {
    const { key, stored: entry } = createKey({ role, geozones, label: name });
    made[name] = key;
    stored.push(entry);
  }
  const refusals: { refusal: Refusal; context: RefusalContext }[] = [];
  const guard = createKeyGuard({
    keys: new ApiKeyStore(stored),
    limiter: new RateLimiter(budget),
    tickets: new TicketBook(),
    nowMs: () => Date.now(),
    onRefused: (refusal, context) => refusals.push({ refusal, context }),
  });
  const bearer = (name: string): Record<string, string> => ({ ...jsonHeaders, authorization: `Bearer ${made[name] ?? 'arc_unknown'}` });
  await withHttpRegion(
    async (ctx) => {
      // Two nodes, one per geozone, fed by an operator that reaches both.
      for (const [id, geozone] of [
        ['c1', 'CAISO'],
        ['e1', 'ERCOT'],
      ]) {
        const reply = await ctx.app.inject({ method: 'POST', url: '/v1/telemetry', headers: bearer('operator-all'), payload: telemetryBody(id as string, { geozone }) });
        if (reply.statusCode !== 202) throw new Error(reply.body);
      }
      await run({ ...ctx, bearer, refusals });
    },
    { geozones: ['CAISO', 'ERCOT'], guard },
  );
}

test('no key or a wrong key: 401 before the body is read, with a system event that names no key', async (t) => {
  await withKeys(async ({ app, bearer, refusals }) => {
    const none = await app.inject({ method: 'GET', url: '/v1/nodes' });
    t.is(none.statusCode, 401);
    t.is(none.json<{ code: string }>().code, 'ARC_ERR_UNAUTHENTICATED');
    t.regex(String(none.headers['www-authenticate']), /^Bearer/);
    const wrong = await app.inject({ method: 'GET', url: '/v1/nodes', headers: { authorization: 'Bearer arc_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' } });
    t.is(wrong.statusCode, 401);
    t.false(wrong.body.includes('arc_AAAA'), 'the answer does not echo the key');
    // An oversized body without a key is refused for the key, not the size: the body was never read.
    const big = await app.inject({ method: 'POST', url: '/v1/telemetry', headers: jsonHeaders, payload: 'x'.repeat(100_000) });
    t.is(big.statusCode, 401);
    t.is(refusals.length, 3);
    t.deepEqual(refusals.map((r) => r.context.path), ['/v1/nodes', '/v1/nodes', '/v1/telemetry']);
    t.false(JSON.stringify(refusals).includes('arc_AAAA'));
    // Health stays public.
    t.is((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    t.is((await app.inject({ method: 'GET', url: '/v1/nodes', headers: bearer('viewer-all') })).statusCode, 200);
  });
});

test('roles: viewer reads, developer also submits inference, operator also drains, agent only posts telemetry and results', async (t) => {
  await withKeys(async ({ app, bearer, refusals }) => {
    const status = async (key: string, method: 'GET' | 'POST', url: string, payload?: string): Promise<number> =>
      (await app.inject({ method, url, headers: bearer(key), ...(payload === undefined ? {} : { payload }) })).statusCode;
    t.is(await status('viewer-caiso', 'GET', '/v1/nodes'), 200);
    t.is(await status('viewer-caiso', 'POST', '/v1/inference', inferenceBody('v1')), 403);
    t.is(await status('viewer-caiso', 'POST', '/v1/nodes/c1/drain'), 403);
    t.is(await status('viewer-caiso', 'POST', '/v1/telemetry', telemetryBody('c1')), 403);
    t.is(await status('developer-caiso', 'POST', '/v1/inference', inferenceBody('d1')), 202);
    t.is(await status('developer-caiso', 'POST', '/v1/nodes/c1/drain'), 403);
    t.is(await status('operator-caiso', 'POST', '/v1/nodes/c1/drain'), 202);
    t.is(await status('operator-caiso', 'POST', '/v1/nodes/c1/resume'), 202);
    t.is(await status('agent-caiso', 'POST', '/v1/telemetry', telemetryBody('c2')), 202);
    t.is(await status('agent-caiso', 'GET', '/v1/nodes'), 403);
    t.is(await status('agent-caiso', 'POST', '/v1/inference', inferenceBody('a1')), 403);
    const forbidden = refusals.filter((r) => r.refusal.status === 403);
    t.is(forbidden.length, 6);
    t.true(forbidden.every((r) => r.refusal.code === 'ARC_ERR_FORBIDDEN'));
    t.true(
      forbidden.every((r) => typeof r.context.keyId === 'string' && r.context.keyId.length > 0),
      'a refusal of a valid key says which key (its id), so operators can find it',
    );
  });
});

test('geozone isolation: a CAISO key sees and touches nothing of ERCOT, and cannot tell what ERCOT holds', async (t) => {
  await withKeys(async ({ app, bearer }) => {
    const get = (key: string, url: string) => app.inject({ method: 'GET', url, headers: bearer(key) });
    const listed = (await get('viewer-caiso', '/v1/nodes')).json<{ nodes: { id: string }[] }>();
    t.deepEqual(listed.nodes.map((n) => n.id), ['c1']);
    t.deepEqual((await get('viewer-all', '/v1/nodes')).json<{ nodes: { id: string }[] }>().nodes.map((n) => n.id), ['c1', 'e1']);
    t.is((await get('viewer-caiso', '/v1/nodes?geozone=ERCOT')).statusCode, 403);
    // Another geozone's node answers exactly like a node that does not exist.
    const hidden = await get('viewer-caiso', '/v1/nodes/e1');
    const missing = await get('viewer-caiso', '/v1/nodes/nobody');
    t.is(hidden.statusCode, 404);
    t.is(hidden.body, missing.body);
    t.is((await get('viewer-caiso', '/v1/nodes/e1/history')).statusCode, 404);
    t.deepEqual((await get('viewer-caiso', '/v1/summary')).json<{ summaries: { geozoneId: string }[] }>().summaries.map((s) => s.geozoneId), ['CAISO']);
    t.is((await get('viewer-caiso', '/metrics')).statusCode, 403, 'the metrics cover every geozone');
    t.is((await get('viewer-all', '/metrics')).statusCode, 200);

    const post = (key: string, url: string, payload?: string) => app.inject({ method: 'POST', url, headers: bearer(key), ...(payload === undefined ? {} : { payload }) });
    t.is((await post('developer-caiso', '/v1/inference', inferenceBody('x1', 'llama-3-70b', 'ERCOT'))).statusCode, 403);
    t.is((await post('agent-caiso', '/v1/telemetry', telemetryBody('e1', { geozone: 'ERCOT', 'gpu-utilization': 0.99 }))).statusCode, 403);
    t.is((await post('operator-caiso', '/v1/nodes/e1/drain')).statusCode, 404);
    const e1 = (await get('viewer-all', '/v1/nodes/e1')).json<{ status: string; gpuUtilization: number }>();
    t.is(e1.status, 'online', 'the ERCOT node was not drained');
    t.is(e1.gpuUtilization, 0.3, 'nor its telemetry replaced');
    for (const reply of [await get('viewer-caiso', '/v1/nodes?geozone=ERCOT'), await post('developer-caiso', '/v1/inference', inferenceBody('x2', 'llama-3-70b', 'ERCOT'))]) {
      t.false(reply.body.includes('CAISO'), 'a refusal does not list the key geozones');
    }
  });
});

test('each key has its own request budget: over it, 429 with Retry-After', async (t) => {
  await withKeys(
    async ({ app, bearer }) => {
      const codes: number[] = [];
      for (let i = 0; i < 5; i++) codes.push((await app.inject({ method: 'GET', url: '/v1/summary', headers: bearer('viewer-caiso') })).statusCode);
      t.deepEqual(codes, [200, 200, 429, 429, 429]);
      const limited = await app.inject({ method: 'GET', url: '/v1/summary', headers: bearer('viewer-caiso') });
      t.is(limited.json<{ code: string }>().code, 'ARC_ERR_RATE_LIMITED');
      t.true(Number(limited.headers['retry-after']) >= 1);
      t.is((await app.inject({ method: 'GET', url: '/v1/summary', headers: bearer('viewer-all') })).statusCode, 200, 'another key is not affected');
    },
    // The two setup posts use operator-all's budget; each key gets 2 then waits.
    { ratePerSec: 0.01, burst: 2 },
  );
});

test('deny by default: every documented route except health, docs and the inspector page wants a key, and a guarded route without a permission cannot even be registered', async (t) => {
  await withKeys(async ({ app }) => {
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, Record<string, unknown>> }>();
    const open = new Set(['/healthz', '/readyz']);
    let checked = 0;
    for (const [path, methods] of Object.entries(doc.paths)) {
      if (open.has(path)) continue;
      for (const method of Object.keys(methods)) {
        const reply = await app.inject({ method: method.toUpperCase() as 'GET' | 'POST', url: path.replace('{id}', 'c1') });
        t.is(reply.statusCode, 401, `${method} ${path}`);
        checked++;
      }
    }
    t.true(checked >= 12, `${checked} routes checked`);
  });
  const bare = Fastify();
  installGuard(bare, undefined);
  t.throws(() => bare.get('/v1/forgotten', () => ({})), { message: /declares no permission/ });
  t.notThrows(() => bare.get('/v1/remembered', { config: { permission: 'read' } }, () => ({})));
  t.notThrows(() => bare.get('/elsewhere', () => ({})));
  await bare.close();
});

test('the same request id sent from two geozones is two requests: each caller gets its own decision', async (t) => {
  await withKeys(async ({ app, bearer }) => {
    const [caiso, ercot] = await Promise.all([
      app.inject({ method: 'POST', url: '/v1/inference', headers: bearer('developer-caiso'), payload: inferenceBody('shared-id', 'llama-3-70b', 'CAISO') }),
      app.inject({ method: 'POST', url: '/v1/inference', headers: bearer('developer-ercot'), payload: inferenceBody('shared-id', 'llama-3-70b', 'ERCOT') }),
    ]);
    t.is(caiso.statusCode, 202);
    t.is(ercot.statusCode, 202);
    t.like(caiso.json<Record<string, unknown>>(), { geozone: 'CAISO', 'node-id': 'c1' });
    t.like(ercot.json<Record<string, unknown>>(), { geozone: 'ERCOT', 'node-id': 'e1' });
  });
});

test('a key gets a single-use console ticket', async (t) => {
  await withKeys(async ({ app, bearer }) => {
    const reply = await app.inject({ method: 'POST', url: '/v1/console/tickets', headers: bearer('viewer-caiso') });
    t.is(reply.statusCode, 201);
    const body = reply.json<{ ticket: string; 'expires-at': string }>();
    t.true(body.ticket.length >= 20);
    t.true(Date.parse(body['expires-at']) > Date.now());
    t.is((await app.inject({ method: 'POST', url: '/v1/console/tickets' })).statusCode, 401);
  });
});
