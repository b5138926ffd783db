import { spawnSync } from 'node:child_process';
import { inferenceBody, jsonHeaders, telemetryBody, withHttpRegion } from '../helpers/http-region.js';
import { promtoolTest } from '../helpers/promtool.js';

promtoolTest('GET /metrics passes promtool check metrics, with every family the operators chart', async (t, promtool) => {
  await withHttpRegion(async ({ app }) => {
    await app.inject({ method: 'POST', url: '/v1/telemetry', headers: jsonHeaders, payload: telemetryBody('n1') });
    await app.inject({ method: 'POST', url: '/v1/inference', headers: jsonHeaders, payload: inferenceBody('p1') });
    await app.inject({ method: 'POST', url: '/v1/inference', headers: jsonHeaders, payload: inferenceBody('p2', 'mixtral-8x22b') });
    const exposition = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    const checked = spawnSync(promtool, ['check', 'metrics'], { input: exposition, encoding: 'utf8' });
    t.is(checked.status, 0, `promtool: ${checked.stdout}${checked.stderr}`);
    t.is(`${checked.stdout}${checked.stderr}`.trim(), '', 'no lint findings either');
    for (const family of [
      'arcnet_routed_total',
      'arcnet_rejected_total',
      'arcnet_forwarded_total',
      'arcnet_expired_total',
      'arcnet_node_timeouts_total',
      'arcnet_nodes',
      'arcnet_journal_append_seconds',
      'arcnet_routing_seconds',
      'arcnet_input_backlog_messages',
    ]) {
      t.regex(exposition, new RegExp(`^# TYPE ${family} `, 'm'), family);
    }
    // A broken exposition is caught (the check can fail).
    const broken = spawnSync(promtool, ['check', 'metrics'], { input: `${exposition}arcnet_nodes{geozone="CAISO" 1\n`, encoding: 'utf8' });
    t.not(broken.status, 0);
  });
});
