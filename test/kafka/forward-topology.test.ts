import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { KafkaJournalReader } from '../../adapters/kafka/kafka-journal-reader.js';
import { createRegionProcess, type RegionProcess } from '../../app/region-process.js';
import type { RegionInput } from '../../actors/region-io.js';
import { brokers, kafkaTest } from '../helpers/kafka-broker.js';

/**
 * A request forwarded between two processes over Kafka must become the same
 * journal records as one forwarded inside one process: the same inputs run
 * through both topologies, and each geozone's journal is compared record by
 * record (geozone names and wall-clock times aside, since they differ by run).
 */
async function until(what: string, timeoutMs: number, check: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const quiet = pino({ level: 'silent' });

function regionOn(zones: readonly string[], group: string, name: string): Promise<RegionProcess> {
  return createRegionProcess({ geozones: zones, journal: { kind: 'kafka', brokers, groupId: group, clientId: name }, security: { rateLimitPerSec: 1_000 }, logger: quiet });
}

/** The inputs: a node in the second geozone only, then a request from the first (which has no node, so it forwards). */
function inputs(home: string, away: string, run: string, nowMs: number): RegionInput[] {
  return [
    {
      type: 'telemetry',
      nodeId: `n-${run}`,
      report: {
        geozone: away,
        geohash: '9vk1mq',
        energySource: 'grid',
        batteryLevel: 0.8,
        gpuUtilization: 0.25,
        gpuCount: 4,
        modelsLoaded: ['llama-3-70b'],
        reportedAtMs: nowMs,
        draining: false,
      },
    },
    {
      type: 'inference',
      request: { requestId: `r-${run}`, modelId: 'llama-3-70b', contextWindow: 2048, priority: 'critical', requesterGeozone: home, requesterGeohash: '9q9hvu' },
      triedGeozones: [],
    },
  ];
}

/** Journal records with run-specific names and wall-clock times taken out. */
async function normalisedJournal(zone: string, names: Record<string, string>): Promise<unknown[]> {
  const store = await KafkaJournalReader.open({ brokers, shardIds: [zone], clientId: `topology-reader-${zone}` });
  try {
    const out: unknown[] = [];
    for (const record of store.journal(zone).read(0)) {
      if (record.event.type === 'summary') continue; // summaries tick on the wall clock
      let text = JSON.stringify({ actorId: record.actorId, kind: record.kind, event: record.event, state: record.state });
      for (const [from, to] of Object.entries(names)) text = text.split(from).join(to);
      out.push(JSON.parse(text, (key, value: unknown) => (/AtMs$|^atMs$|^timestamp$/.test(key) ? 0 : value)));
    }
    return out;
  } finally {
    await store.close();
  }
}

async function drive(regions: readonly RegionProcess[], home: string, away: string, run: string): Promise<void> {
  const first = regions[0] as RegionProcess;
  await until('every geozone to be owned and recovered', 120_000, () => regions.flatMap((r) => r.owned().filter((o) => o.ready)).length === 2 && regions.every((r) => r.ready()));
  const owner = regions.find((r) => r.owned().some((o) => o.geozone === away)) as RegionProcess;
  const homeOwner = regions.find((r) => r.owned().some((o) => o.geozone === home)) as RegionProcess;
  const dispatched: string[] = [];
  owner.onDispatch((d) => dispatched.push(d.requestId));
  const [telemetry, request] = inputs(home, away, run, first.clock.nowMs());
  first.publish(telemetry as RegionInput);
  await until('the node to be known', 60_000, () => owner.region.supervisor.shard(away).snapshotOf(`node/n-${run}`) !== undefined);
  first.publish(request as RegionInput);
  await until('the dispatch in the second geozone', 60_000, () => dispatched.includes(`r-${run}`));
  await until('the forward to be acknowledged at home', 60_000, () => homeOwner.region.supervisor.shard(home).snapshotOf(`reservation/r-${run}`)?.value === 'forwarded' || homeOwner.region.supervisor.shard(home).snapshotOf(`reservation/r-${run}`) === undefined);
  for (const region of regions) await region.stop('topology test');
}

kafkaTest('kafka region: a request forwarded over Kafka between two processes gives the same journal records as one forwarded inside a process', async (t) => {
  t.timeout(300_000, 'two topologies');
  const tag = randomUUID().slice(0, 6).toUpperCase().replace(/[^A-Z0-9]/g, 'X');
  // Names sort the same way in both runs (home before away), so forwarding goes the same way.
  const one = { home: `FA${tag}1`, away: `FB${tag}1`, run: `x${tag}` };
  const two = { home: `FA${tag}2`, away: `FB${tag}2`, run: `x${tag}` };

  const regions: RegionProcess[] = [];
  const made = async (zones: readonly string[], group: string, name: string): Promise<RegionProcess> => {
    const region = await regionOn(zones, group, name);
    regions.push(region);
    await region.start();
    return region;
  };
  try {
    const single = await made([one.home, one.away], `topology-one-${tag}`, `topology-one-${tag}`);
    await drive([single], one.home, one.away, one.run);

    const group = `topology-two-${tag}`;
    const left = await made([two.home, two.away], group, `topology-left-${tag}`);
    const right = await made([two.home, two.away], group, `topology-right-${tag}`);
    // The group splits the two geozones between the two processes: the forward crosses Kafka.
    await until('one geozone each', 120_000, () => left.owned().length === 1 && right.owned().length === 1);
    await drive([left, right], two.home, two.away, two.run);
  } finally {
    // Stopping twice answers the first stop's line: a failed run must not leave clients keeping the test alive.
    await Promise.allSettled(regions.map((region) => region.stop('topology test over')));
  }

  for (const [zoneOne, zoneTwo] of [
    [one.home, two.home],
    [one.away, two.away],
  ] as const) {
    const a = await normalisedJournal(zoneOne, { [one.home]: 'HOME', [one.away]: 'AWAY' });
    const b = await normalisedJournal(zoneTwo, { [two.home]: 'HOME', [two.away]: 'AWAY' });
    t.true(a.length > 0);
    t.deepEqual(b, a, `journal of ${zoneTwo} (two processes) vs ${zoneOne} (one process)`);
  }
});
