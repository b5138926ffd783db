import type { Logger } from 'pino';

/**
 * The seam for federated training (issue 10, the region → agent `train`
 * message and the agent → region `training-update` answer). The trainer and
 * the message schemas are built elsewhere (`training/`); until they are wired
 * in here, a training task is logged and not run, and the region's round
 * leaves this node out as a straggler by its own rules.
 *
 * Wire it by replacing the body: validate `task` with the TrainingTask schema,
 * train on the named partition, and send the update through the uplink,
 * keeping it owed until accepted as results are (result-outbox.ts).
 */
export function onTrainingTask(task: unknown, logger: Logger): void {
  const fields = typeof task === 'object' && task !== null ? (task as Record<string, unknown>) : {};
  logger.warn({ jobId: fields['job-id'], round: fields['round'] }, 'training task received: this agent does not train yet, so it is ignored');
}
