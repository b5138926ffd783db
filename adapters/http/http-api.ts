import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { maxHeaderSize } from 'node:http';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type { RegionalSummary, RegionEffect } from '../../actors/region-io.js';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { effectToWire } from '../bus/topics.js';
import { inScope, type RequestGuard } from './access.js';
import { installGuard, type GuardedRoutes } from './guard-hook.js';
import { describeAgentRoute, describeConsoleRoute, describeRoutes, parseQuery, historyQuerySchema, nodesQuerySchema, type HistoryQuery, type NodesQuery } from './api-schemas.js';
import { sendError } from './error-replies.js';
import { documentStandardResponses } from './response-docs.js';
import { routeMisses } from './route-misses.js';

/**
 * The region's HTTP API (fastify): health, readiness, inference submission that
 * answers once its decision is durable, telemetry and results for node agents,
 * node, reservation and summary views, a node's history from the journal,
 * operator actions, metrics, and tickets for the console WebSocket.
 *
 * Who may do what is decided before the body is read (onRequest: key, role,
 * rate budget); which geozones a key reaches is decided on the resource, so a
 * key scoped to CAISO sees and touches nothing of ERCOT. Bodies are taken as raw
 * text and validated by the region's own edge (size, JSON, strict schema), so
 * every refusal carries an ARC_ERR_* code. The zod schemas that validate are the
 * ones the OpenAPI document at /openapi.json (browsable at /docs) is made from,
 * and it lists every status each route can answer, with its body's schema.
 * A path asked with a method it does not take is answered 405 (Allow lists its
 * methods), an unknown path 404, both before any body is read.
 */
export type DecisionView = Extract<RegionEffect, { type: 'decision' }>;

/** Which geozones a call may reach. */
export type Scope = (geozone: string) => boolean;

/** What the caller sent besides the body that the region may use (a W3C trace context to continue). */
export interface CallerContext {
  readonly traceparent?: string | undefined;
}

export interface RegionApi {
  ready(): boolean;
  /** Why the region is not ready (no geozone names: /readyz answers anyone). */
  notReadyReason?(): string | undefined;
  /** Which geozones this process owns and whether each has recovered, and its journal. */
  ownership(): { journal: 'lmdb' | 'kafka'; geozones: { geozone: string; ready: boolean }[] };
  /** Validates and routes an inference request; resolves with the durable decision. */
  infer(body: string, scope: Scope, caller?: CallerContext): Promise<DecisionView>;
  /** Validates and applies telemetry or a result; resolves once durable. */
  ingest(kind: 'telemetry' | 'result', body: string, scope: Scope): Promise<void>;
  nodes(filter: NodesQuery, scope: Scope): { nodes: Record<string, unknown>[]; next: string | null };
  node(nodeId: string): (Record<string, unknown> & { geozone: string }) | undefined;
  /** The node as of a time or offset and its changes over a range; undefined when no shard knows it. */
  nodeHistory(nodeId: string, query: HistoryQuery, scope: Scope): Promise<Record<string, unknown> | undefined>;
  reservation(requestId: string): (Record<string, unknown> & { geozone: string }) | undefined;
  summary(): RegionalSummary[];
  /** Operator actions: a draining node takes no new reservation. False when the node is unknown (or out of scope). */
  drain(nodeId: string, drain: boolean, scope: Scope): Promise<boolean>;
  /** Prometheus text exposition. */
  metrics(): Promise<{ contentType: string; body: string }>;
  /** The federated path (its routes are served only when present). */
  training?: TrainingApi;
}

export interface TrainingApi {
  /** Validates a FederatedTask v1 and starts the job; resolves with the job document once durable (ARC_ERR_DUPLICATE_JOB for a used id). */
  submit(body: string, scope: Scope): Promise<Record<string, unknown>>;
  /** Validates a TrainingUpdate v1, stores its weights and applies it; resolves once durable. */
  update(body: string, scope: Scope): Promise<void>;
  /** A job's document (rounds, participants, stragglers, accuracy); undefined when unknown or out of scope. */
  job(jobId: string, scope: Scope): Record<string, unknown> | undefined;
}

export interface HttpApiOptions {
  /** Largest request body in bytes; larger ones get 413 before parsing. */
  readonly bodyLimitBytes: number;
  readonly logger?: FastifyServerOptions['logger'];
  /** API keys, roles and rate limits; the API is open when absent. */
  readonly guard?: RequestGuard | undefined;
  /** Serve HTTPS with these options (TLS 1.3 minimum, optional client certificates). */
  readonly https?: HttpsServerOptions | undefined;
  /** More routes on the same server, guarded the same way (the inspector). */
  readonly extraRoutes?: ((routes: FastifyInstance, guarded: GuardedRoutes) => void) | undefined;
  /**
   * The path the console WebSocket answers upgrades on (its hub attached to
   * `app.server`); documented here, and a plain request there is told to
   * upgrade (426) or that the method is wrong (405).
   */
  readonly consolePath?: string | undefined;
  /** Where the agent channel serves node agents (documented, and a plain GET told to upgrade). */
  readonly agentPath?: string | undefined;
}

/**
 * Longest path parameter the router matches, in bytes of the raw URL: as long
 * as a request head may be (Node's maxHeaderSize), so the head is the only
 * bound. A lower one would make a long id "no such route" (404 for every
 * method) instead of "no such node", and a wrong method on it 404, not 405.
 */
export const MAX_PATH_PARAM_BYTES = maxHeaderSize;

const notFound = (what: string): ArcError => new ArcError(ErrorCodes.NOT_FOUND, `no such ${what}`);

/** The raw body as the content-type parser left it (text); anything else is refused by the edge. */
function bodyText(body: unknown): string {
  return typeof body === 'string' ? body : '';
}

/**
 * A fastify server that answers like every ArcNet server: coded error bodies for
 * what fastify or Node's parser refuse, 405 with Allow for a method a path does
 * not take, 404 for no path, bodies kept as text for the edge to validate. The
 * region's API and the standalone inspector are both built on it.
 */
export function baseServer(options: Pick<HttpApiOptions, 'bodyLimitBytes' | 'logger' | 'https'>): FastifyInstance {
  const misses = routeMisses();
  const serverOptions = {
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimitBytes,
    routerOptions: { maxParamLength: MAX_PATH_PARAM_BYTES },
    // Refusals fastify makes before routing (an undecodable URL) get the same coded body as every other.
    frameworkErrors: (error: Error, _request: FastifyRequest, reply: FastifyReply) => sendError(reply, error),
    // ...and so do requests Node's HTTP parser refuses (an unknown method is answered 405 for its path).
    clientErrorHandler: misses.onClientError,
  };
  const app = (options.https === undefined ? Fastify(serverOptions) : Fastify({ ...serverOptions, https: options.https })) as unknown as FastifyInstance;
  misses.install(app);
  documentStandardResponses(app);
  // Bodies stay text: the region's edge checks size, JSON and schema with its own coded errors.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => done(null, body));
  // Route schemas document the API; validation is zod's (above and in the edge), serialisation plain JSON.
  app.setValidatorCompiler(() => () => true);
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.setErrorHandler((error, _request, reply) => sendError(reply, error));
  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ code: ErrorCodes.NOT_FOUND, message: 'no such route' }));
  return app;
}

export function buildHttpApi(api: RegionApi, options: HttpApiOptions): FastifyInstance {
  const app = baseServer(options);
  const guard = options.guard;
  const guarded = installGuard(app, guard);
  const { principalOf, scopeOf, outOfScope } = guarded;

  const forbiddenToReply = (reply: FastifyReply, request: FastifyRequest, error: unknown): FastifyReply =>
    error instanceof ArcError && error.code === ErrorCodes.FORBIDDEN ? outOfScope(reply, request) : sendError(reply, error);

  const docs = describeRoutes();
  void app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'ArcNet regional runtime API',
        version: '1',
        description: 'Inference routing, node telemetry and results, node views and history, operator actions. Bodies use the seed wire formats (kebab-case JSON).',
      },
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'An ArcNet API key (arcnet keys create)' } } },
    },
  });
  void app.register(swaggerUi, { routePrefix: '/docs' });

  // Routes go in a plugin registered after swagger, so that swagger sees each of them.
  void app.register((routes, _options, registered) => {
    routes.get('/openapi.json', { schema: { hide: true } }, () => routes.swagger());
    routes.get('/healthz', { schema: docs.healthz }, () => ({ status: 'ok' }));
    routes.get('/readyz', { schema: docs.readyz }, (_request, reply) => {
      if (api.ready()) return { status: 'ready' };
      const reason = api.notReadyReason?.();
      return reply.code(503).send({ status: 'recovering', ...(reason === undefined ? {} : { reason: reason.slice(0, 512) }) });
    });
    routes.get('/v1/ownership', { schema: docs.ownership, config: { permission: 'read' } }, (request) => {
      const { journal, geozones } = api.ownership();
      return { journal, geozones: geozones.filter((g) => inScope(principalOf(request), g.geozone)) };
    });

    routes.post('/v1/inference', { schema: docs.inference, config: { permission: 'infer' } }, async (request, reply) => {
      try {
        const traceparent = request.headers.traceparent;
        const decision = await api.infer(bodyText(request.body), scopeOf(request), { traceparent: typeof traceparent === 'string' ? traceparent : undefined });
        // The same InferenceDecision v1 a Kafka requester reads from arc.decision.inference.
        const body = effectToWire(decision)?.message;
        if (decision.outcome === 'reserved') return await reply.code(202).send(body);
        if (decision.outcome === 'duplicate') return await reply.code(409).send({ code: ErrorCodes.DUPLICATE_REQUEST, message: decision.reason, ...body });
        return await reply.code(503).send({ code: ErrorCodes.NO_CAPACITY, message: decision.reason, ...body });
      } catch (error) {
        return forbiddenToReply(reply, request, error);
      }
    });

    for (const [path, kind] of [
      ['/v1/telemetry', 'telemetry'],
      ['/v1/results', 'result'],
    ] as const) {
      routes.post(path, { schema: kind === 'telemetry' ? docs.telemetry : docs.result, config: { permission: 'ingest' } }, async (request, reply) => {
        try {
          await api.ingest(kind, bodyText(request.body), scopeOf(request));
          return await reply.code(202).send({ accepted: true });
        } catch (error) {
          return forbiddenToReply(reply, request, error);
        }
      });
    }

    const training = api.training;
    if (training !== undefined) {
      routes.post('/v1/training', { schema: docs.training, config: { permission: 'infer' } }, async (request, reply) => {
        try {
          return await reply.code(202).send(await training.submit(bodyText(request.body), scopeOf(request)));
        } catch (error) {
          return forbiddenToReply(reply, request, error);
        }
      });
      routes.post('/v1/training/updates', { schema: docs.trainingUpdate, config: { permission: 'ingest' } }, async (request, reply) => {
        try {
          await training.update(bodyText(request.body), scopeOf(request));
          return await reply.code(202).send({ accepted: true });
        } catch (error) {
          return forbiddenToReply(reply, request, error);
        }
      });
      routes.get('/v1/training/:id', { schema: docs.trainingJob, config: { permission: 'read' } }, (request) => {
        const job = training.job((request.params as { id: string }).id, scopeOf(request));
        if (job === undefined) throw notFound('training job');
        return job;
      });
    }

    routes.get('/v1/nodes', { schema: docs.nodes, config: { permission: 'read' } }, (request, reply) => {
      const query = parseQuery(nodesQuerySchema, request.query);
      if (query.geozone !== undefined && !inScope(principalOf(request), query.geozone)) return outOfScope(reply, request);
      return api.nodes(query, scopeOf(request));
    });
    routes.get('/v1/nodes/:id', { schema: docs.node, config: { permission: 'read' } }, (request) => {
      const node = api.node((request.params as { id: string }).id);
      // Out of scope answers like unknown: a key learns nothing about other geozones.
      if (node === undefined || !inScope(principalOf(request), node.geozone)) throw notFound('node');
      return node;
    });
    routes.get('/v1/nodes/:id/history', { schema: docs.history, config: { permission: 'read' } }, async (request) => {
      const query = parseQuery(historyQuerySchema, request.query);
      const history = await api.nodeHistory((request.params as { id: string }).id, query, scopeOf(request));
      if (history === undefined) throw notFound('node');
      return history;
    });
    routes.get('/v1/reservations/:id', { schema: docs.reservation, config: { permission: 'read' } }, (request) => {
      const reservation = api.reservation((request.params as { id: string }).id);
      if (reservation === undefined || !inScope(principalOf(request), reservation.geozone)) throw notFound('live reservation with that request id');
      return reservation;
    });
    routes.get('/v1/summary', { schema: docs.summary, config: { permission: 'read' } }, (request) => ({
      summaries: api.summary().filter((s) => inScope(principalOf(request), s.geozoneId)),
    }));
    for (const [action, drain] of [
      ['drain', true],
      ['resume', false],
    ] as const) {
      routes.post(`/v1/nodes/:id/${action}`, { schema: drain ? docs.drain : docs.resume, config: { permission: 'operate' } }, async (request, reply) => {
        const known = await api.drain((request.params as { id: string }).id, drain, scopeOf(request));
        if (!known) throw notFound('node');
        return reply.code(202).send({ accepted: true });
      });
    }
    routes.post('/v1/console/tickets', { schema: docs.ticket, config: { permission: 'read' } }, (request, reply) => {
      if (guard === undefined) return reply.code(404).send({ code: ErrorCodes.NOT_FOUND, message: 'no API keys are configured: connect to /telemetry directly' });
      const { ticket, expiresAtMs } = guard.issueTicket(principalOf(request));
      return reply.code(201).send({ ticket, 'expires-at': new Date(expiresAtMs).toISOString() });
    });
    routes.get('/metrics', { schema: docs.metrics, config: { permission: 'read' } }, async (request, reply) => {
      // The exposition covers every geozone: only a key that reaches them all may scrape it.
      if (principalOf(request).geozones !== 'all') return outOfScope(reply, request);
      const { contentType, body } = await api.metrics();
      return reply.header('content-type', contentType).send(body);
    });
    // Upgrades never reach fastify (the console hub and the agent channel take them from the server's
    // 'upgrade' event); plain requests do, and are told to upgrade.
    // The console checks its key in its upgrade handler; /v1/agent, under /v1, is guarded here too (agent data).
    for (const [path, schema, config] of [
      [options.consolePath, describeConsoleRoute(), {}],
      [options.agentPath, describeAgentRoute(), { permission: 'ingest' as const }],
    ] as const) {
      if (path === undefined) continue;
      routes.get(path, { schema, config }, (_request, reply) =>
        reply
          .code(426)
          .header('upgrade', 'websocket')
          .send({ code: ErrorCodes.UPGRADE_REQUIRED, message: `${path} is a WebSocket endpoint: connect with a WebSocket client (ws:// or wss://)` }),
      );
    }
    options.extraRoutes?.(routes, guarded);
    registered();
  });
  return app;
}
