import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { JournalStore } from '../../runtime/journal.js';
import { observeAppends } from '../../runtime/observed-journal.js';
import { monotonicNowMs } from '../../runtime/clock.js';

/**
 * Prometheus metrics for a region (text exposition via prom-client). Counters
 * and gauges are read from the region when scraped, so the hot path pays
 * nothing for them; the two histograms are observed where the time is spent.
 */
export interface RegionMetricsSource {
  /** Counters folded from the journal (requests, routed, rejected, ...), summed over shards. */
  counters(): Readonly<Record<string, number>>;
  /** Node count by geozone and status. */
  nodesByStatus(): { geozone: string; status: string; count: number }[];
  /** Messages waiting on the bus for the region (input lag in messages). */
  inputBacklog(): number;
  /** The console WebSocket feed, when the region serves one. */
  console?(): { clients: number; sent: number; dropped: number; disconnectedSlow: number };
  /** Which geozones this process owns (and has recovered), and how often ownership was renegotiated. */
  ownership?(): { federation: readonly string[]; owned: readonly { geozone: string; ready: boolean }[]; rebalances: number };
  /** Node agents connected on the agent channel. */
  agents?(): { connected: number; pendingDispatches: number; deliveries: number; redeliveries: number };
}

/** What the central orchestrator's metrics read when scraped (app/central-role.ts). */
export interface CentralMetricsSource {
  /** Training jobs by class (hpc, federated) and state (HPC: the hpc-job state; federated: published, unplaced). */
  jobs(): readonly { readonly target: string; readonly state: string; readonly count: number }[];
  /** Bytes the data mover moved for HPC jobs, as journaled. */
  transferredBytes(): number;
  /** Jobs handed to the batch queue (one submission per job: submission is idempotent by name). */
  queueSubmissions(): number;
  /** RegionalSummary v1 messages folded into the global view. */
  summariesFolded(): number;
  /** Alerts raised on arc.event.system since this process started, by detector and severity. */
  alerts(): readonly { readonly rule: string; readonly severity: string; readonly count: number }[];
}

const counterHelp: Record<string, string> = {
  requests: 'New inference requests',
  routed: 'Reservations made (re-routes included)',
  rejected: 'Requests rejected: no eligible node anywhere',
  forwarded: 'Requests handed to another geozone',
  completed: 'Requests completed',
  failed: 'Requests failed',
  expired: 'Reservations expired without a result',
  released: 'Reservations released by their client',
  rerouted: 'Reservations sent back to routing after node loss',
  nodeTimeouts: 'Nodes marked offline after 30 s of silence',
  events: 'Journal records',
};

const snake = (name: string): string => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** What a scrape reads before the region exists (the metrics time the store the region is built on). */
const nothingYet: RegionMetricsSource = { counters: () => ({}), nodesByStatus: () => [], inputBacklog: () => 0 };

export class RegionMetrics {
  readonly registry = new Registry();
  readonly journalAppendSeconds: Histogram;
  readonly routingSeconds: Histogram;
  private source: RegionMetricsSource;

  /** Without a source, the region's figures read as empty until `readFrom` names one. */
  constructor(source: RegionMetricsSource = nothingYet) {
    this.source = source;
    const current = (): RegionMetricsSource => this.source;
    for (const [name, help] of Object.entries(counterHelp)) {
      new Counter({
        name: `arcnet_${snake(name)}_total`,
        help,
        registers: [this.registry],
        collect() {
          // The region's own counters are the truth (they replay from the journal); expose their value.
          this.reset();
          this.inc(current().counters()[name] ?? 0);
        },
      });
    }
    new Gauge({
      name: 'arcnet_nodes',
      help: 'Nodes by geozone and status',
      labelNames: ['geozone', 'status'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const row of current().nodesByStatus()) this.set({ geozone: row.geozone, status: row.status }, row.count);
      },
    });
    new Gauge({
      name: 'arcnet_input_backlog_messages',
      help: 'Input messages waiting to be processed',
      registers: [this.registry],
      collect() {
        this.set(current().inputBacklog());
      },
    });
    const consoleStats = (): { clients: number; sent: number; dropped: number; disconnectedSlow: number } =>
      current().console?.() ?? { clients: 0, sent: 0, dropped: 0, disconnectedSlow: 0 };
    new Gauge({
      name: 'arcnet_console_clients',
      help: 'Console WebSocket clients connected',
      registers: [this.registry],
      collect() {
        this.set(consoleStats().clients);
      },
    });
    this.countersOf(consoleStats, [
      ['arcnet_console_messages_sent_total', 'Console messages handed to client sockets (one per client per message)', 'sent'],
      ['arcnet_console_messages_dropped_total', 'Console messages not sent to a client that had fallen behind', 'dropped'],
      ['arcnet_console_slow_disconnects_total', 'Console clients disconnected for falling behind', 'disconnectedSlow'],
    ]);
    new Gauge({
      name: 'arcnet_geozone_owned',
      help: 'Geozones of the federation by ownership here: 1 owned and recovered, 0.5 owned and recovering, 0 owned elsewhere',
      labelNames: ['geozone'],
      registers: [this.registry],
      collect() {
        this.reset();
        const ownership = current().ownership?.();
        if (ownership === undefined) return;
        const owned = new Map(ownership.owned.map((o) => [o.geozone, o.ready]));
        for (const geozone of ownership.federation) {
          const ready = owned.get(geozone);
          this.set({ geozone }, ready === undefined ? 0 : ready ? 1 : 0.5);
        }
      },
    });
    new Counter({
      name: 'arcnet_ownership_rebalances_total',
      help: 'Consumer-group rebalances this process took part in (Kafka ownership)',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(current().ownership?.().rebalances ?? 0);
      },
    });
    const agentStats = (): { connected: number; pendingDispatches: number; deliveries: number; redeliveries: number } =>
      current().agents?.() ?? { connected: 0, pendingDispatches: 0, deliveries: 0, redeliveries: 0 };
    for (const [name, help, field] of [
      ['arcnet_agents_connected', 'Node agents connected on the agent channel', 'connected'],
      ['arcnet_agent_pending_dispatches', 'Dispatches sent to agents and not yet acknowledged', 'pendingDispatches'],
    ] as const) {
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(agentStats()[field]);
        },
      });
    }
    this.countersOf(agentStats, [
      ['arcnet_agent_dispatches_delivered_total', 'Dispatches handed to agent sockets (first deliveries)', 'deliveries'],
      ['arcnet_agent_dispatches_redelivered_total', 'Dispatches sent again to an agent after a reconnect', 'redeliveries'],
    ]);
    this.journalAppendSeconds = new Histogram({
      name: 'arcnet_journal_append_seconds',
      help: 'Time for a journal append to become durable',
      labelNames: ['geozone'],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1],
      registers: [this.registry],
    });
    this.routingSeconds = new Histogram({
      name: 'arcnet_routing_seconds',
      help: 'Time to process an inference request in its shard (decision included, durability not)',
      buckets: [0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.005, 0.01],
      registers: [this.registry],
    });
  }

  /** Counters whose totals are kept elsewhere (the console hub, the agent channel): read as they are when scraped. */
  private countersOf<T extends Record<string, number>>(read: () => T, rows: readonly (readonly [name: string, help: string, field: keyof T])[]): void {
    for (const [name, help, field] of rows) {
      new Counter({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.reset();
          this.inc(read()[field]);
        },
      });
    }
  }

  /**
   * The central orchestrator's own families, read from its state when scraped (so they survive a
   * restart as the journal does; alerts are counted as they are released, from process start).
   */
  addCentral(source: CentralMetricsSource): void {
    new Gauge({
      name: 'arcnet_central_jobs',
      help: 'Training jobs the orchestrator remembers, by class (hpc, federated) and state',
      labelNames: ['class', 'state'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const row of source.jobs()) this.set({ class: row.target, state: row.state }, row.count);
      },
    });
    for (const [name, help, read] of [
      ['arcnet_central_transferred_bytes_total', 'Bytes the data mover staged for HPC jobs (journaled progress)', () => source.transferredBytes()],
      ['arcnet_central_queue_submissions_total', 'HPC jobs handed to the batch queue', () => source.queueSubmissions()],
      ['arcnet_central_summaries_folded_total', 'Regional summaries folded into the global view', () => source.summariesFolded()],
    ] as const) {
      new Counter({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    }
    new Counter({
      name: 'arcnet_central_alerts_total',
      help: 'Alerts raised on arc.event.system since this process started, by detector (rule) and severity',
      labelNames: ['rule', 'severity'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const row of source.alerts()) this.inc({ rule: row.rule, severity: row.severity }, row.count);
      },
    });
  }

  /** Where scrapes read the region's figures from (once the region exists). */
  readFrom(source: RegionMetricsSource): void {
    this.source = source;
  }

  /** The journals of a store, with every append timed into arcnet_journal_append_seconds. */
  timeAppends<S extends JournalStore>(store: S): S {
    const histogram = this.journalAppendSeconds;
    return observeAppends(store, (shardId) => {
      const started = monotonicNowMs();
      return (error) => {
        if (error === undefined) histogram.observe({ geozone: shardId }, (monotonicNowMs() - started) / 1000);
      };
    });
  }

  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
