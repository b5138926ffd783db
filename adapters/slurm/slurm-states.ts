import type { BatchJobState } from '../../runtime/batch-queue.js';

/**
 * Slurm's job states onto the port's five. Slurm prints them upper-case (squeue %T, scontrol
 * JobState); a state Slurm adds later and we do not know maps to undefined, and the caller
 * reports it rather than guessing.
 */
const SLURM_STATES: Readonly<Record<string, BatchJobState>> = {
  PENDING: 'queued',
  // Held or waiting to be requeued: still in the queue, will run.
  REQUEUED: 'queued',
  REQUEUE_FED: 'queued',
  REQUEUE_HOLD: 'queued',
  RESV_DEL_HOLD: 'queued',
  CONFIGURING: 'queued',
  RUNNING: 'running',
  COMPLETING: 'running',
  SUSPENDED: 'running',
  STOPPED: 'running',
  SIGNALING: 'running',
  STAGE_OUT: 'running',
  RESIZING: 'running',
  COMPLETED: 'completed',
  FAILED: 'failed',
  TIMEOUT: 'failed',
  NODE_FAIL: 'failed',
  OUT_OF_MEMORY: 'failed',
  PREEMPTED: 'failed',
  BOOT_FAIL: 'failed',
  DEADLINE: 'failed',
  REVOKED: 'failed',
  SPECIAL_EXIT: 'failed',
  CANCELLED: 'cancelled',
};

/** The port's state for Slurm's (e.g. "CANCELLED by 0" is CANCELLED); undefined for a state not listed. */
export function mapSlurmState(rawState: string): BatchJobState | undefined {
  const word = rawState.trim().split(/\s+/)[0]?.toUpperCase() ?? '';
  return SLURM_STATES[word];
}

/**
 * One job record from `scontrol -o show job` (a single line of Key=Value pairs separated by
 * spaces). Values may hold spaces (Command, Reason, WorkDir), so a pair starts only where a
 * space is followed by a key and '=': keys are letters, digits and a few punctuation marks.
 * A value that itself holds " Word=" (a Command's arguments) is cut there; the fields read here
 * (JobId, JobName, JobState, Reason, ExitCode) come before Command and WorkDir in scontrol's output.
 */
export function parseScontrolLine(line: string): Map<string, string> {
  const fields = new Map<string, string>();
  const keyPattern = / (?=[A-Za-z][A-Za-z0-9_/:()]*=)/;
  for (const pair of line.trim().split(keyPattern)) {
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    // The first occurrence wins: a later "key" inside a value (e.g. in Command) never overrides.
    const key = pair.slice(0, eq);
    if (!fields.has(key)) fields.set(key, pair.slice(eq + 1));
  }
  return fields;
}

/** Slurm's ExitCode "3:0" is exit status 3, signal 0; null when absent or malformed. */
export function parseExitCode(value: string | undefined): { exitCode: number; signal: number } | null {
  const m = /^(\d+):(\d+)$/.exec(value ?? '');
  if (!m) return null;
  return { exitCode: Number(m[1]), signal: Number(m[2]) };
}
