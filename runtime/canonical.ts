import { createHash, type Hash } from 'node:crypto';

/**
 * Canonical JSON: object keys sorted, no whitespace, `undefined` members dropped,
 * non-finite numbers refused. Two equal states always encode to the same bytes,
 * which is what makes a state hash comparable across runs and machines.
 */
export function canonicalJson(value: unknown): string {
  return encode(value);
}

function encode(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`canonicalJson: non-finite number ${value}`);
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((item) => (item === undefined ? 'null' : encode(item))).join(',')}]`;
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record).filter((k) => record[k] !== undefined).sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${encode(record[k])}`).join(',')}}`;
    }
    default:
      throw new TypeError(`canonicalJson: cannot encode ${typeof value}`);
  }
}

/** Incremental SHA-256 over a sequence of canonical values. */
export class CanonicalHasher {
  private readonly hash: Hash = createHash('sha256');

  add(value: unknown): this {
    this.hash.update(canonicalJson(value));
    this.hash.update('\n');
    return this;
  }

  hex(): string {
    return this.hash.digest('hex');
  }
}
