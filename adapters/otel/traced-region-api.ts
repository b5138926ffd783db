import type { RegionApi } from '../http/http-api.js';
import { requestAttributes, type RequestTracer } from './request-tracer.js';

/**
 * The HTTP edge of request traces: the RegionApi the routes call, wrapped so an
 * inference opens its trace as it arrives (continuing the caller's W3C trace
 * context when it sent one) and a result joins it. http-api.ts stays unaware of
 * tracing; with tracing off the API is used unwrapped.
 */
const INFERENCE_ROUTE = '/v1/inference';

/** The body's top-level fields when it is a JSON object; the region's edge validates it properly afterwards. */
function fieldsOf(body: unknown): Record<string, unknown> | undefined {
  if (typeof body !== 'string') return undefined;
  try {
    const value = JSON.parse(body) as unknown;
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined; // the edge answers it with ARC_ERR_MALFORMED_JSON; nothing to trace
  }
}

/** The RegionApi with tracing: give this to buildHttpApi in place of the region's own API. */
export function traceRegionApi(api: RegionApi, tracer: RequestTracer): RegionApi {
  const infer: RegionApi['infer'] = async (...args) => {
    const [body, , caller] = args;
    const fields = fieldsOf(body);
    const requestId = fields?.['request-id'];
    if (fields === undefined || typeof requestId !== 'string') return api.infer(...args);
    tracer.ingress(
      requestId,
      'http',
      {
        'http.request.method': 'POST',
        'http.route': INFERENCE_ROUTE,
        ...requestAttributes({ modelId: fields['model-id'], priority: fields['priority'], requesterGeozone: fields['requester-geozone'], contextWindow: fields['context-window'] }),
      },
      caller?.traceparent,
    );
    try {
      return await api.infer(...args);
    } catch (error) {
      tracer.refused(requestId, error);
      throw error;
    }
  };

  const ingest: RegionApi['ingest'] = async (...args) => {
    const [kind, body] = args;
    const requestId = kind === 'result' ? fieldsOf(body)?.['request-id'] : undefined;
    if (typeof requestId !== 'string') return api.ingest(...args);
    tracer.onResultIngress(requestId, 'http');
    try {
      return await api.ingest(...args);
    } catch (error) {
      tracer.refused(requestId, error, 'result');
      throw error;
    }
  };

  // Every other call goes to the region's API as it is.
  const traced = Object.assign(Object.create(api) as RegionApi, { infer, ingest });

  return traced;
}
