import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { ArcError, ErrorCodes, type ErrorCode } from '../../runtime/errors.js';

/**
 * The region's HTTP API (fastify): health, readiness, inference submission that
 * answers once the routing decision is durable, telemetry and results for node
 * agents, and read-only views of nodes, reservations and summaries. Bodies are
 * taken as raw text and validated by the region's own edge (size, JSON, strict
 * schema), so every refusal carries an ARC_ERR_* code.
 */
export interface DecisionView {
  readonly outcome: 'reserved' | 'rejected' | 'duplicate';
  readonly requestId: string;
  readonly geozone: string;
  readonly nodeId?: string | undefined;
  readonly expiresAtMs?: number | undefined;
  readonly candidates: number;
  readonly reason: string;
}

export interface RegionApi {
  ready(): boolean;
  /** Validates and routes an inference request; resolves with the durable decision. */
  infer(body: string): Promise<DecisionView>;
  /** Validates and applies telemetry or a result; resolves once durable. */
  ingest(kind: 'telemetry' | 'result', body: string): Promise<void>;
  nodes(filter: { geozone?: string | undefined; status?: string | undefined; model?: string | undefined }): Record<string, unknown>[];
  node(nodeId: string): Record<string, unknown> | undefined;
  reservation(requestId: string): Record<string, unknown> | undefined;
  summary(): Record<string, unknown>[];
  /** Operator actions: a draining node takes no new reservation. False when the node is unknown. */
  drain(nodeId: string, drain: boolean): Promise<boolean>;
  /** Prometheus text exposition. */
  metrics(): Promise<{ contentType: string; body: string }>;
}

export interface HttpApiOptions {
  /** Largest request body in bytes; larger ones get 413 before parsing. */
  readonly bodyLimitBytes: number;
  readonly logger?: boolean;
}

const statusOf: Partial<Record<ErrorCode, number>> = {
  [ErrorCodes.VALIDATION]: 400,
  [ErrorCodes.MALFORMED_JSON]: 400,
  [ErrorCodes.PAYLOAD_TOO_LARGE]: 413,
  [ErrorCodes.OVERLOADED]: 503,
  [ErrorCodes.UNKNOWN_SHARD]: 422,
  [ErrorCodes.SHARD_STOPPED]: 503,
  [ErrorCodes.JOURNAL_WRITE]: 503,
};

function sendError(reply: FastifyReply, error: unknown): FastifyReply {
  if (error instanceof ArcError) return reply.code(statusOf[error.code] ?? 500).send(error.toJSON());
  const fastifyCode = (error as { code?: string }).code;
  if (fastifyCode === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return reply.code(413).send({ code: ErrorCodes.PAYLOAD_TOO_LARGE, message: 'request body is over the size limit' });
  }
  if (typeof fastifyCode === 'string' && fastifyCode.startsWith('FST_ERR_CTP')) {
    return reply.code(415).send({ code: ErrorCodes.VALIDATION, message: 'send application/json' });
  }
  return reply.code(500).send({ code: ErrorCodes.INVARIANT, message: 'internal error' });
}

/** The raw body as the content-type parser left it (text); anything else is refused by the edge. */
function bodyText(body: unknown): string {
  return typeof body === 'string' ? body : '';
}

export function buildHttpApi(api: RegionApi, options: HttpApiOptions): FastifyInstance {
  const app = Fastify({ logger: options.logger === true, bodyLimit: options.bodyLimitBytes });
  // Bodies stay text: the region's edge checks size, JSON and schema with its own coded errors.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => done(null, body));
  app.setErrorHandler((error, _request, reply) => sendError(reply, error));
  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ code: 'ARC_ERR_NOT_FOUND', message: 'no such route' }));

  app.get('/healthz', () => ({ status: 'ok' }));
  app.get('/readyz', (_request, reply) => (api.ready() ? { status: 'ready' } : reply.code(503).send({ status: 'recovering' })));

  app.post('/v1/inference', async (request, reply) => {
    try {
      const decision = await api.infer(bodyText(request.body));
      const body = {
        'request-id': decision.requestId,
        outcome: decision.outcome,
        geozone: decision.geozone,
        'node-id': decision.nodeId ?? null,
        'expires-at': decision.expiresAtMs === undefined ? null : new Date(decision.expiresAtMs).toISOString(),
        candidates: decision.candidates,
        reason: decision.reason,
      };
      if (decision.outcome === 'reserved') return reply.code(202).send(body);
      if (decision.outcome === 'duplicate') return reply.code(409).send({ code: 'ARC_ERR_DUPLICATE_REQUEST', message: decision.reason, ...body });
      return reply.code(503).send({ code: 'ARC_ERR_NO_CAPACITY', message: decision.reason, ...body });
    } catch (error) {
      return sendError(reply, error);
    }
  });

  for (const [path, kind] of [
    ['/v1/telemetry', 'telemetry'],
    ['/v1/results', 'result'],
  ] as const) {
    app.post(path, async (request, reply) => {
      try {
        await api.ingest(kind, bodyText(request.body));
        return await reply.code(202).send({ accepted: true });
      } catch (error) {
        return sendError(reply, error);
      }
    });
  }

  app.get('/v1/nodes', (request) => {
    const query = request.query as Record<string, string | undefined>;
    return { nodes: api.nodes({ geozone: query['geozone'], status: query['status'], model: query['model'] }) };
  });
  app.get('/v1/nodes/:id', (request, reply) => {
    const node = api.node((request.params as { id: string }).id);
    return node ?? reply.code(404).send({ code: 'ARC_ERR_NOT_FOUND', message: 'no such node' });
  });
  app.get('/v1/reservations/:id', (request, reply) => {
    const reservation = api.reservation((request.params as { id: string }).id);
    return reservation ?? reply.code(404).send({ code: 'ARC_ERR_NOT_FOUND', message: 'no live reservation with that request id' });
  });
  app.get('/v1/summary', () => ({ summaries: api.summary() }));
  for (const [action, drain] of [
    ['drain', true],
    ['resume', false],
  ] as const) {
    app.post(`/v1/nodes/:id/${action}`, async (request, reply) => {
      const known = await api.drain((request.params as { id: string }).id, drain);
      return known ? reply.code(202).send({ accepted: true }) : reply.code(404).send({ code: 'ARC_ERR_NOT_FOUND', message: 'no such node' });
    });
  }
  app.get('/metrics', async (_request, reply) => {
    const { contentType, body } = await api.metrics();
    return reply.header('content-type', contentType).send(body);
  });
  return app;
}
