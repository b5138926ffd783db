import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The built CLI, for tests that run `arcnet` as a child process. */
export const arcnetCli = fileURLToPath(new URL('../../cli/arcnet.js', import.meta.url));

export function arcnetSync(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [arcnetCli, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** Makes an API key with the CLI and returns it (the file keeps only its hash). */
export function createKeyWithCli(file: string, role: string, geozones: string): string {
  const made = arcnetSync('keys', 'create', '--role', role, '--geozones', geozones, '--file', file, '--json');
  if (made.status !== 0) throw new Error(`keys create failed: ${made.stderr}`);
  return (JSON.parse(made.stdout) as { key: string }).key;
}

export interface LiveRegion {
  readonly child: ChildProcess;
  /** http(s)://127.0.0.1:port */
  readonly origin: string;
  /** Everything the process wrote to stderr so far (pino JSON lines and status lines). */
  stderr(): string;
  /** SIGTERM, then the JSON line it printed on stdout. */
  stop(): Promise<Record<string, unknown>>;
}

/** Starts `arcnet region ... --port 0` (or `arcnet central`) and waits for its HTTP API to listen. */
export async function startLiveRegion(args: readonly string[], env: NodeJS.ProcessEnv = process.env, command: 'region' | 'central' = 'region'): Promise<LiveRegion> {
  const child = spawn(process.execPath, [arcnetCli, command, '--port', '0', '--status-every', '1h', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const origin = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`region did not listen within 60 s:\n${stderr}`)), 60_000);
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /"address":"(https?:\/\/127\.0\.0\.1:\d+)"/.exec(stderr);
      if (match?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`region exited with ${code} before listening:\n${stderr}`));
    });
  });
  return {
    child,
    origin,
    stderr: () => stderr,
    stop: async () => {
      child.kill('SIGTERM');
      const code = await exited;
      if (code !== 0) throw new Error(`region exited with ${code}:\n${stderr}`);
      return JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
    },
  };
}
