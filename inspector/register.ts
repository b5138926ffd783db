import { parseQuery } from '../adapters/http/api-schemas.js';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { errorReplyOf, type StatusOfCode } from '../adapters/http/error-replies.js';
import type { GuardedRoutes } from '../adapters/http/guard-hook.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import { inspectedMachines, machineDiagrams, type InspectedMachine } from './machines.js';
import { describeInspectorRoutes, type InspectorAnswer } from './route-docs.js';
import type { TimePoint } from './point-in-time.js';
import { MAX_HISTORY_ENTRIES, MAX_PAGE_ROWS, type InspectorSource } from './source.js';

/**
 * The inspector's routes: the page at `/inspector` (public: it holds no data,
 * and asks for a key) and its JSON API under `/inspector/api/`, every route of
 * which needs the `read` permission and answers only about the caller's
 * geozones. Mounted by `arcnet inspect` on its own server, and by the region
 * inside its guarded route plugin.
 */
export interface InspectorOptions {
  readonly source: InspectorSource;
  readonly routes: GuardedRoutes;
  /** The console WebSocket path the page may use for live `actors` messages (null: the page polls). */
  readonly consolePath?: string | null;
  /** Where the page's files are (found beside the sources by default). */
  readonly pageDir?: string;
  readonly machines?: readonly InspectedMachine[];
}

const contentTypes: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** Only what the page itself serves; no inline script or style, no other origin. */
const contentSecurityPolicy = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self' ws: wss:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const httpStatusOf: StatusOfCode = {
  [ErrorCodes.VALIDATION]: 400,
  [ErrorCodes.NOT_FOUND]: 404,
  // Time travel without a store (or its key) is a missing capability of this server, not a bad request.
  [ErrorCodes.NO_JOURNAL]: 501,
  [ErrorCodes.DATA_KEY]: 501,
  // A newer time-travel request took its place.
  [ErrorCodes.OVERLOADED]: 409,
  [ErrorCodes.SHARD_STOPPED]: 503,
  [ErrorCodes.REPLAY_DIVERGED]: 500,
};

function sendError(reply: FastifyReply, error: unknown): FastifyReply {
  const { status, body } = errorReplyOf(error, httpStatusOf);
  // Code and message only: an error's details may name shards of geozones the caller does not reach.
  return reply.code(status).send({ code: body.code, message: body.message });
}

const text = (max: number) => z.string().min(1).max(max);
const count = z.coerce.number().int().nonnegative();

const actorsQuery = z.strictObject({
  q: z.string().max(128).optional(),
  kind: text(64).optional(),
  state: text(128).optional(),
  geozone: text(32).optional(),
  offset: count.max(10_000_000).default(0),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE_ROWS).default(100),
});
const actorQuery = z.strictObject({ id: text(300) });
const historyQuery = z.strictObject({
  id: text(300),
  before: count.optional(),
  limit: z.coerce.number().int().min(1).max(MAX_HISTORY_ENTRIES).default(200),
});
const pointTime = z.union([z.coerce.number().int(), z.iso.datetime({ offset: true })]);
const pointQuery = z.union([z.strictObject({ geozone: text(32), offset: count }), z.strictObject({ time: pointTime })]);
/** pointQuery as one object of query parameters (what OpenAPI can list): either geozone and offset, or time. */
const pointQueryParameters = z.strictObject({
  geozone: text(32).optional().describe('with offset: the geozone whose journal offset is meant'),
  offset: count.optional().describe('with geozone: a journal offset of that geozone'),
  time: pointTime.optional().describe('instead of geozone and offset: a logical time (ms or ISO-8601)'),
});

function pointOf(query: z.infer<typeof pointQuery>): TimePoint {
  if ('offset' in query) return { geozone: query.geozone, offset: query.offset };
  return { atMs: typeof query.time === 'number' ? query.time : Date.parse(query.time) };
}

/** The folder holding the page's files: inspector/page beside the sources, searched upwards from the compiled module. */
export function defaultPageDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'inspector', 'page');
    if (existsSync(join(candidate, 'index.html'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new ArcError(ErrorCodes.NOT_FOUND, 'the inspector page (inspector/page/index.html) is not installed beside this build');
    dir = parent;
  }
}

function loadAssets(pageDir: string): Map<string, { body: Buffer; type: string }> {
  const assets = new Map<string, { body: Buffer; type: string }>();
  for (const name of readdirSync(pageDir)) {
    const type = contentTypes[extname(name)];
    if (type !== undefined) assets.set(name, { body: readFileSync(join(pageDir, name)), type });
  }
  // Modules shared with the server: the geohash decoder as compiled from simulations/.
  assets.set('geohash.js', { body: readFileSync(fileURLToPath(new URL('../actors/geohash.js', import.meta.url))), type: contentTypes['.js'] as string });
  return assets;
}

/** The elkjs bundle, for a page that wants to lay out graphs itself (the inspector's own diagrams come laid out). */
function elkBundle(): Buffer {
  return readFileSync(createRequire(import.meta.url).resolve('elkjs/lib/elk.bundled.js'));
}

export function registerInspector(app: FastifyInstance, options: InspectorOptions): void {
  const { source, routes } = options;
  const assets = loadAssets(options.pageDir ?? defaultPageDir());
  // Laid out on first use, not at start: the layout costs about a second of CPU that a region
  // nobody inspects should not pay. Layout errors surface on the route that needs them.
  let diagrams: Promise<Awaited<ReturnType<typeof machineDiagrams>>> | undefined;
  const laidOut = (): Promise<Awaited<ReturnType<typeof machineDiagrams>>> => (diagrams ??= machineDiagrams(options.machines ?? inspectedMachines));
  const read = { permission: 'read' } as const;
  const docs = describeInspectorRoutes(httpStatusOf, { actors: actorsQuery, actor: actorQuery, history: historyQuery, at: pointQueryParameters });
  // The schemas only document: validation is zod's, in the handlers, and bodies are plain JSON, whatever server mounts these.
  const documented = (schema: Record<string, unknown>) => ({
    schema,
    validatorCompiler: () => () => true,
    serializerCompiler: () => (data: unknown) => JSON.stringify(data),
  });

  const page = (reply: FastifyReply): FastifyReply => {
    const index = assets.get('index.html');
    if (index === undefined) return reply.code(404).send({ code: ErrorCodes.NOT_FOUND, message: 'no inspector page' });
    return reply
      .header('content-type', index.type)
      .header('content-security-policy', contentSecurityPolicy)
      .header('referrer-policy', 'no-referrer')
      .header('x-content-type-options', 'nosniff')
      .header('cache-control', 'no-cache')
      .send(index.body);
  };
  app.get('/inspector', documented(docs.page), (_request, reply) => page(reply));
  app.get('/inspector/', documented(docs.page), (_request, reply) => page(reply));
  app.get('/inspector/assets/:name', documented(docs.asset), (request, reply) => {
    const asset = assets.get((request.params as { name: string }).name);
    if (asset === undefined) return reply.code(404).send({ code: ErrorCodes.NOT_FOUND, message: 'no such asset' });
    return reply.header('content-type', asset.type).header('x-content-type-options', 'nosniff').header('cache-control', 'no-cache').send(asset.body);
  });
  let elk: Buffer | undefined;
  app.get('/inspector/assets/elk.bundled.js', documented(docs.elk), (_request, reply) => {
    elk ??= elkBundle();
    return reply.header('content-type', contentTypes['.js'] ?? 'text/javascript').header('cache-control', 'max-age=3600').send(elk);
  });

  /** JSON answers are about one caller: never cached by anything in between. */
  const api = <T>(path: InspectorAnswer, answer: (request: FastifyRequest) => T | Promise<T>): void => {
    app.get(`/inspector/api/${path}`, { config: read, ...documented(docs.api[path]) }, async (request, reply) => {
      try {
        const body = await answer(request);
        if (body === undefined) return await reply.code(404).header('cache-control', 'no-store').send({ code: ErrorCodes.NOT_FOUND, message: 'no such actor in the geozones this key reaches' });
        return await reply.header('cache-control', 'no-store').send(body);
      } catch (error) {
        return sendError(reply.header('cache-control', 'no-store'), error);
      }
    });
  };

  api('info', (request) => {
    const principal = routes.principalOf(request);
    return {
      mode: source.mode,
      geozones: source.geozones(routes.scopeOf(request)),
      timeTravel: source.timeTravelAvailable,
      consolePath: options.consolePath ?? null,
      key: { id: principal.keyId, role: principal.role },
    };
  });
  api('machines', async () => ({ machines: await laidOut() }));
  api('counts', (request) => ({ geozones: source.counts(routes.scopeOf(request)) }));
  api('actors', (request) => source.actors(parseQuery(actorsQuery, request.query), routes.scopeOf(request)));
  api('actor', (request) => source.actor(parseQuery(actorQuery, request.query).id, routes.scopeOf(request)));
  api('history', (request) => {
    const query = parseQuery(historyQuery, request.query);
    return source.history(query.id, { before: query.before, limit: query.limit }, routes.scopeOf(request));
  });
  api('map', (request) => ({ geozones: source.nodeMap(routes.scopeOf(request)) }));
  api('range', (request) => ({ geozones: source.journalRange(routes.scopeOf(request)) }));
  api('at', (request) => source.timeTravel(pointOf(parseQuery(pointQuery, request.query)), routes.scopeOf(request)));
}
