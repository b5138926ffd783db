import { schemaValidator, type SchemaValidator } from './json-schema.js';

/**
 * An API's contract as its OpenAPI 3.1 document states it, and the check of
 * one answer against it: the status is documented for the operation the
 * request reached, the body matches that response's schema (JSON Schema,
 * validated from the document itself), documented headers are present; a
 * method the path does not have is 405 with the path's methods in Allow, an
 * unknown path 404.
 */
export type JsonSchema = Record<string, unknown>;

export interface OpenApiParameter {
  readonly name: string;
  readonly in: 'path' | 'query' | 'header' | 'cookie';
  readonly required?: boolean;
  readonly schema: JsonSchema;
}

export interface OpenApiResponse {
  readonly description: string;
  readonly headers?: Record<string, { schema: JsonSchema }>;
  readonly content?: Record<string, { schema: JsonSchema }>;
}

interface OpenApiOperationObject {
  readonly parameters?: OpenApiParameter[];
  readonly requestBody?: { content: Record<string, { schema: JsonSchema }> };
  readonly responses: Record<string, OpenApiResponse>;
  readonly security?: unknown[];
}

export interface OpenApiDocument {
  readonly openapi: string;
  readonly paths: Record<string, Record<string, OpenApiOperationObject>>;
}

export interface Operation {
  /** The path as the document writes it: /v1/nodes/{id}. */
  readonly path: string;
  /** Upper case: GET, POST. */
  readonly method: string;
  readonly parameters: readonly OpenApiParameter[];
  /** The application/json request body schema, if the operation takes one. */
  readonly body: JsonSchema | undefined;
  readonly responses: Readonly<Record<string, OpenApiResponse>>;
  readonly secured: boolean;
}

export interface SentRequest {
  readonly method: string;
  /** Path and query, as sent on the wire. */
  readonly url: string;
}

export interface ReceivedAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | number | undefined>>;
  readonly body: string;
}

const header = (answer: ReceivedAnswer, name: string): string | undefined => {
  const value = answer.headers[name.toLowerCase()];
  return value === undefined ? undefined : Array.isArray(value) ? value.join(', ') : String(value);
};

export class ApiContract {
  readonly operations: readonly Operation[];
  private readonly validator: SchemaValidator = schemaValidator();
  private readonly templates: { path: string; segments: string[]; operations: Operation[] }[];

  constructor(readonly document: OpenApiDocument) {
    const operations: Operation[] = [];
    for (const [path, methods] of Object.entries(document.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        operations.push({
          path,
          method: method.toUpperCase(),
          parameters: op.parameters ?? [],
          body: op.requestBody?.content['application/json']?.schema,
          responses: op.responses,
          secured: (op.security ?? []).length > 0,
        });
      }
    }
    this.operations = operations;
    this.templates = Object.keys(document.paths).map((path) => ({ path, segments: path.split('/'), operations: operations.filter((o) => o.path === path) }));
  }

  /** The documented path a concrete path reaches: of those that match, the one with the most fixed segments (as the router prefers). */
  templateOf(pathname: string): { path: string; operations: Operation[] } | undefined {
    // Segments compare decoded (/v1/%6Eodes is /v1/nodes); an encoded / stays inside its segment.
    const segments = pathname.split('/').map((segment) => decodeURIComponent(segment));
    let best: { path: string; operations: Operation[]; fixed: number } | undefined;
    for (const template of this.templates) {
      if (template.segments.length !== segments.length) continue;
      let fixed = 0;
      const matches = template.segments.every((part, i) => {
        const actual = segments[i] ?? '';
        if (part.startsWith('{') && part.endsWith('}')) return actual.length > 0;
        fixed++;
        return part === actual;
      });
      if (matches && (best === undefined || fixed > best.fixed)) best = { path: template.path, operations: template.operations, fixed };
    }
    return best;
  }

  /** The methods a documented path answers (HEAD wherever GET is: the server adds it). */
  methodsOf(operations: readonly Operation[]): string[] {
    const methods = new Set(operations.map((o) => o.method));
    if (methods.has('GET')) methods.add('HEAD');
    return [...methods].sort();
  }

  /** Everything about `answer` that the document does not allow; empty when it keeps the contract. */
  violations(request: SentRequest, answer: ReceivedAnswer): string[] {
    const pathname = request.url.split('?')[0] ?? '';
    if (!decodable(pathname)) {
      // A path that is not percent-encoded UTF-8 is refused before routing, whatever the method.
      if (answer.status !== 400) return [`an undecodable path answered ${answer.status}, not 400`];
      return this.bodyViolations(request.method, this.operations.find((o) => o.responses['400'] !== undefined)?.responses['400'], answer);
    }
    const template = this.templateOf(pathname);
    if (template === undefined) {
      // No documented path: 404 (or 400 when the path is not even decodable), with the coded body every 404 (400) has.
      if (answer.status !== 404 && answer.status !== 400) return [`an unknown path answered ${answer.status}, not 404`];
      const documented = this.operations.find((o) => o.responses[String(answer.status)] !== undefined);
      return this.bodyViolations(request.method, documented?.responses[String(answer.status)], answer);
    }
    const allowed = this.methodsOf(template.operations);
    if (!allowed.includes(request.method)) {
      const problems: string[] = [];
      if (answer.status !== 405) problems.push(`a method the path does not have answered ${answer.status}, not 405`);
      const allow = (header(answer, 'allow') ?? '').split(',').map((m) => m.trim()).filter((m) => m.length > 0).sort();
      if (allow.join(', ') !== allowed.join(', ')) problems.push(`Allow is '${allow.join(', ')}', the document says '${allowed.join(', ')}'`);
      const first = template.operations[0] as Operation;
      return [...problems, ...this.bodyViolations(request.method, first.responses['405'], answer)];
    }
    const operation = template.operations.find((o) => o.method === (request.method === 'HEAD' ? 'GET' : request.method)) as Operation;
    const response = operation.responses[String(answer.status)];
    if (response === undefined) return [`status ${answer.status} is not documented for ${operation.method} ${operation.path} (documented: ${Object.keys(operation.responses).join(', ')})`];
    const problems: string[] = [];
    for (const name of Object.keys(response.headers ?? {})) {
      if (header(answer, name) === undefined) problems.push(`the ${answer.status} answer has no ${name} header`);
    }
    return [...problems, ...this.bodyViolations(request.method, response, answer)];
  }

  private bodyViolations(method: string, response: OpenApiResponse | undefined, answer: ReceivedAnswer): string[] {
    if (response === undefined) return [`status ${answer.status} has no documented response to compare with`];
    // A HEAD answer has the GET answer's headers and no body; a 101 has no body of its own.
    if (method === 'HEAD' || answer.status === 101) return [];
    const content = response.content ?? {};
    const mediaType = (header(answer, 'content-type') ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
    const documented = content[mediaType];
    if (documented === undefined) return [`the ${answer.status} answer is ${mediaType || 'untyped'}, the document says ${Object.keys(content).join(' or ') || 'no body'}`];
    if (mediaType !== 'application/json') return [];
    let value: unknown;
    try {
      value = JSON.parse(answer.body);
    } catch {
      return [`the ${answer.status} answer is not JSON: ${answer.body.slice(0, 120)}`];
    }
    return this.validator.errors(documented.schema, value).map((e) => `the ${answer.status} body does not match its schema: ${e}; body ${answer.body.slice(0, 300)}`);
  }
}

function decodable(pathname: string): boolean {
  try {
    decodeURIComponent(pathname);
    return true;
  } catch {
    return false;
  }
}
