import type { RegionInput } from '../actors/region-io.js';
import type { EnergySource } from '../machines/node.js';
import { Prng } from '../runtime/random.js';
import { modelCatalogue } from '../simulations/fleet.js';

/** Telemetry for `count` nodes in one geozone, seeded, with the simulator's model mix. */
export function fleetTelemetry(count: number, geozone: string, atMs: number, seed = 42): RegionInput[] {
  const prng = new Prng(seed);
  const inputs: RegionInput[] = [];
  for (let i = 0; i < count; i++) {
    const roll = prng.next();
    const energySource: EnergySource = roll < 0.3 ? 'cogen' : roll < 0.8 ? 'grid' : 'battery';
    const modelsLoaded = modelCatalogue.filter((m) => prng.chance(m.onNodes)).map((m) => m.modelId);
    if (modelsLoaded.length === 0) modelsLoaded.push('llama-3-8b');
    inputs.push({
      type: 'telemetry',
      nodeId: `${geozone}-${String(i).padStart(5, '0')}`,
      report: {
        geohash: '9q9hvu',
        geozone,
        energySource,
        batteryLevel: Math.round(prng.between(0.1, 1) * 1000) / 1000,
        gpuUtilization: Math.round(prng.between(0, 0.95) * 1000) / 1000,
        gpuCount: prng.chance(0.5) ? 8 : 4,
        modelsLoaded,
        reportedAtMs: atMs,
        draining: false,
      },
    });
  }
  return inputs;
}

/** Models requested by the workload (traffic-weighted), common ones only so routing mostly succeeds. */
export const benchModels = ['llama-3-70b', 'llama-3-8b', 'mistral-7b', 'stable-diffusion-xl', 'whisper-large-v3'];
