import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { CentralBehaviour, JobRecord } from '../actors/central/central-behaviour.js';
import { GLOBAL_VIEW_KIND, globalViewActorId } from '../actors/central/actors.js';
import { jobId as jobIdSchema, parseTrainingJob, trainingJobSchema } from '../actors/central/training-wire.js';
import { geozone as geozoneSchema, isoTimestamp } from '../actors/wire.js';
import { inScope } from '../adapters/http/access.js';
import { parseQuery } from '../adapters/http/api-schemas.js';
import { codesWithStatus, regionStatusOf, sendError } from '../adapters/http/error-replies.js';
import type { GuardedRoutes } from '../adapters/http/guard-hook.js';
import { errorResponse, jsonResponse, jsonSchemaOf } from '../adapters/http/response-docs.js';
import type { GlobalViewContext, ViewSummary } from '../machines/global-view.js';
import type { HpcJobContext } from '../machines/hpc-job.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import type { RoleHost } from './role.js';

const iso = (ms: number | null | undefined): string | null => (ms === null || ms === undefined ? null : new Date(ms).toISOString());
const count = z.number().int().nonnegative();

/** GET /v1/jobs/:id — a job as the orchestrator knows it. */
export const jobViewSchema = z.strictObject({
  'job-id': jobIdSchema,
  target: z.enum(['hpc', 'federated']),
  /** The classification rule that matched (journaled with the decision). */
  reason: z.string(),
  /** HPC: pending, transferring, queued, running, completed, failed, cancelled; federated: published or unplaced. */
  state: z.string(),
  urgency: z.enum(['critical', 'normal', 'background']),
  'dataset-uri': z.string(),
  'dataset-size-gb': z.number(),
  'estimated-flops': z.number(),
  'checkpoint-uri': z.string(),
  'submitted-at': isoTimestamp,
  /** Federated: the geozone whose region got the FederatedTask, and why. */
  geozone: z.string().nullable(),
  'placement-reason': z.string().nullable(),
  /** HPC: the data mover's transfer, bytes moved, the batch queue's job id, and how it ended. */
  'transfer-id': z.string().nullable(),
  'bytes-transferred': count,
  progress: z.number().min(0).max(1),
  'queue-job-id': z.string().nullable(),
  /** HPC: where the data mover staged the dataset and the batch queue's name for the job, once the copy was verified. */
  'staged-uri': z.string().nullable(),
  'batch-job-name': z.string().nullable(),
  'failure-reason': z.string().nullable(),
  'failure-detail': z.string().nullable(),
  'transfer-started-at': isoTimestamp.nullable(),
  'transfer-completed-at': isoTimestamp.nullable(),
  'job-started-at': isoTimestamp.nullable(),
  'ended-at': isoTimestamp.nullable(),
});
export type JobView = z.infer<typeof jobViewSchema>;

const summaryViewSchema = z.strictObject({
  'reported-at': isoTimestamp,
  'received-at': isoTimestamp,
  'total-nodes': count,
  'active-nodes': count,
  'avg-gpu-util': z.number().min(0).max(1),
  'energy-breakdown': z.strictObject({ cogen: count, grid: count, battery: count }),
  'open-reservations': count,
});
const geozoneViewSchema = z.strictObject({
  geozone: z.string(),
  state: z.enum(['reporting', 'silent']),
  summaries: count,
  'silent-since': isoTimestamp.nullable(),
  latest: summaryViewSchema,
});

const jobsQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(1_000).default(100),
  /** Continue after this job id (the `next` of the previous page; jobs in arrival order). */
  after: jobIdSchema.optional(),
});
const historyQuerySchema = z
  .strictObject({
    geozone: geozoneSchema,
    /** The geozone's view as of this time (the orchestrator's logical time)... */
    at: isoTimestamp.optional(),
    /** ...or its summaries from / to these times (inclusive). */
    from: isoTimestamp.optional(),
    to: isoTimestamp.optional(),
    limit: z.coerce.number().int().min(1).max(1_000).default(100),
  })
  .refine((q) => q.at === undefined || (q.from === undefined && q.to === undefined), { message: 'give at, or from/to, not both', path: ['at'] });

function summaryView(s: ViewSummary): z.infer<typeof summaryViewSchema> {
  return {
    'reported-at': iso(s.reportedAtMs) as string,
    'received-at': iso(s.receivedAtMs) as string,
    'total-nodes': s.totalNodes,
    'active-nodes': s.activeNodes,
    'avg-gpu-util': s.avgGpuUtil,
    'energy-breakdown': { ...s.energyBreakdown },
    'open-reservations': s.openReservations,
  };
}

export function jobView(record: JobRecord, live: { state: string; context: HpcJobContext } | undefined): JobView {
  const job = record.job;
  const context = live?.context ?? record.ended?.context;
  const state = record.target === 'federated' ? (record.placement?.geozone === null ? 'unplaced' : 'published') : (live?.state ?? record.ended?.state ?? 'pending');
  return {
    'job-id': record.jobId,
    target: record.target,
    reason: record.reason,
    state,
    urgency: job.urgency,
    'dataset-uri': job.datasetUri,
    'dataset-size-gb': job.datasetSizeGb,
    'estimated-flops': job.estimatedFlops,
    'checkpoint-uri': context?.checkpointUri ?? job.checkpointUri,
    'submitted-at': iso(record.submittedAtMs) as string,
    geozone: record.placement?.geozone ?? null,
    'placement-reason': record.placement?.reason ?? null,
    'transfer-id': context?.transferId ?? null,
    'bytes-transferred': context?.bytesTransferred ?? 0,
    progress: context?.progress ?? 0,
    'queue-job-id': context?.schedulerJobId ?? null,
    'staged-uri': record.staged?.stagedUri ?? null,
    'batch-job-name': record.staged?.batchJobName ?? null,
    'failure-reason': context?.failureReason ?? null,
    'failure-detail': context?.failureDetail ?? null,
    'transfer-started-at': iso(context?.transferStartedAtMs),
    'transfer-completed-at': iso(context?.transferCompletedAtMs),
    'job-started-at': iso(context?.jobStartedAtMs),
    'ended-at': iso(context?.completedAtMs ?? context?.failedAtMs ?? context?.cancelledAtMs),
  };
}

const codes = (status: number): string[] => codesWithStatus(regionStatusOf, status);
/** The job id in a path (documented, so the document says what an id looks like). */
const jobPathId = { type: 'object', properties: { id: jsonSchemaOf(jobIdSchema) }, required: ['id'] };
const unavailable = (): Record<string, unknown> => errorResponse('the orchestrator is overloaded, stopping or cannot write its journal; retry', codes(503));

/**
 * The orchestrator's HTTP routes, on the same server as every process's
 * (guarded, documented, coded errors): job intake and views, cancel, and the
 * global view with its history read back from the journal.
 */
export function centralRoutes(host: RoleHost, shardId: string, behaviour: () => CentralBehaviour | undefined): (routes: FastifyInstance, guarded: GuardedRoutes) => void {
  const central = (): CentralBehaviour => {
    const found = behaviour();
    if (found === undefined) throw new ArcError(ErrorCodes.UNKNOWN_SHARD, 'this process does not own the orchestrator shard now (another member of the group does)');
    return found;
  };
  const view = (jobId: string): JobView | undefined => {
    const b = central();
    const record = b.job(jobId);
    return record === undefined ? undefined : jobView(record, b.liveJob(jobId));
  };
  const durable = async (): Promise<void> => {
    const shard = host.region.supervisor.shard(shardId);
    await shard.whenDurable(shard.lastOffset);
  };

  return (routes, guarded) => {
    const { principalOf } = guarded;
    routes.post(
      '/v1/jobs',
      {
        schema: {
          tags: ['jobs'],
          summary: 'Submit a training job (TrainingJob v1): classified HPC or federated; answered once the decision is durable',
          body: jsonSchemaOf(trainingJobSchema, 'input'),
          response: {
            202: jsonResponse('accepted: the job as classified', jobViewSchema),
            409: errorResponse('a job with this job-id exists already (ARC_ERR_DUPLICATE_JOB)', [ErrorCodes.DUPLICATE_JOB]),
            422: errorResponse('another process owns the orchestrator shard now (ARC_ERR_UNKNOWN_SHARD)', codes(422)),
            503: unavailable(),
          },
        },
        config: { permission: 'infer' },
      },
      async (request, reply) => {
        try {
          const job = parseTrainingJob(typeof request.body === 'string' ? request.body : '');
          // Decided on this turn: no other input reaches the shard between the check and the submit.
          if (central().hasJob(job.jobId)) throw new ArcError(ErrorCodes.DUPLICATE_JOB, `job '${job.jobId}' exists already: use a new job-id`);
          host.submit({ type: 'job.submit', job });
          await durable();
          return await reply.code(202).send(view(job.jobId));
        } catch (error) {
          return sendError(reply, error);
        }
      },
    );
    routes.get(
      '/v1/jobs',
      {
        schema: {
          tags: ['jobs'],
          summary: 'Training jobs in arrival order, a page at a time',
          querystring: jsonSchemaOf(jobsQuerySchema, 'input'),
          response: { 200: jsonResponse('a page of jobs', z.strictObject({ jobs: z.array(jobViewSchema), next: jobIdSchema.nullable() })), 422: errorResponse('another process owns the orchestrator shard now', codes(422)) },
        },
        config: { permission: 'read' },
      },
      (request, reply) => {
        try {
          const query = parseQuery(jobsQuerySchema, request.query);
          const b = central();
          const all = b.jobList();
          const start = query.after === undefined ? 0 : all.findIndex((r) => r.jobId === query.after) + 1;
          const page = all.slice(start, start + query.limit);
          const last = page[page.length - 1];
          return { jobs: page.map((r) => jobView(r, b.liveJob(r.jobId))), next: start + query.limit < all.length && last !== undefined ? last.jobId : null };
        } catch (error) {
          return sendError(reply, error);
        }
      },
    );
    routes.get(
      '/v1/jobs/:id',
      {
        schema: { tags: ['jobs'], summary: 'One training job: state, classification and its reason, bytes moved, queue job id, timestamps', params: jobPathId, response: { 200: jsonResponse('the job', jobViewSchema), 404: errorResponse('no such job', [ErrorCodes.NOT_FOUND]), 422: errorResponse('another process owns the orchestrator shard now', codes(422)) } },
        config: { permission: 'read' },
      },
      (request, reply) => {
        try {
          const found = view((request.params as { id: string }).id);
          if (found === undefined) throw new ArcError(ErrorCodes.NOT_FOUND, 'no such job');
          return found;
        } catch (error) {
          return sendError(reply, error);
        }
      },
    );
    routes.post(
      '/v1/jobs/:id/cancel',
      {
        schema: {
          tags: ['jobs'],
          summary: 'Cancel an HPC job: its transfer or its batch job is stopped',
          params: jobPathId,
          response: {
            202: jsonResponse('cancelled', jobViewSchema),
            404: errorResponse('no such job', [ErrorCodes.NOT_FOUND]),
            409: errorResponse('the job has ended already, or is federated (ARC_ERR_JOB_ENDED)', [ErrorCodes.JOB_ENDED]),
            422: errorResponse('another process owns the orchestrator shard now', codes(422)),
            503: unavailable(),
          },
        },
        config: { permission: 'operate' },
      },
      async (request, reply) => {
        try {
          const jobId = (request.params as { id: string }).id;
          const b = central();
          const record = b.job(jobId);
          if (record === undefined) throw new ArcError(ErrorCodes.NOT_FOUND, 'no such job');
          if (b.liveJob(jobId) === undefined) throw new ArcError(ErrorCodes.JOB_ENDED, `job '${jobId}' is ${jobView(record, undefined).state}: there is nothing to cancel`);
          const who = principalOf(request).keyId ?? 'operator';
          host.submit({ type: 'job.cancel', jobId, reason: `cancelled by ${who}` });
          await durable();
          return await reply.code(202).send(view(jobId));
        } catch (error) {
          return sendError(reply, error);
        }
      },
    );
    routes.get(
      '/v1/global',
      {
        schema: { tags: ['global'], summary: 'The global view: the latest regional summary of every geozone, and which are silent', response: { 200: jsonResponse('every geozone in the key scope', z.strictObject({ geozones: z.array(geozoneViewSchema) })), 422: errorResponse('another process owns the orchestrator shard now', codes(422)) } },
        config: { permission: 'read' },
      },
      (request, reply) => {
        try {
          const principal = principalOf(request);
          return { geozones: central().globalView().filter((g) => inScope(principal, g.geozone)).map((g) => geozoneView(g.geozone, g.state, g.context)) };
        } catch (error) {
          return sendError(reply, error);
        }
      },
    );
    routes.get(
      '/v1/global/history',
      {
        schema: {
          tags: ['global'],
          summary: "A geozone's summaries from the journal: as of a time (at) or over a range (from, to)",
          querystring: jsonSchemaOf(historyQuerySchema, 'input'),
          response: {
            200: jsonResponse('the summaries, oldest first (one with at)', z.strictObject({ geozone: z.string(), summaries: z.array(summaryViewSchema.extend({ offset: count })), next: count.nullable() })),
            404: errorResponse('no summary of that geozone was ever received', [ErrorCodes.NOT_FOUND]),
            422: errorResponse('another process owns the orchestrator shard now', codes(422)),
          },
        },
        config: { permission: 'read' },
      },
      async (request, reply) => {
        try {
          const query = parseQuery(historyQuerySchema, request.query);
          if (!inScope(principalOf(request), query.geozone)) throw new ArcError(ErrorCodes.NOT_FOUND, 'no summary of that geozone was ever received');
          central();
          // What the live view shows is in the journal before it is read back.
          await durable();
          return summaryHistory(host, shardId, query);
        } catch (error) {
          return sendError(reply, error);
        }
      },
    );
  };
}

function geozoneView(geozone: string, state: string, context: GlobalViewContext): z.infer<typeof geozoneViewSchema> {
  return { geozone, state: state === 'silent' ? 'silent' : 'reporting', summaries: context.summaries, 'silent-since': iso(context.silentSinceMs), latest: summaryView(context.latest) };
}

/** Reads a geozone's summaries back from the orchestrator's journal (logical time of each record). */
function summaryHistory(host: RoleHost, shardId: string, query: z.infer<typeof historyQuerySchema>): Record<string, unknown> {
  const actorId = globalViewActorId(query.geozone);
  const fromMs = query.from === undefined ? -Infinity : Date.parse(query.from);
  const toMs = query.at !== undefined ? Date.parse(query.at) : query.to === undefined ? Infinity : Date.parse(query.to);
  const found: (z.infer<typeof summaryViewSchema> & { offset: number })[] = [];
  let seen = false;
  let next: number | null = null;
  for (const record of host.stores.journal(shardId).read(0)) {
    if (record.actorId !== actorId || record.kind !== GLOBAL_VIEW_KIND) continue;
    const summary = (record.event.type === 'summary' ? record.event['summary'] : (record.event['input'] as { summary?: unknown } | undefined)?.summary) as ViewSummary | undefined;
    if (summary === undefined) continue;
    seen = true;
    if (record.atMs < fromMs || record.atMs > toMs) continue;
    if (query.at !== undefined) found.length = 0; // as of: only the latest at or before `at`
    else if (found.length >= query.limit) {
      next = record.offset;
      break;
    }
    found.push({ ...summaryView(summary), offset: record.offset });
  }
  if (!seen) throw new ArcError(ErrorCodes.NOT_FOUND, 'no summary of that geozone was ever received');
  return { geozone: query.geozone, summaries: found, next };
}
