import { createRequire } from 'node:module';

/**
 * JSON Schema 2020-12 validation (the dialect of OpenAPI 3.1 documents) with
 * ajv 8 and ajv-formats. The top-level `ajv` in node_modules is 6 (draft-07
 * only), so ajv 8 is loaded from where ajv-formats, which needs it, has it.
 */
export interface SchemaValidator {
  /** Empty when `value` matches `schema`, else one line per error. */
  errors(schema: object, value: unknown): string[];
}

interface AjvError {
  readonly instancePath: string;
  readonly message?: string;
  readonly params?: unknown;
}
interface AjvValidate {
  (value: unknown): boolean;
  errors?: AjvError[] | null;
}
interface Ajv {
  compile(schema: object): AjvValidate;
}
type AjvClass = new (options: Record<string, unknown>) => Ajv;

export function schemaValidator(): SchemaValidator {
  const require = createRequire(import.meta.url);
  const formatsPath = require.resolve('ajv-formats');
  const fromFormats = createRequire(formatsPath);
  const Ajv2020 = (fromFormats('ajv/dist/2020') as { default: AjvClass }).default;
  const addFormats = (require('ajv-formats') as { default: (ajv: Ajv) => void }).default;
  // strict: a keyword ajv does not know in the document is an error, not silently ignored.
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  addFormats(ajv);
  const compiled = new WeakMap<object, AjvValidate>();
  return {
    errors(schema, value) {
      let validate = compiled.get(schema);
      if (validate === undefined) {
        validate = ajv.compile(schema);
        compiled.set(schema, validate);
      }
      if (validate(value)) return [];
      return (validate.errors ?? []).map((e) => `${e.instancePath || '(body)'} ${e.message ?? 'invalid'} ${JSON.stringify(e.params)}`);
    },
  };
}
