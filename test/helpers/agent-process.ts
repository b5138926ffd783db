import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { arcnetCli } from './live-region.js';

/** A running `arcnet agent` child process. */
export interface AgentProcess {
  readonly nodeId: string;
  readonly child: ChildProcess;
  stderr(): string;
  /** SIGTERM; resolves with the exit code and the JSON line it printed. */
  stop(): Promise<{ code: number | null; line: Record<string, unknown> }>;
  /** Waits for the process to end by itself; the exit code and the JSON line it printed. */
  finished(): Promise<{ code: number | null; line: Record<string, unknown> }>;
  /** Resolves with the exit code when the process ends on its own. */
  readonly exited: Promise<number | null>;
}

export function startAgent(nodeId: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): AgentProcess {
  const child = spawn(process.execPath, [arcnetCli, 'agent', '--node-id', nodeId, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const finished = async (): Promise<{ code: number | null; line: Record<string, unknown> }> => {
    const code = await exited;
    const last = stdout.trim().split('\n').pop() ?? '';
    try {
      return { code, line: JSON.parse(last) as Record<string, unknown> };
    } catch {
      throw new Error(`agent ${nodeId} printed no JSON line (exit ${code}):\n${stdout}\n${stderr.slice(-3000)}`);
    }
  };
  return {
    nodeId,
    child,
    stderr: () => stderr,
    exited,
    stop: () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return finished();
    },
    finished,
  };
}

/** A TCP port that was free a moment ago (for a process that must come back on the same port). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
