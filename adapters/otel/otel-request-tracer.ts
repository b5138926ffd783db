import { isSpanContextValid, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type SpanOptions, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ATTR_ERROR_TYPE, ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { RegionEffect } from '../../actors/region-io.js';
import { reservationActorId } from '../../actors/reservation-actor.js';
import { monotonicNowMs } from '../../runtime/clock.js';
import { ArcError } from '../../runtime/errors.js';
import type { JournalRecord, JournalStore } from '../../runtime/journal.js';
import { observeAppends } from '../../runtime/observed-journal.js';
import type { IngressTransport, RequestTracer } from './request-tracer.js';

/**
 * The OpenTelemetry implementation of RequestTracer, loaded only when tracing
 * is on (request-tracer.ts imports it on demand). Spans leave through a batch
 * processor to an OTLP/HTTP endpoint (JSON encoding), so the request path only
 * records them in memory; a full export queue drops spans, never blocks.
 */

/** Incubating semantic-convention name (copied, as the conventions advise for incubating ones). */
const ATTR_MESSAGING_SYSTEM = 'messaging.system';

type Outcome = 'completed' | 'failed' | 'expired' | 'released' | 'rejected' | 'duplicate' | 'refused' | 'abandoned';
/** Outcomes that mean the request was not served: the root span gets an error status. */
const errorOutcomes: ReadonlySet<Outcome> = new Set<Outcome>(['failed', 'expired', 'rejected', 'refused', 'abandoned']);

const RESERVATION_PREFIX = reservationActorId('');

/** One request being followed. */
interface OpenTrace {
  readonly requestId: string;
  readonly root: Span;
  /** Context whose active span is the root: every child is started in it. */
  readonly parent: Context;
  readonly startedMs: number;
  /** Ingresses not yet answered (a retry or a duplicate adds one). */
  ingresses: number;
  decided: boolean;
  /** Open from dispatch until the node's result (or the end). */
  dispatch?: Span | undefined;
  /** Open from the result's arrival until the request ends. */
  result?: Span | undefined;
}

export interface OtelRequestTracerOptions {
  readonly endpoint: string;
  readonly serviceName: string;
  readonly geozones: readonly string[];
  readonly maxOpenTraces: number;
}

/** A W3C traceparent as the parent context of a new root span; undefined when malformed. */
export function callerContext(traceparent: string): Context | undefined {
  const match = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/.exec(traceparent.trim());
  if (match === null) return undefined;
  const [, version, traceId, spanId, flags, rest] = match as unknown as [string, string, string, string, string, string | undefined];
  // Version ff is forbidden; version 00 has exactly four fields; later versions may append more.
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  const spanContext = { traceId, spanId, traceFlags: parseInt(flags, 16), isRemote: true };
  return isSpanContextValid(spanContext) ? trace.setSpanContext(ROOT_CONTEXT, spanContext) : undefined;
}

export class OtelRequestTracer implements RequestTracer {
  private readonly provider: BasicTracerProvider;
  private readonly tracer: Tracer;
  /** Insertion order is age order: the first entry is the one abandoned when the bound is reached. */
  private readonly open = new Map<string, OpenTrace>();
  private readonly maxOpenTraces: number;
  /**
   * Wall-clock ms at monotonic 0. Every span time is taken from this one
   * clock: the SDK's own start times are whole ms, per span, which would
   * misorder spans that start within the same ms.
   */
  private readonly epochAtMonotonicZero = Date.now() - monotonicNowMs();

  constructor(options: OtelRequestTracerOptions) {
    this.maxOpenTraces = options.maxOpenTraces;
    const exporter = new OTLPTraceExporter({ url: options.endpoint, timeoutMillis: 10_000 });
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: options.serviceName, 'arcnet.geozones': [...options.geozones] }),
      // Larger and more frequent batches than the defaults: a busy region ends thousands of spans a second.
      spanProcessors: [new BatchSpanProcessor(exporter, { maxQueueSize: 16_384, maxExportBatchSize: 2_048, scheduledDelayMillis: 1_000 })],
    });
    this.tracer = this.provider.getTracer('arcnet-region');
  }

  private now(): number {
    return this.epochAtMonotonicZero + monotonicNowMs();
  }

  private start(name: string, options: SpanOptions, parent: Context): Span {
    return this.tracer.startSpan(name, { ...options, startTime: this.now() }, parent);
  }

  get openTraces(): number {
    return this.open.size;
  }

  ingress(requestId: string, transport: IngressTransport, attributes: Attributes = {}, traceparent?: string): void {
    const existing = this.open.get(requestId);
    if (existing !== undefined) {
      existing.ingresses++;
      existing.root.addEvent('ingress.repeat', { 'arcnet.transport': transport }, this.now());
      return;
    }
    const caller = traceparent === undefined ? undefined : callerContext(traceparent);
    const transportAttributes: Attributes = transport === 'kafka' ? { [ATTR_MESSAGING_SYSTEM]: 'kafka' } : {};
    const root = this.start(
      'arcnet.request',
      {
        kind: transport === 'http' ? SpanKind.SERVER : SpanKind.CONSUMER,
        attributes: { ...attributes, ...transportAttributes, 'arcnet.request_id': requestId, 'arcnet.transport': transport },
      },
      caller ?? ROOT_CONTEXT,
    );
    const parent = trace.setSpan(ROOT_CONTEXT, root);
    this.start('ingress', { attributes: { 'arcnet.transport': transport, 'arcnet.caller_trace': caller !== undefined } }, parent).end(this.now());
    this.open.set(requestId, { requestId, root, parent, startedMs: this.now(), ingresses: 1, decided: false });
    for (const [, oldest] of this.open) {
      if (this.open.size <= this.maxOpenTraces) break;
      this.finish(oldest, 'abandoned', 'more open traces than maxOpenTraces');
    }
  }

  refused(requestId: string, error: unknown, what: 'request' | 'result' = 'request'): void {
    const open = this.open.get(requestId);
    if (open === undefined) return;
    const errorType = error instanceof ArcError ? error.code : error instanceof Error ? error.name : 'unknown';
    const message = error instanceof Error ? error.message : String(error);
    if (what === 'result') {
      // A result the edge refused: the request itself goes on.
      open.result?.setAttribute(ATTR_ERROR_TYPE, errorType);
      open.result?.setStatus({ code: SpanStatusCode.ERROR, message });
      open.result?.end(this.now());
      open.result = undefined;
      return;
    }
    if (open.decided || open.ingresses > 1) {
      open.ingresses = Math.max(1, open.ingresses - 1);
      open.root.addEvent('ingress.refused', { [ATTR_ERROR_TYPE]: errorType, 'exception.message': message }, this.now());
      return;
    }
    open.root.setAttribute(ATTR_ERROR_TYPE, errorType);
    this.finish(open, 'refused', message);
  }

  wrapJournalStore<S extends JournalStore>(store: S): S {
    return observeAppends(store, (shardId, records) => {
      const requests = this.tracedIn(records);
      if (requests === undefined) return undefined;
      const spans: Span[] = [];
      for (const [open, count] of requests) {
        const attributes = {
          'arcnet.geozone': shardId,
          'arcnet.journal.records': count,
          'arcnet.journal.batch_records': records.length,
          'arcnet.journal.first_offset': records[0]?.offset ?? -1,
        };
        spans.push(this.start('journal.append', { attributes }, open.parent));
      }
      return (error) => {
        const failure = error === undefined ? undefined : error instanceof Error ? error : new Error(JSON.stringify(error));
        for (const span of spans) {
          if (failure !== undefined) {
            span.recordException(failure, this.now());
            span.setStatus({ code: SpanStatusCode.ERROR, message: failure.message });
          }
          span.end(this.now());
        }
      };
    });
  }

  onEffects(effects: readonly RegionEffect[]): void {
    if (this.open.size === 0) return;
    // A reservation's dispatch is emitted before its decision; the trace shows the decision (route) first.
    for (const effect of effects) {
      if (effect.type === 'decision') this.onDecision(effect);
      else if (effect.type === 'forward') this.open.get(effect.request.requestId)?.root.addEvent('forward', { 'arcnet.geozone': effect.toGeozone, 'arcnet.tried_geozones': [...effect.triedGeozones] }, this.now());
    }
    for (const effect of effects) if (effect.type === 'dispatch') this.onDispatch(effect);
    for (const effect of effects) if (effect.type === 'ended') this.onEnded(effect);
  }

  onResultIngress(requestId: string, transport: IngressTransport): void {
    const open = this.open.get(requestId);
    if (open === undefined) return;
    open.dispatch?.end(this.now());
    open.dispatch = undefined;
    open.result?.end(this.now());
    open.result = this.start('result', { kind: transport === 'http' ? SpanKind.SERVER : SpanKind.CONSUMER, attributes: { 'arcnet.transport': transport } }, open.parent);
  }

  async shutdown(): Promise<void> {
    for (const open of [...this.open.values()]) this.finish(open, 'abandoned', 'tracer shut down before the request ended');
    await this.provider.shutdown();
  }

  private tracedIn(records: readonly JournalRecord[]): Map<OpenTrace, number> | undefined {
    if (this.open.size === 0) return undefined;
    let found: Map<OpenTrace, number> | undefined;
    for (const record of records) {
      if (!record.actorId.startsWith(RESERVATION_PREFIX)) continue;
      const open = this.open.get(record.actorId.slice(RESERVATION_PREFIX.length));
      if (open === undefined) continue;
      found ??= new Map();
      found.set(open, (found.get(open) ?? 0) + 1);
    }
    return found;
  }

  private onDecision(effect: RegionEffect & { type: 'decision' }): void {
    const open = this.open.get(effect.requestId);
    if (open === undefined) return;
    if (effect.outcome === 'duplicate' && (open.decided || open.ingresses > 1)) {
      // A second request with the id of one being followed: noted on it, which goes on.
      open.ingresses = Math.max(1, open.ingresses - 1);
      open.root.addEvent('duplicate', { 'arcnet.geozone': effect.geozone, 'arcnet.reason': effect.reason }, this.now());
      return;
    }
    const attributes: Attributes = {
      'arcnet.outcome': effect.outcome,
      'arcnet.geozone': effect.geozone,
      'arcnet.candidates': effect.candidates,
      'arcnet.reason': effect.reason,
    };
    if (effect.nodeId !== undefined) attributes['arcnet.node_id'] = effect.nodeId;
    if (effect.expiresAtMs !== undefined) attributes['arcnet.expires_at_ms'] = effect.expiresAtMs;
    this.start('route', { attributes }, open.parent).end(this.now());
    open.decided = true;
    open.ingresses = 1;
    open.root.setAttribute('arcnet.geozone', effect.geozone);
    if (effect.nodeId !== undefined) open.root.setAttribute('arcnet.node_id', effect.nodeId);
    if (effect.outcome === 'rejected' || effect.outcome === 'duplicate') this.finish(open, effect.outcome, effect.reason);
  }

  private onDispatch(effect: RegionEffect & { type: 'dispatch' }): void {
    const open = this.open.get(effect.requestId);
    if (open === undefined) return;
    if (open.dispatch !== undefined) {
      // Re-routed after its node was lost: the earlier dispatch never got its result.
      open.dispatch.setAttribute('arcnet.superseded', true);
      open.dispatch.end(this.now());
    }
    open.dispatch = this.start(
      'dispatch',
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          'arcnet.geozone': effect.geozone,
          'arcnet.node_id': effect.nodeId,
          'arcnet.model_id': effect.modelId,
          'arcnet.priority': effect.priority,
          'arcnet.expires_at_ms': effect.expiresAtMs,
        },
      },
      open.parent,
    );
  }

  private onEnded(effect: RegionEffect & { type: 'ended' }): void {
    const open = this.open.get(effect.requestId);
    if (open === undefined) return;
    open.root.setAttribute('arcnet.geozone', effect.geozone);
    if (effect.nodeId !== null) open.root.setAttribute('arcnet.node_id', effect.nodeId);
    this.finish(open, effect.outcome, effect.reason ?? undefined);
  }

  private finish(open: OpenTrace, outcome: Outcome, reason?: string): void {
    this.open.delete(open.requestId);
    const at = this.now();
    open.dispatch?.end(at);
    open.result?.end(at);
    const root = open.root;
    root.setAttribute('arcnet.outcome', outcome);
    root.setAttribute('arcnet.latency_ms', Math.round((at - open.startedMs) * 1000) / 1000);
    if (reason !== undefined) root.setAttribute('arcnet.reason', reason);
    if (errorOutcomes.has(outcome)) {
      if (outcome !== 'refused') root.setAttribute(ATTR_ERROR_TYPE, outcome);
      root.setStatus({ code: SpanStatusCode.ERROR, message: reason ?? outcome });
    }
    root.end(at);
  }
}
