import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import {
  BATCH_JOB_NAME_PATTERN,
  MAX_BATCH_COMMAND_ARGS,
  MAX_BATCH_COMMAND_BYTES,
  MAX_BATCH_ENV_ENTRIES,
  MAX_BATCH_TIME_LIMIT_MINUTES,
  type BatchJobSpec,
} from '../../runtime/batch-queue.js';

const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/** POSIX sh single-quoting: the text as one word, whatever it holds. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** Refuses a spec Slurm would misread or that breaks the port's limits (ARC_ERR_VALIDATION, saying which field). */
export function validateBatchJobSpec(spec: BatchJobSpec): void {
  const refuse = (message: string): never => {
    throw new ArcError(ErrorCodes.VALIDATION, `batch job ${JSON.stringify(spec.name)}: ${message}`);
  };
  if (!BATCH_JOB_NAME_PATTERN.test(spec.name)) refuse('name must be 1 to 128 of A-Z a-z 0-9 . _ -');
  if (spec.command.length === 0 || spec.command.length > MAX_BATCH_COMMAND_ARGS) refuse(`command must have 1 to ${MAX_BATCH_COMMAND_ARGS} arguments`);
  const bytes = spec.command.reduce((sum, arg) => sum + Buffer.byteLength(arg), 0);
  if (bytes > MAX_BATCH_COMMAND_BYTES) refuse(`command is ${bytes} bytes; at most ${MAX_BATCH_COMMAND_BYTES}`);
  if (spec.command.some((arg) => arg.includes('\0'))) refuse('command arguments may not hold NUL');
  if (!spec.workDir.startsWith('/') || spec.workDir.includes('\0') || spec.workDir.includes('\n')) refuse('workDir must be an absolute path on one line');
  const env = Object.entries(spec.env);
  if (env.length > MAX_BATCH_ENV_ENTRIES) refuse(`env has ${env.length} entries; at most ${MAX_BATCH_ENV_ENTRIES}`);
  for (const [name, value] of env) {
    if (!ENV_NAME_PATTERN.test(name)) refuse(`env name ${JSON.stringify(name)} is not a shell variable name`);
    if (value.includes('\0')) refuse(`env ${name} holds NUL`);
  }
  if (!Number.isInteger(spec.timeLimitMinutes) || spec.timeLimitMinutes < 1 || spec.timeLimitMinutes > MAX_BATCH_TIME_LIMIT_MINUTES) {
    refuse(`timeLimitMinutes must be a whole number from 1 to ${MAX_BATCH_TIME_LIMIT_MINUTES}`);
  }
}

/**
 * The batch script sbatch reads on stdin: change to workDir, export the spec's environment, exec
 * the command. Every word is single-quoted, so nothing in a spec is ever interpreted by a shell.
 */
export function renderBatchScript(spec: BatchJobSpec): string {
  const lines = ['#!/bin/sh', `cd ${shellQuote(spec.workDir)} || exit 1`];
  for (const [name, value] of Object.entries(spec.env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    lines.push(`export ${name}=${shellQuote(value)}`);
  }
  lines.push(`exec ${spec.command.map(shellQuote).join(' ')}`);
  return `${lines.join('\n')}\n`;
}
