import type { Attributes } from '@opentelemetry/api';
import type { RegionEffect } from '../../actors/region-io.js';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import type { JournalStore } from '../../runtime/journal.js';

/**
 * OpenTelemetry traces of requests, one trace per inference request from the
 * moment it reaches the region to its one outcome. Off unless an OTLP/HTTP
 * endpoint is given: without one nothing of OpenTelemetry is even loaded, and
 * the caller wires nothing in, so the hot path pays nothing.
 */
export type IngressTransport = 'http' | 'kafka' | 'bus';

export interface RequestTracer {
  /**
   * A request arrived: opens its root span `arcnet.request` (and a short
   * `ingress` child). `traceparent` (W3C) continues the caller's trace. A
   * request id that already has an open trace (a retry, a duplicate) is noted
   * on it instead.
   */
  ingress(requestId: string, transport: IngressTransport, attributes?: Attributes, traceparent?: string): void;
  /**
   * The edge refused what came for a traced request (validation, overload):
   * a refused request ends its trace with the error (unless it was a retry of
   * one still followed); a refused result ends its `result` span with it.
   */
  refused(requestId: string, error: unknown, what?: 'request' | 'result'): void;
  /** The store with each append that carries records of traced requests timed as `journal.append` spans. */
  wrapJournalStore<S extends JournalStore>(store: S): S;
  /** Released effects: decisions, dispatches, forwards and ends of traced requests become spans. */
  onEffects(effects: readonly RegionEffect[]): void;
  /** A request's result arrived: a `result` span in its trace, open until the request ends. */
  onResultIngress(requestId: string, transport: IngressTransport): void;
  /** Traces open now (bounded by maxOpenTraces). */
  readonly openTraces: number;
  /** Ends what is still open (as abandoned) and flushes every span to the endpoint. */
  shutdown(): Promise<void>;
}

export interface RequestTracerOptions {
  /** OTLP/HTTP traces URL (e.g. http://127.0.0.1:4318/v1/traces). */
  readonly endpoint?: string | undefined;
  /**
   * Environment to read OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as is) or
   * OTEL_EXPORTER_OTLP_ENDPOINT (+ /v1/traces) and OTEL_SERVICE_NAME from when
   * no endpoint is given; OTEL_SDK_DISABLED=true turns tracing off. Not read
   * unless passed, so tests and embedders are never traced by accident.
   */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** service.name of the spans (default OTEL_SERVICE_NAME, else arcnet-region). */
  readonly serviceName?: string;
  /** Geozones this process serves (resource attribute arcnet.geozones). */
  readonly geozones?: readonly string[];
  /** Traces kept open at once; beyond it the oldest is ended as abandoned (default 10,000). */
  readonly maxOpenTraces?: number;
}

export const DEFAULT_MAX_OPEN_TRACES = 10_000;

/** The traces URL the options and environment give, or undefined when tracing is off. */
export function tracesEndpoint(options: Pick<RequestTracerOptions, 'endpoint' | 'env'>): string | undefined {
  const env = options.env ?? {};
  if (options.endpoint === undefined && env['OTEL_SDK_DISABLED']?.trim().toLowerCase() === 'true') return undefined;
  const signal = env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']?.trim();
  const base = env['OTEL_EXPORTER_OTLP_ENDPOINT']?.trim();
  // The spec: the per-signal variable is the full URL; the generic one is a base that gets /v1/traces.
  const endpoint = options.endpoint ?? (signal ? signal : base ? `${base.replace(/\/+$/, '')}/v1/traces` : undefined);
  if (endpoint === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new ArcError(ErrorCodes.USAGE, `OTLP traces endpoint is not a URL: ${endpoint}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ArcError(ErrorCodes.USAGE, `OTLP traces endpoint must be http(s): ${endpoint}`);
  return url.toString();
}

/**
 * The tracer for these options, or undefined when no endpoint is configured.
 * Async because the OpenTelemetry SDK is loaded only when tracing is on.
 */
export async function createRequestTracer(options: RequestTracerOptions): Promise<RequestTracer | undefined> {
  const endpoint = tracesEndpoint(options);
  if (endpoint === undefined) return undefined;
  const maxOpenTraces = options.maxOpenTraces ?? DEFAULT_MAX_OPEN_TRACES;
  if (!Number.isInteger(maxOpenTraces) || maxOpenTraces < 1) throw new ArcError(ErrorCodes.USAGE, `maxOpenTraces must be a positive integer, not ${maxOpenTraces}`);
  const { OtelRequestTracer } = await import('./otel-request-tracer.js');
  return new OtelRequestTracer({
    endpoint,
    serviceName: options.serviceName ?? options.env?.['OTEL_SERVICE_NAME'] ?? 'arcnet-region',
    geozones: options.geozones ?? [],
    maxOpenTraces,
  });
}

/** Span attributes of an inference request, by the names the traces use. */
export function requestAttributes(request: {
  readonly modelId?: unknown;
  readonly priority?: unknown;
  readonly requesterGeozone?: unknown;
  readonly contextWindow?: unknown;
}): Attributes {
  const attributes: Attributes = {};
  if (typeof request.modelId === 'string') attributes['arcnet.model_id'] = request.modelId;
  if (typeof request.priority === 'string') attributes['arcnet.priority'] = request.priority;
  if (typeof request.requesterGeozone === 'string') attributes['arcnet.requester_geozone'] = request.requesterGeozone;
  if (typeof request.contextWindow === 'number') attributes['arcnet.context_window'] = request.contextWindow;
  return attributes;
}
