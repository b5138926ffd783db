import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BatchJobSpec, BatchJobStatus, BatchQueue } from '../../runtime/batch-queue.js';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';

export interface ProcessBatchQueueOptions {
  /** Where jobs are recorded by name (job.json, output, exit code); survives a restart of the caller. */
  readonly stateDir: string;
}

interface JobFile {
  readonly queueJobId: string;
  readonly name: string;
  readonly pid: number;
  readonly spec: BatchJobSpec;
}

const NAME = /^[A-Za-z0-9._-]{1,128}$/;

/**
 * A BatchQueue for one machine: each job is a child process of its own
 * (detached, so it outlives a crash of the caller), recorded under its name in
 * `stateDir` before it starts. A wrapper shell writes the command's exit code
 * when it ends, so its state is known whoever asks later. `submit` looks the
 * name up first: a name is never run twice. Slurm (adapters/slurm) is the
 * production adapter of the same port.
 */
export class ProcessBatchQueue implements BatchQueue {
  private readonly options: ProcessBatchQueueOptions;
  private readonly submitting = new Map<string, Promise<BatchJobStatus & { readonly resubmitted: boolean }>>();

  constructor(options: ProcessBatchQueueOptions) {
    this.options = options;
    mkdirSync(options.stateDir, { recursive: true });
  }

  submit(spec: BatchJobSpec): Promise<BatchJobStatus & { readonly resubmitted: boolean }> {
    if (!NAME.test(spec.name)) return Promise.reject(new ArcError(ErrorCodes.VALIDATION, `batch job name '${spec.name}' must be 1 to 128 letters, digits, . _ or -`));
    if (spec.command.length === 0) return Promise.reject(new ArcError(ErrorCodes.VALIDATION, 'a batch job needs a command'));
    // Two calls at once for one name share one submission.
    let pending = this.submitting.get(spec.name);
    if (pending === undefined) {
      pending = this.submitOnce(spec).finally(() => this.submitting.delete(spec.name));
      this.submitting.set(spec.name, pending);
    }
    return pending;
  }

  private async submitOnce(spec: BatchJobSpec): Promise<BatchJobStatus & { readonly resubmitted: boolean }> {
    const existing = await this.findByName(spec.name);
    if (existing !== undefined) return { ...existing, resubmitted: false };
    const dir = this.dirOf(spec.name);
    mkdirSync(dir, { recursive: true });
    // The name is claimed on disk before the process exists: a crash after this line never runs it twice.
    writeFileSync(join(dir, 'claimed'), '', { flag: 'wx' });
    const out = openSync(join(dir, 'output.log'), 'a');
    const exitFile = join(dir, 'exit');
    const child = spawn('/bin/sh', ['-c', '"$@"; code=$?; echo $code > "$ARCNET_EXIT_FILE.tmp"; mv "$ARCNET_EXIT_FILE.tmp" "$ARCNET_EXIT_FILE"', 'arcnet-job', ...spec.command], {
      cwd: spec.workDir,
      env: { ...process.env, ...spec.env, ARCNET_EXIT_FILE: exitFile },
      detached: true,
      stdio: ['ignore', out, out],
    });
    closeSync(out);
    child.unref();
    const pid = child.pid;
    if (pid === undefined) throw new ArcError(ErrorCodes.INVARIANT, `could not start batch job '${spec.name}'`);
    const job: JobFile = { queueJobId: `local-${pid}-${spec.name}`, name: spec.name, pid, spec };
    writeFileSync(join(dir, 'job.json.tmp'), JSON.stringify(job));
    renameSync(join(dir, 'job.json.tmp'), join(dir, 'job.json'));
    return { ...this.statusOf(job), resubmitted: true };
  }

  status(queueJobId: string): Promise<BatchJobStatus> {
    const name = queueJobId.replace(/^local-\d+-/, '');
    const job = this.read(name);
    if (job === undefined || job.queueJobId !== queueJobId) return Promise.reject(new ArcError(ErrorCodes.NOT_FOUND, `no batch job '${queueJobId}'`));
    return Promise.resolve(this.statusOf(job));
  }

  findByName(name: string): Promise<BatchJobStatus | undefined> {
    const job = this.read(name);
    if (job !== undefined) return Promise.resolve(this.statusOf(job));
    // Claimed but never recorded (a crash between the claim and job.json): it did not start; it counts as failed.
    if (existsSync(join(this.dirOf(name), 'claimed'))) {
      return Promise.resolve({ queueJobId: `local-0-${name}`, name, state: 'failed', rawState: 'LOST', exitCode: null, reason: 'the queue stopped while starting it' });
    }
    return Promise.resolve(undefined);
  }

  cancel(queueJobId: string): Promise<void> {
    const name = queueJobId.replace(/^local-\d+-/, '');
    const job = this.read(name);
    if (job === undefined) return Promise.reject(new ArcError(ErrorCodes.NOT_FOUND, `no batch job '${queueJobId}'`));
    writeFileSync(join(this.dirOf(name), 'cancelled'), '');
    try {
      process.kill(-job.pid, 'SIGTERM'); // the whole process group: the wrapper and the command
    } catch {
      // already gone
    }
    return Promise.resolve();
  }

  /** Names of every job recorded (tests: "one queue job"). */
  names(): string[] {
    return readdirSync(this.options.stateDir).filter((name) => existsSync(join(this.dirOf(name), 'claimed'))).sort();
  }

  private dirOf(name: string): string {
    return join(this.options.stateDir, name);
  }

  private read(name: string): JobFile | undefined {
    if (!NAME.test(name)) return undefined;
    const file = join(this.dirOf(name), 'job.json');
    return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as JobFile) : undefined;
  }

  private statusOf(job: JobFile): BatchJobStatus {
    const dir = this.dirOf(job.name);
    const base = { queueJobId: job.queueJobId, name: job.name };
    if (existsSync(join(dir, 'cancelled'))) return { ...base, state: 'cancelled', rawState: 'CANCELLED', exitCode: null, reason: 'cancelled' };
    const exitFile = join(dir, 'exit');
    if (existsSync(exitFile)) {
      const code = Number.parseInt(readFileSync(exitFile, 'utf8').trim(), 10);
      return code === 0
        ? { ...base, state: 'completed', rawState: 'COMPLETED', exitCode: 0, reason: null }
        : { ...base, state: 'failed', rawState: 'FAILED', exitCode: Number.isNaN(code) ? null : code, reason: `exit code ${code}` };
    }
    if (alive(job.pid)) return { ...base, state: 'running', rawState: 'RUNNING', exitCode: null, reason: null };
    return { ...base, state: 'failed', rawState: 'NODE_FAIL', exitCode: null, reason: 'the process ended without an exit code' };
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
