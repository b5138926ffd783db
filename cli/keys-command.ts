import { parseArgs, type ParseArgsConfig } from 'node:util';
import { appendKeyToFile, createKey, parseGeozoneScope, readKeysFile, removeKeyFromFile, ROLES, type Role } from '../adapters/security/api-keys.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';

export const keysUsage = `arcnet keys: API keys for the region's HTTP API and console

  arcnet keys create --role viewer|developer|operator|agent --geozones CAISO[,ERCOT]|'*' --file keys.json
                     [--label TEXT] [--json]
      Make a key, print it once, and store only its hash in the keys file (created with mode 0600).
  arcnet keys list --file keys.json [--json]
      The stored keys: id, role, geozones, creation time, label (no secrets).
  arcnet keys revoke --id ID --file keys.json
      Remove a key; a running region stops accepting it when it reloads the file.
`;

/** `arcnet keys <create|list|revoke> ...`; rejects with ArcError(USAGE) for bad arguments. */
export function runKeysCommand(args: string[]): Promise<void> {
  try {
    keysCommand(args);
    return Promise.resolve();
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
}

function keysCommand(args: string[]): void {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'create':
      return create(rest);
    case 'list':
      return list(rest);
    case 'revoke':
      return revoke(rest);
    case undefined:
    case 'help':
    case '--help':
      process.stdout.write(keysUsage);
      return;
    default:
      throw new ArcError(ErrorCodes.USAGE, `unknown keys command '${sub}'\n\n${keysUsage}`);
  }
}

function create(args: string[]): void {
  const { values } = parse({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      role: { type: 'string' },
      geozones: { type: 'string' },
      file: { type: 'string' },
      label: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  const role = roleOf(required(values.role, 'role'));
  const geozones = parseGeozoneScope(required(values.geozones, 'geozones'));
  const file = required(values.file, 'file');
  if (values.label !== undefined && values.label.length > 200) throw new ArcError(ErrorCodes.USAGE, '--label is limited to 200 characters');
  const { key, stored } = createKey({ role, geozones, label: values.label });
  appendKeyToFile(file, stored);
  if (values.json === true) {
    process.stdout.write(`${JSON.stringify({ id: stored.id, role, geozones, key, ...(stored.label === undefined ? {} : { label: stored.label }) })}\n`);
  } else {
    process.stdout.write(`key       ${key}\nid        ${stored.id}\nrole      ${role}\ngeozones  ${geozones.join(',')}\n`);
  }
  process.stderr.write(`arcnet: key ${stored.id} stored in ${file}; the key itself is shown only this once\n`);
}

function list(args: string[]): void {
  const { values } = parse({ args, strict: true, allowPositionals: false, options: { file: { type: 'string' }, json: { type: 'boolean' } } });
  const keys = readKeysFile(required(values.file, 'file')).keys.map((k) => ({
    id: k.id,
    role: k.role,
    geozones: k.geozones,
    createdAt: k.createdAt,
    ...(k.label === undefined ? {} : { label: k.label }),
  }));
  if (values.json === true) {
    process.stdout.write(`${JSON.stringify({ keys })}\n`);
    return;
  }
  for (const k of keys) {
    process.stdout.write(`${k.id.padEnd(14)} ${k.role.padEnd(10)} ${k.geozones.join(',').padEnd(20)} ${k.createdAt} ${k.label ?? ''}`.trimEnd() + '\n');
  }
}

function revoke(args: string[]): void {
  const { values } = parse({ args, strict: true, allowPositionals: false, options: { id: { type: 'string' }, file: { type: 'string' } } });
  const removed = removeKeyFromFile(required(values.file, 'file'), required(values.id, 'id'));
  process.stdout.write(`revoked ${removed.id}\n`);
}

function roleOf(value: string): Role {
  if ((ROLES as readonly string[]).includes(value)) return value as Role;
  throw new ArcError(ErrorCodes.USAGE, `--role takes ${ROLES.join(', ')}; got '${value}'`);
}

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new ArcError(ErrorCodes.USAGE, `missing --${flag}\n\n${keysUsage}`);
  return value;
}

function parse<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (error) {
    throw new ArcError(ErrorCodes.USAGE, `${error instanceof Error ? error.message : String(error)}\n\n${keysUsage}`);
  }
}
