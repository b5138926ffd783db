import { execFile } from 'node:child_process';
import type { BatchJobSpec, BatchJobStatus, BatchQueue } from '../../runtime/batch-queue.js';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { renderBatchScript, validateBatchJobSpec } from './batch-script.js';
import { mapSlurmState, parseExitCode, parseScontrolLine } from './slurm-states.js';

export interface SlurmBatchQueueOptions {
  /** slurm.conf for every command (SLURM_CONF); undefined: the commands' own default (/etc/slurm/slurm.conf). */
  readonly slurmConf?: string | undefined;
  /** sbatch -p; undefined: the cluster's default partition. */
  readonly partition?: string | undefined;
  /** One Slurm command may take this long before it counts as unanswered (a busy slurmctld answers in well under a second). */
  readonly commandTimeoutMs?: number;
  /** Where sbatch, squeue, scontrol and scancel are; undefined: PATH. */
  readonly binDir?: string | undefined;
}

const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;
/** Output of one Slurm command we read at most (squeue of one name, scontrol of one job are small). */
const MAX_COMMAND_OUTPUT_BYTES = 4 * 1024 * 1024;
const START_HINT = 'start the local queue with `npm run hpc:start`, or point SLURM_CONF at your site\'s slurm.conf';

interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * The BatchQueue port on Slurm's command-line tools (sbatch, squeue, scontrol, scancel), run with
 * execFile (no shell). A job's name is the port's name; before any sbatch, the name is looked up
 * among live jobs and the finished ones slurmctld still remembers (MinJobAge), so a caller that
 * crashed between submitting and recording the id finds its job instead of submitting another.
 * Submissions of one name through one instance are serialized for the same reason.
 */
export class SlurmBatchQueue implements BatchQueue {
  private readonly options: SlurmBatchQueueOptions;
  private readonly commandTimeoutMs: number;
  /** In-flight submit per name: a second submit of that name waits for the first and then finds its job. */
  private readonly submitting = new Map<string, Promise<BatchJobStatus & { readonly resubmitted: boolean }>>();

  constructor(options: SlurmBatchQueueOptions = {}) {
    this.options = options;
    this.commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  }

  async submit(spec: BatchJobSpec): Promise<BatchJobStatus & { readonly resubmitted: boolean }> {
    validateBatchJobSpec(spec);
    for (;;) {
      const inFlight = this.submitting.get(spec.name);
      if (inFlight === undefined) break;
      await inFlight.catch(() => undefined);
    }
    const attempt = this.submitOnce(spec);
    this.submitting.set(spec.name, attempt);
    try {
      return await attempt;
    } finally {
      if (this.submitting.get(spec.name) === attempt) this.submitting.delete(spec.name);
    }
  }

  async status(queueJobId: string): Promise<BatchJobStatus> {
    if (!/^\d+$/.test(queueJobId)) throw new ArcError(ErrorCodes.VALIDATION, `'${queueJobId}' is not a Slurm job id (digits)`);
    const r = await this.run('scontrol', ['-o', 'show', 'job', queueJobId]);
    if (r.code !== 0) {
      if (/invalid job id/i.test(r.stderr)) {
        throw new ArcError(
          ErrorCodes.UNKNOWN_QUEUE_ITEM,
          `Slurm does not know job ${queueJobId}: it never existed, or it ended more than MinJobAge ago and slurmctld forgot it (sacct has the record where accounting runs)`,
          { queueJobId },
        );
      }
      throw this.commandFailed('scontrol show job', r);
    }
    const line = r.stdout.split('\n').find((l) => l.startsWith('JobId='));
    if (line === undefined) throw this.commandFailed('scontrol show job (no JobId line)', r);
    return statusFromScontrol(line);
  }

  async findByName(name: string): Promise<BatchJobStatus | undefined> {
    // -t all: pending, running and the finished jobs slurmctld still keeps (MinJobAge).
    const r = await this.run('squeue', ['-h', '-t', 'all', '-n', name, '-o', '%i|%j|%T']);
    if (r.code !== 0) throw this.commandFailed('squeue', r);
    const ids = r.stdout
      .split('\n')
      .map((l) => l.trim().split('|'))
      .filter((f) => f.length === 3 && f[1] === name && /^\d+$/.test(f[0] ?? ''))
      .map((f) => ({ id: f[0] ?? '', state: mapSlurmState(f[2] ?? '') }));
    if (ids.length === 0) return undefined;
    // Never two live jobs of one name through this port; were there (a job submitted by hand), the
    // live one is the one to follow, else the newest.
    ids.sort((a, b) => Number(b.id) - Number(a.id));
    const live = ids.find((j) => j.state === 'queued' || j.state === 'running');
    const chosen = live ?? ids[0];
    if (chosen === undefined) return undefined;
    try {
      return await this.status(chosen.id);
    } catch (err) {
      // Forgotten between the two commands (MinJobAge passed just now): as if not found.
      if (err instanceof ArcError && err.code === ErrorCodes.UNKNOWN_QUEUE_ITEM) return undefined;
      throw err;
    }
  }

  async cancel(queueJobId: string): Promise<void> {
    if (!/^\d+$/.test(queueJobId)) throw new ArcError(ErrorCodes.VALIDATION, `'${queueJobId}' is not a Slurm job id (digits)`);
    const r = await this.run('scancel', [queueJobId]);
    if (r.code === 0) return;
    // scancel of a job that already ended says so and exits non-zero; the job is done either way.
    if (/already completing or completed|job has already finished/i.test(r.stderr)) return;
    if (/invalid job id/i.test(r.stderr)) {
      throw new ArcError(ErrorCodes.UNKNOWN_QUEUE_ITEM, `Slurm does not know job ${queueJobId}; nothing to cancel`, { queueJobId });
    }
    throw this.commandFailed('scancel', r);
  }

  private async submitOnce(spec: BatchJobSpec): Promise<BatchJobStatus & { readonly resubmitted: boolean }> {
    const existing = await this.findByName(spec.name);
    if (existing !== undefined) return { ...existing, resubmitted: false };
    const args = [
      '--parsable',
      '-J', spec.name,
      '-D', spec.workDir,
      '-o', `${spec.workDir}/${spec.name}.%j.out`,
      '-t', String(spec.timeLimitMinutes),
      // A job lost with its node ends failed (NODE_FAIL) instead of running again behind the caller's back.
      '--no-requeue',
      // Only PATH and HOME from this process reach the job (not its secrets); the spec's env is in the script.
      '--export=PATH,HOME',
      ...(this.options.partition === undefined ? [] : ['-p', this.options.partition]),
    ];
    const r = await this.run('sbatch', args, renderBatchScript(spec));
    if (r.code !== 0) throw this.commandFailed('sbatch', r, { name: spec.name });
    // --parsable prints "jobid" or "jobid;cluster".
    const queueJobId = r.stdout.trim().split(';')[0] ?? '';
    if (!/^\d+$/.test(queueJobId)) throw this.commandFailed('sbatch (no job id in its output)', r, { name: spec.name });
    return { ...(await this.status(queueJobId)), resubmitted: true };
  }

  private run(command: string, args: readonly string[], input?: string): Promise<CommandResult> {
    const file = this.options.binDir === undefined ? command : `${this.options.binDir}/${command}`;
    const env = this.options.slurmConf === undefined ? process.env : { ...process.env, SLURM_CONF: this.options.slurmConf };
    return new Promise((resolve, reject) => {
      const child = execFile(
        file,
        args,
        { env, timeout: this.commandTimeoutMs, maxBuffer: MAX_COMMAND_OUTPUT_BYTES, encoding: 'utf8' },
        (error, stdout, stderr) => {
          if (error === null) return resolve({ code: 0, stdout, stderr });
          if (typeof error.code === 'number') return resolve({ code: error.code, stdout, stderr });
          const why = error.code === 'ENOENT' ? `${file} is not installed here` : error.killed ? `no answer within ${this.commandTimeoutMs} ms` : error.message;
          reject(new ArcError(ErrorCodes.BATCH_QUEUE, `Slurm's ${command} failed: ${why}; ${START_HINT}`, { command }, { cause: error }));
        },
      );
      if (input !== undefined) child.stdin?.end(input);
    });
  }

  private commandFailed(what: string, r: CommandResult, details: Record<string, unknown> = {}): ArcError {
    const stderr = r.stderr.trim().slice(0, 2000);
    const unreachable = /unable to contact slurm controller|connection refused|munge|authentication error|zero bytes were transmitted/i.test(stderr);
    const hint = unreachable ? `Slurm is not answering: ${START_HINT}` : 'see the message from Slurm';
    return new ArcError(ErrorCodes.BATCH_QUEUE, `${what} exited ${r.code}: ${stderr || '(no message)'}; ${hint}`, { ...details, exitCode: r.code, slurmConf: this.options.slurmConf ?? null });
  }
}

/** The port's status from one `scontrol -o show job` line. */
export function statusFromScontrol(line: string): BatchJobStatus {
  const fields = parseScontrolLine(line);
  const queueJobId = fields.get('JobId') ?? '';
  const rawState = fields.get('JobState') ?? '';
  const state = mapSlurmState(rawState);
  if (state === undefined) {
    throw new ArcError(ErrorCodes.BATCH_QUEUE, `Slurm job ${queueJobId} is in state '${rawState}', which this adapter does not map: add it to adapters/slurm/slurm-states.ts`, { queueJobId, rawState });
  }
  const exit = parseExitCode(fields.get('ExitCode'));
  const terminal = state === 'completed' || state === 'failed' || state === 'cancelled';
  const slurmReason = fields.get('Reason');
  const reasonParts = [
    ...(slurmReason !== undefined && slurmReason !== 'None' && slurmReason !== '(null)' ? [slurmReason] : []),
    ...(terminal && exit !== null && exit.signal !== 0 ? [`signal ${exit.signal}`] : []),
  ];
  return {
    queueJobId,
    name: fields.get('JobName') ?? '',
    state,
    rawState,
    exitCode: terminal && exit !== null ? exit.exitCode : null,
    reason: reasonParts.length === 0 ? null : reasonParts.join('; '),
  };
}
