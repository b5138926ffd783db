import { startCompletionsServer } from '../helpers/completions-server.js';
import { kafkaTest } from '../helpers/kafka-broker.js';
import { newRun, startKafkaAgents, until, type KafkaAgents } from '../helpers/kafka-agents.js';

/**
 * `arcnet agent --kafka`: agents that speak Kafka as the seed draws Layer 1 (telemetry
 * and results produced, signed with their node certificates; dispatches consumed from
 * their geozone's topic in groups of their own) against a Kafka region that accepts
 * only signed input (--node-ca). Requests posted to the region run on the agents'
 * model server and end completed, each run once.
 */

kafkaTest('arcnet agent --kafka: signed telemetry makes the nodes known, dispatches from the geozone topic run on the model server, results complete the requests', async (t) => {
  t.timeout(170_000, 'agents on Kafka');
  const run = newRun();
  const model = `llama-${run.toLowerCase()}`;
  const server = await startCompletionsServer([model], { delayMs: 50 });
  const nodeIds = [1, 2].map((i) => `kafka-node-${run}-${i}`);
  let setup: KafkaAgents | undefined;
  try {
    setup = await startKafkaAgents({ zonePrefix: `AK${run}`, group: `agent-kafka-${run}`, nodeIds, agentArgs: ['--model-server', server.url] });
    const { origin, zone, agents, diagnostics } = setup;
    const known = async (id: string): Promise<boolean> => {
      const response = await fetch(`${origin}/v1/nodes/${id}`);
      return response.status === 200 && ((await response.json()) as { modelsLoaded: string[] }).modelsLoaded.includes(model);
    };
    await until('the agents\' signed telemetry to make their nodes known', async () => (await Promise.all(nodeIds.map(known))).every(Boolean), 120_000, diagnostics);

    const requests = Array.from({ length: 6 }, (_, i) => `kreq-${run}-${i}`);
    for (const id of requests) {
      const response = await fetch(`${origin}/v1/inference`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ 'request-id': id, 'model-id': model, 'context-window': 2048, priority: 'normal', 'requester-geozone': zone }),
      });
      t.is(response.status, 202, `${id} reserved`);
    }
    const live = async (id: string): Promise<boolean> => (await fetch(`${origin}/v1/reservations/${id}`)).status === 200;
    await until('every request to end', async () => (await Promise.all(requests.map(live))).every((isLive) => !isLive), 120_000, diagnostics);
    t.true(requests.every((id) => server.completions.some((c) => typeof c['prompt'] === 'string' && c['prompt'].includes(id))), 'each request reached the model server');

    const lines: Record<string, unknown>[] = [];
    for (const agent of agents) {
      const stopped = await agent.stop();
      t.is(stopped.code, 0);
      lines.push(stopped.line);
    }
    const total = (field: string): number => lines.reduce((sum, line) => sum + (line[field] as number), 0);
    t.is(total('dispatchesRun'), requests.length, 'each dispatch ran once');
    t.is(total('completed'), requests.length);
    t.is(total('resultsOwed'), 0);
    t.true(total('telemetryAccepted') > 0);
    const final = await setup.stopRegion();
    t.is(final['completed'], requests.length, `the region saw every request completed: ${JSON.stringify(final)}\n${diagnostics().slice(-3000)}`);
    t.is(final['expired'], 0);
  } finally {
    await setup?.close();
    await server.close();
  }
});
