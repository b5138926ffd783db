import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

/**
 * JSON Schema 2020-12 validation (the dialect of OpenAPI 3.1 documents) with
 * ajv 8 and ajv-formats.
 */
export interface SchemaValidator {
  /** Empty when `value` matches `schema`, else one line per error. */
  errors(schema: object, value: unknown): string[];
}

// ajv-formats is CommonJS: its default export arrives wrapped under ESM.
const addFormats = ((addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule) as unknown as (ajv: Ajv2020) => void;

export function schemaValidator(): SchemaValidator {
  // strict: a keyword ajv does not know in the document is an error, not silently ignored.
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  addFormats(ajv);
  const compiled = new WeakMap<object, ReturnType<Ajv2020['compile']>>();
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
