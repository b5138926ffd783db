import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { connect } from 'node:net';
import { request as httpRequest } from 'undici';
import type { Refusal } from '../../adapters/http/access.js';
import { ConsoleHub } from '../../adapters/console/console-hub.js';
import { ApiKeyStore, createKey, type Role } from '../../adapters/security/api-keys.js';
import { createKeyGuard, type KeyGuard } from '../../adapters/security/key-guard.js';
import { RateLimiter } from '../../adapters/security/rate-limiter.js';
import { TicketBook } from '../../adapters/security/tickets.js';
import { inferenceBody, telemetryBody, withHttpRegion, type HttpRegion } from '../helpers/http-region.js';
import { ApiContract, type OpenApiDocument, type Operation, type ReceivedAnswer } from '../helpers/openapi-contract.js';
import { otherMethods, requestsFor, unknownPaths, type ApiRequest, type Hints } from '../helpers/openapi-requests.js';

/**
 * The HTTP API keeps the contract its own OpenAPI document states, for every
 * route in the document (the region's, the inspector's, the console's) and
 * every kind of caller: each answer's status is documented for the operation,
 * its body matches the documented schema (validated against the JSON Schema in
 * /openapi.json itself), documented headers are there; a method a path does
 * not have is 405 with the path's methods in Allow, an unknown path 404.
 */

const roles: readonly Role[] = ['viewer', 'developer', 'operator', 'agent'];

/** Who calls: every role with all geozones and with CAISO only, no key, an unknown key, a header that is not a Bearer key. */
type Caller = string;

interface Region extends HttpRegion {
  readonly contract: ApiContract;
  readonly guard: KeyGuard;
  readonly auth: (caller: Caller) => Record<string, string>;
  readonly callers: readonly Caller[];
  readonly refusals: Refusal[];
}

async function withContractRegion(run: (region: Region) => Promise<void>, budget = { ratePerSec: 1_000_000, burst: 1_000_000 }): Promise<void> {
  const keys: Record<string, string> = {};
  const stored = [];
  for (const role of roles) {
    for (const [suffix, geozones] of [
      ['all', ['*']],
      ['caiso', ['CAISO']],
    ] as const) {
      const made = createKey({ role, geozones: [...geozones], label: `${role}-${suffix}` });
      keys[`${role}-${suffix}`] = made.key;
      stored.push(made.stored);
    }
  }
  const refusals: Refusal[] = [];
  const guard = createKeyGuard({
    keys: new ApiKeyStore(stored),
    limiter: new RateLimiter(budget),
    tickets: new TicketBook(),
    nowMs: () => Date.now(),
    onRefused: (refusal) => refusals.push(refusal),
  });
  const auth = (caller: Caller): Record<string, string> => {
    if (caller === 'no key') return {};
    if (caller === 'wrong key') return { authorization: 'Bearer arc_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' };
    if (caller === 'not bearer') return { authorization: 'Basic YWxhZGRpbjpvcGVuc2VzYW1l' };
    return { authorization: `Bearer ${keys[caller] ?? 'arc_missing'}` };
  };
  await withHttpRegion(
    async (ctx) => {
      const operator = auth('operator-all');
      const send = async (url: string, payload: string): Promise<void> => {
        const reply = await ctx.app.inject({ method: 'POST', url, headers: { ...operator, 'content-type': 'application/json' }, payload });
        if (reply.statusCode !== 202) throw new Error(`setup ${url}: ${reply.statusCode} ${reply.body}`);
      };
      // A node per geozone, and two live reservations on c1 (one stays live, the other gets a result).
      await send('/v1/telemetry', telemetryBody('c1', { 'gpu-count': 16 }));
      await send('/v1/telemetry', telemetryBody('e1', { geozone: 'ERCOT' }));
      await send('/v1/inference', inferenceBody('r-known'));
      await send('/v1/inference', inferenceBody('r-result'));
      const document = (await ctx.app.inject({ method: 'GET', url: '/openapi.json' })).json<OpenApiDocument>();
      await run({ ...ctx, contract: new ApiContract(document), guard, auth, callers: [...Object.keys(keys), 'no key', 'wrong key', 'not bearer'], refusals });
    },
    { geozones: ['CAISO', 'ERCOT'], guard, inspector: true, consolePath: '/telemetry', agentPath: '/v1/agent' },
  );
}

/** One request that each operation answers with success for a caller allowed to make it. */
interface Example {
  readonly url: string;
  readonly payload?: string;
  readonly caller: Caller;
  readonly status: number;
}

const examples: Readonly<Record<string, Example>> = {
  'GET /healthz': { url: '/healthz', caller: 'no key', status: 200 },
  'GET /readyz': { url: '/readyz', caller: 'no key', status: 200 },
  'GET /v1/ownership': { url: '/v1/ownership', caller: 'viewer-caiso', status: 200 },
  'POST /v1/inference': { url: '/v1/inference', payload: inferenceBody('r-example'), caller: 'developer-all', status: 202 },
  'POST /v1/telemetry': { url: '/v1/telemetry', payload: telemetryBody('c2'), caller: 'agent-caiso', status: 202 },
  'POST /v1/results': {
    url: '/v1/results',
    payload: JSON.stringify({ 'request-id': 'r-result', 'node-id': 'c1', 'latency-ms': 12, status: 'completed' }),
    caller: 'agent-all',
    status: 202,
  },
  'GET /v1/nodes': { url: '/v1/nodes?geozone=CAISO&limit=5', caller: 'viewer-caiso', status: 200 },
  'GET /v1/nodes/{id}': { url: '/v1/nodes/c1', caller: 'viewer-caiso', status: 200 },
  'GET /v1/nodes/{id}/history': { url: '/v1/nodes/c1/history?offset=0&from-offset=0', caller: 'viewer-all', status: 200 },
  'GET /v1/reservations/{id}': { url: '/v1/reservations/r-known', caller: 'viewer-caiso', status: 200 },
  'GET /v1/summary': { url: '/v1/summary', caller: 'viewer-all', status: 200 },
  'POST /v1/nodes/{id}/drain': { url: '/v1/nodes/e1/drain', caller: 'operator-all', status: 202 },
  'POST /v1/nodes/{id}/resume': { url: '/v1/nodes/e1/resume', caller: 'operator-all', status: 202 },
  'POST /v1/console/tickets': { url: '/v1/console/tickets', caller: 'viewer-caiso', status: 201 },
  'GET /metrics': { url: '/metrics', caller: 'viewer-all', status: 200 },
  'GET /telemetry': { url: '/telemetry', caller: 'viewer-all', status: 426 },
  'GET /v1/agent': { url: '/v1/agent', caller: 'agent-all', status: 426 },
  'GET /inspector': { url: '/inspector', caller: 'no key', status: 200 },
  'GET /inspector/': { url: '/inspector/', caller: 'no key', status: 200 },
  'GET /inspector/assets/{name}': { url: '/inspector/assets/app.js', caller: 'no key', status: 200 },
  'GET /inspector/assets/elk.bundled.js': { url: '/inspector/assets/elk.bundled.js', caller: 'no key', status: 200 },
  'GET /inspector/api/info': { url: '/inspector/api/info', caller: 'viewer-caiso', status: 200 },
  'GET /inspector/api/machines': { url: '/inspector/api/machines', caller: 'viewer-caiso', status: 200 },
  'GET /inspector/api/counts': { url: '/inspector/api/counts', caller: 'viewer-caiso', status: 200 },
  'GET /inspector/api/actors': { url: '/inspector/api/actors?kind=node&limit=10', caller: 'viewer-all', status: 200 },
  'GET /inspector/api/actor': { url: '/inspector/api/actor?id=node%2Fc1', caller: 'viewer-caiso', status: 200 },
  'GET /inspector/api/history': { url: '/inspector/api/history?id=node%2Fc1', caller: 'viewer-caiso', status: 200 },
  'GET /inspector/api/map': { url: '/inspector/api/map', caller: 'viewer-caiso', status: 200 },
  'GET /inspector/api/range': { url: '/inspector/api/range', caller: 'viewer-all', status: 200 },
  'GET /inspector/api/at': { url: '/inspector/api/at?geozone=CAISO&offset=1', caller: 'viewer-all', status: 200 },
};

/** Requests that reach the statuses a valid key and a well-formed request alone do not. */
const refusals: readonly (Example & { method: string; contentType?: string })[] = [
  { method: 'POST', url: '/v1/inference', payload: inferenceBody('r-known'), caller: 'developer-all', status: 409 },
  { method: 'POST', url: '/v1/inference', payload: inferenceBody('r-nomodel', 'no-such-model'), caller: 'developer-all', status: 503 },
  { method: 'POST', url: '/v1/telemetry', payload: telemetryBody('p1', { geozone: 'PJM' }), caller: 'agent-all', status: 422 },
  { method: 'POST', url: '/v1/telemetry', payload: telemetryBody('e2', { geozone: 'ERCOT' }), caller: 'agent-caiso', status: 403 },
  { method: 'POST', url: '/v1/telemetry', payload: '{"node-id":', caller: 'agent-all', status: 400 },
  { method: 'POST', url: '/v1/telemetry', payload: JSON.stringify({ pad: 'x'.repeat(40_000) }), caller: 'agent-all', status: 413 },
  { method: 'POST', url: '/v1/telemetry', payload: telemetryBody('c3'), contentType: 'text/plain', caller: 'agent-all', status: 415 },
  { method: 'GET', url: '/v1/nodes?limit=0', caller: 'viewer-all', status: 400 },
  { method: 'GET', url: '/v1/nodes/%E0%A4', caller: 'viewer-all', status: 400 },
  { method: 'GET', url: '/v1/nodes/nobody', caller: 'viewer-all', status: 404 },
  { method: 'QUERY', url: '/v1/nodes/c1', caller: 'viewer-all', status: 405 },
  { method: 'POST', url: '/telemetry', caller: 'viewer-all', status: 405 },
  { method: 'GET', url: '/inspector/api/at?geozone=NOWHERE&offset=0', caller: 'viewer-all', status: 404 },
  { method: 'GET', url: '/inspector/api/actor?id=node%2Fnobody', caller: 'viewer-all', status: 404 },
];

const hints: Hints = {
  geozone: fc.constantFrom('CAISO', 'ERCOT', 'PJM'),
  'requester-geozone': fc.constantFrom('CAISO', 'ERCOT', 'PJM'),
  'node-id': fc.constantFrom('c1', 'e1', 'n-new'),
  'model-id': fc.constantFrom('llama-3-70b', 'no-such-model'),
  'models-loaded': fc.constant(['llama-3-70b']),
  'request-id': fc.oneof(fc.constantFrom('r-known', 'r-result', 'r-1'), fc.uuid()),
  id: fc.constantFrom('c1', 'e1', 'r-known', 'node/c1', 'node/e1', 'reservation/r-known', 'nobody'),
  name: fc.constantFrom('app.js', 'index.html', 'geohash.js', 'elk.bundled.js', 'nope.js', '../register.js'),
  timestamp: fc.date({ min: new Date(Date.now() - 60_000), max: new Date(Date.now() + 1_000), noInvalidDate: true }).map((d) => d.toISOString()),
  status: fc.constantFrom('online', 'draining', 'offline', 'completed', 'failed'),
  time: fc.constantFrom(0, Date.now(), new Date().toISOString()),
};

const answerOf = (reply: { statusCode: number; headers: ReceivedAnswer['headers']; body: string }): ReceivedAnswer => ({ status: reply.statusCode, headers: reply.headers, body: reply.body });

async function inject(region: Region, request: ApiRequest): Promise<ReceivedAnswer> {
  const reply = await region.app.inject({
    method: request.method as 'GET',
    url: request.url,
    headers: request.headers,
    ...(request.payload === undefined ? {} : { payload: request.payload }),
  });
  return answerOf(reply);
}

/** Checks one answer; returns a line per broken promise (empty when it keeps the contract). */
function broken(region: Region, request: ApiRequest, answer: ReceivedAnswer): string[] {
  return region.contract.violations(request, answer).map((v) => `${request.method} ${request.url.slice(0, 120)} as ${request.headers['authorization']?.slice(0, 12) ?? 'no key'}: ${v}`);
}

function report(t: ExecutionContext, failures: readonly string[], statuses: Map<number, number>, what: string): void {
  t.log(`${what}: ${[...statuses].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}x${n}`).join(' ')}`);
  t.deepEqual(failures.slice(0, 10), [], `${failures.length} answers broke the contract`);
}

const tally = (statuses: Map<number, number>, status: number): void => void statuses.set(status, (statuses.get(status) ?? 0) + 1);

test.serial('every documented operation has a working example, and the document covers the region, the inspector and the console', async (t) => {
  await withContractRegion(async (region) => {
    const documented = region.contract.operations.map((o) => `${o.method} ${o.path}`).sort();
    t.deepEqual(documented, Object.keys(examples).sort(), 'each operation in /openapi.json has an example here, and each example an operation');
    const failures: string[] = [];
    for (const [operation, example] of Object.entries(examples)) {
      const request: ApiRequest = {
        method: operation.split(' ')[0] as string,
        url: example.url,
        headers: { ...region.auth(example.caller), ...(example.payload === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(example.payload === undefined ? {} : { payload: example.payload }),
      };
      const answer = await inject(region, request);
      t.is(answer.status, example.status, `${operation}: ${answer.body.slice(0, 200)}`);
      failures.push(...broken(region, request, answer));
    }
    for (const refusal of refusals) {
      const request: ApiRequest = {
        method: refusal.method,
        url: refusal.url,
        headers: { ...region.auth(refusal.caller), ...(refusal.payload === undefined ? {} : { 'content-type': refusal.contentType ?? 'application/json' }) },
        ...(refusal.payload === undefined ? {} : { payload: refusal.payload }),
      };
      const answer = await inject(region, request);
      t.is(answer.status, refusal.status, `${refusal.method} ${refusal.url}: ${answer.body.slice(0, 200)}`);
      failures.push(...broken(region, request, answer));
    }
    // An empty segment where the document names a parameter is no documented path, whatever the method
    // (the router alone would match it with an empty value; the fuzzer found PUT /inspector/assets/ answered 405).
    for (const [method, url] of [['PUT', '/inspector/assets/'], ['GET', '/inspector/assets/'], ['DELETE', '/v1/nodes/'], ['GET', '/v1/nodes/']] as const) {
      const request: ApiRequest = { method, url, headers: region.auth('operator-all') };
      const answer = await inject(region, request);
      t.is(answer.status, 404, `${method} ${url}: ${answer.body.slice(0, 200)}`);
      failures.push(...broken(region, request, answer));
    }
    t.deepEqual(failures, []);

    // The check itself refuses answers of the kinds an OpenAPI fuzzer reported before these were fixed.
    const json = { 'content-type': 'application/json; charset=utf-8' };
    const refused = (method: string, url: string, status: number, body: unknown, headers: Record<string, string> = json): boolean =>
      region.contract.violations({ method, url }, { status, headers, body: JSON.stringify(body) }).length > 0;
    t.true(refused('QUERY', '/v1/nodes/x', 500, { code: 'ARC_ERR_INVARIANT', message: 'internal error' }), 'a 500 for an unknown method');
    t.true(refused('PUT', '/v1/nodes/x', 404, { code: 'ARC_ERR_NOT_FOUND', message: 'no such route' }), 'a 404 for a method the path does not have');
    t.true(refused('PUT', '/v1/nodes/x', 405, { code: 'ARC_ERR_METHOD_NOT_ALLOWED', message: 'no' }, { ...json, allow: 'GET' }), 'an Allow without HEAD');
    t.true(refused('POST', '/v1/inference', 503, { code: 'ARC_ERR_OVERLOADED', message: 'later', retry: true }), 'a field the 503 schema forbids');
    t.true(refused('POST', '/v1/telemetry', 400, { error: 'Bad Request', code: 'ARC_ERR_VALIDATION', message: 'x', statusCode: 400 }), 'a field the 400 schema forbids');
    t.true(refused('GET', '/v1/nodes', 422, { code: 'ARC_ERR_UNKNOWN_SHARD', message: 'x' }), 'an undocumented status');
    t.true(refused('GET', '/v1/nodes', 401, { code: 'ARC_ERR_UNAUTHENTICATED', message: 'x' }), 'a 401 without WWW-Authenticate');
    t.false(refused('GET', '/v1/nodes', 401, { code: 'ARC_ERR_UNAUTHENTICATED', message: 'x' }, { ...json, 'www-authenticate': 'Bearer' }), 'the same 401 with it');
  });
});

test.serial('every operation, every caller, every method: each answer is documented and matches its schema', async (t) => {
  await withContractRegion(async (region) => {
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    const check = async (request: ApiRequest): Promise<void> => {
      const answer = await inject(region, request);
      tally(statuses, answer.status);
      failures.push(...broken(region, request, answer));
    };
    for (const operation of region.contract.operations) {
      const example = examples[`${operation.method} ${operation.path}`] as Example;
      for (const caller of region.callers) {
        await check({
          method: operation.method,
          url: example.url,
          headers: { ...region.auth(caller), ...(example.payload === undefined ? {} : { 'content-type': 'application/json' }) },
          ...(example.payload === undefined ? {} : { payload: example.payload }),
        });
      }
    }
    // Every method on every path, with a key that may do anything: 405 with Allow for those the path does not have.
    for (const path of new Set(region.contract.operations.map((o) => o.path))) {
      const example = Object.entries(examples).find(([operation]) => operation.endsWith(` ${path}`))?.[1] as Example;
      for (const method of otherMethods) await check({ method, url: example.url, headers: region.auth('operator-all') });
    }
    report(t, failures, statuses, 'answers by status');
    for (const status of [200, 201, 202, 401, 403, 405, 426]) t.true(statuses.has(status), `some answer was ${status}`);
  });
});

/** Any documented operation with random requests, or a path the document does not have. */
function anyRequest(region: Region): fc.Arbitrary<ApiRequest> {
  const callers = fc.constantFrom(...region.callers).map((caller) => region.auth(caller));
  const documented = fc.constantFrom(...region.contract.operations).chain((operation: Operation) => requestsFor(operation, hints, callers));
  const unknown = fc.record({ method: fc.constantFrom(...otherMethods), url: unknownPaths(region.contract.operations), headers: callers });
  return fc.oneof({ weight: 12, arbitrary: documented }, { weight: 1, arbitrary: unknown });
}

test.serial('random requests (valid and broken paths, queries, bodies, content types, methods, keys) get documented answers', async (t) => {
  await withContractRegion(async (region) => {
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(anyRequest(region), async (request) => {
        const answer = await inject(region, request);
        tally(statuses, answer.status);
        const problems = broken(region, request, answer);
        if (problems.length > 0) throw new Error(problems.join('\n'));
      }),
      { numRuns: 700 },
    );
    report(t, [], statuses, 'random answers by status');
    // The run reached well past the guard (rarer statuses are reached on purpose in the first test).
    for (const status of [200, 400, 401, 403, 404, 405]) t.true(statuses.has(status), `some random request was answered ${status}`);
  });
});

/** One exchange on a fresh connection, read until the server closes it (or, for a 101, until the head is complete). */
function rawExchange(port: number, text: string): Promise<ReceivedAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(text));
    let received = Buffer.alloc(0);
    const parse = (): ReceivedAnswer | undefined => {
      const headEnd = received.indexOf('\r\n\r\n');
      if (headEnd < 0) return undefined;
      const [statusLine = '', ...lines] = received.subarray(0, headEnd).toString('latin1').split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const status = Number(statusLine.split(' ')[1]);
      const body = received.subarray(headEnd + 4);
      const length = Number(headers['content-length'] ?? (status === 101 ? 0 : Number.NaN));
      if (Number.isFinite(length) && body.length < length) return undefined;
      return { status, headers, body: body.subarray(0, Number.isFinite(length) ? length : body.length).toString('utf8') };
    };
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const answer = parse();
      if (answer !== undefined) {
        socket.destroy();
        resolve(answer);
      }
    });
    socket.on('error', reject);
    socket.on('close', () => {
      const answer = parse();
      if (answer === undefined) reject(new Error(`the connection closed without a complete answer to ${JSON.stringify(text.split('\r\n')[0])}: ${JSON.stringify(received.toString('latin1'))}`));
      else resolve(answer);
    });
  });
}

test.serial('over real sockets: unknown methods, CONNECT, WebSocket upgrades and random requests keep the contract', async (t) => {
  await withContractRegion(async (region) => {
    const hub = new ConsoleHub({
      authorize: (request) => {
        const admitted = region.guard.admitUpgrade(request);
        if (!('status' in admitted)) return Promise.resolve({ ok: true, geozones: admitted.geozones });
        return Promise.resolve({ ok: false, status: admitted.status, code: admitted.code, message: admitted.message });
      },
    });
    hub.attach(region.app.server);
    try {
      const address = await region.app.listen({ host: '127.0.0.1', port: 0 });
      const port = Number(new URL(address).port);
      const failures: string[] = [];
      const statuses = new Map<number, number>();
      const checkRaw = async (method: string, url: string, headers: Record<string, string> = {}): Promise<ReceivedAnswer> => {
        const head = Object.entries({ host: '127.0.0.1', connection: 'close', ...headers }).map(([name, value]) => `${name}: ${value}\r\n`).join('');
        const answer = await rawExchange(port, `${method} ${url} HTTP/1.1\r\n${head}\r\n`);
        tally(statuses, answer.status);
        failures.push(...broken(region, { method, url, headers }, answer));
        return answer;
      };
      // Methods Node's parser does not know, CONNECT, and a QUERY without a content-type: never a 500.
      for (const url of ['/v1/nodes/c1', '/healthz', '/telemetry', '/inspector/api/info', '/no/such/path']) {
        for (const method of ['FOO', 'BREW', 'CONNECT', 'QUERY']) {
          const answer = await checkRaw(method, url, region.auth('operator-all'));
          t.true(answer.status === 404 || answer.status === 405, `${method} ${url}: ${answer.status}`);
        }
      }
      // The console: an upgrade per caller (101 or a documented refusal), a plain GET, a bad filter.
      const upgrade = { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' };
      for (const caller of region.callers) {
        const answer = await checkRaw('GET', '/telemetry', { ...upgrade, ...region.auth(caller) });
        t.is(answer.status, caller.startsWith('agent') ? 403 : caller.includes('-') ? 101 : 401, caller);
      }
      t.is((await checkRaw('GET', '/telemetry?types=nonsense', { ...upgrade, ...region.auth('viewer-all') })).status, 400);
      t.is((await checkRaw('GET', '/telemetry', region.auth('viewer-all'))).status, 426);

      // Random requests over HTTP/1.1 (undici), as a client on the network sends them.
      await fc.assert(
        fc.asyncProperty(anyRequest(region), async (request) => {
          const response = await httpRequest(`${address}${request.url}`, {
            method: request.method,
            headers: request.headers,
            ...(request.payload === undefined ? {} : { body: request.payload }),
          });
          const answer: ReceivedAnswer = { status: response.statusCode, headers: response.headers, body: await response.body.text() };
          tally(statuses, answer.status);
          const problems = broken(region, request, answer);
          if (problems.length > 0) throw new Error(problems.join('\n'));
        }),
        { numRuns: 120 },
      );
      report(t, failures, statuses, 'socket answers by status');
    } finally {
      await hub.close();
    }
  });
});

test.serial('a spent request budget: 429 with Retry-After, documented on every guarded operation', async (t) => {
  await withContractRegion(
    async (region) => {
      const failures: string[] = [];
      const statuses = new Map<number, number>();
      for (const caller of ['viewer-all', 'developer-all', 'operator-all', 'agent-all']) {
        for (const operation of region.contract.operations) {
          const example = examples[`${operation.method} ${operation.path}`] as Example;
          const request: ApiRequest = {
            method: operation.method,
            url: example.url,
            headers: { ...region.auth(caller), ...(example.payload === undefined ? {} : { 'content-type': 'application/json' }) },
            ...(example.payload === undefined ? {} : { payload: example.payload }),
          };
          const answer = await inject(region, request);
          tally(statuses, answer.status);
          failures.push(...broken(region, request, answer));
          if (answer.status === 429) t.true(Number(answer.headers['retry-after']) >= 1);
        }
      }
      report(t, failures, statuses, 'answers by status');
      t.true((statuses.get(429) ?? 0) > 20, 'most guarded requests were refused for the budget');
    },
    // The setup's four requests use operator-all's budget; every key gets a few, then waits.
    { ratePerSec: 0.001, burst: 6 },
  );
});
