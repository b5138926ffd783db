import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { limits, nodeTelemetrySchema, type NodeTelemetryV2 } from '../actors/wire.js';
import { readNvidiaSmi, type GpuReading } from '../adapters/gpu/nvidia-smi.js';
import type { OpenAiModelServer } from '../adapters/model-server/openai-model-server.js';
import type { EnergyOptions, GpuOptions } from './agent-options.js';

const MAX_BATTERY_FILE_BYTES = 4096;
const NVIDIA_SMI_TIMEOUT_MS = 5_000;
/** A model server that takes longer to list its models is reported as serving none this time. */
const LIST_MODELS_TIMEOUT_MS = 5_000;
const energySources = ['cogen', 'grid', 'battery'] as const;

export interface TelemetrySourceOptions {
  readonly nodeId: string;
  readonly geozone: string;
  readonly geohash: string;
  readonly nodeName?: string | undefined;
  readonly energy: EnergyOptions;
  readonly gpu: GpuOptions;
  readonly models?: readonly string[] | undefined;
  readonly modelServer?: OpenAiModelServer | undefined;
  readonly logger: Logger;
}

/**
 * Builds each NodeTelemetry v2 report from what the host says now: GPU figures
 * from nvidia-smi when it is installed (else the configured ones), battery and
 * energy source from the site's file when one is given (else the configured
 * ones), and the models the model server answers for right now, intersected
 * with the models this node is meant to offer. A model server that does not
 * answer advertises nothing: the region must not route to a model that cannot run.
 */
export class TelemetrySource {
  private nvidiaSmiPresent = true;
  private lastEnergy: { energySource: (typeof energySources)[number]; batteryLevel: number };
  /** What the last report advertised (the "model cache" as far as the region knows). */
  modelsLoaded: readonly string[] = [];

  constructor(private readonly options: TelemetrySourceOptions) {
    this.lastEnergy = { energySource: options.energy.energySource, batteryLevel: options.energy.batteryLevel };
  }

  async report(draining: boolean): Promise<NodeTelemetryV2> {
    const [gpu, energy, models] = await Promise.all([this.gpu(), this.energy(), this.models()]);
    this.modelsLoaded = models;
    return nodeTelemetrySchema.parse({
      'node-id': this.options.nodeId,
      geozone: this.options.geozone,
      geohash: this.options.geohash,
      'energy-source': energy.energySource,
      'battery-level': energy.batteryLevel,
      'gpu-utilization': gpu.utilization,
      'models-loaded': models,
      timestamp: new Date().toISOString(),
      ...(this.options.nodeName === undefined ? {} : { 'node-name': this.options.nodeName }),
      'gpu-count': gpu.gpuCount,
      ...(draining ? { status: 'draining' } : {}),
    });
  }

  private async gpu(): Promise<GpuReading> {
    const configured = { gpuCount: this.options.gpu.gpuCount, utilization: this.options.gpu.gpuUtilization };
    const command = this.options.gpu.nvidiaSmi;
    if (command === undefined || !this.nvidiaSmiPresent) return configured;
    try {
      const reading = await readNvidiaSmi(command, NVIDIA_SMI_TIMEOUT_MS);
      if (reading === undefined) {
        // Absent: the configuration is the truth from now on (no point looking every 10 s).
        this.nvidiaSmiPresent = false;
        this.options.logger.info({ command }, 'nvidia-smi not found: reporting the configured GPU count and utilisation');
        return configured;
      }
      return { gpuCount: Math.min(64, reading.gpuCount), utilization: Math.min(1, reading.utilization) };
    } catch (error) {
      this.options.logger.warn({ err: error }, 'nvidia-smi failed: reporting the configured GPU figures this time');
      return configured;
    }
  }

  private async energy(): Promise<{ energySource: (typeof energySources)[number]; batteryLevel: number }> {
    const file = this.options.energy.batteryFile;
    if (file === undefined) return this.lastEnergy;
    try {
      const text = (await readFile(file, 'utf8')).slice(0, MAX_BATTERY_FILE_BYTES).trim();
      this.lastEnergy = parseBatteryFile(text, this.lastEnergy);
    } catch (error) {
      // A file being rewritten, or gone for a moment: the last good reading stands.
      this.options.logger.warn({ file, err: error instanceof Error ? error.message : String(error) }, 'battery file unreadable: reporting the last good reading');
    }
    return this.lastEnergy;
  }

  private async models(): Promise<string[]> {
    const server = this.options.modelServer;
    if (server === undefined) return [];
    let served: string[];
    try {
      served = await server.listModels(AbortSignal.timeout(LIST_MODELS_TIMEOUT_MS));
    } catch (error) {
      this.options.logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'model server did not list its models: advertising none');
      return [];
    }
    const wanted = this.options.models;
    const valid = served.filter((model) => model.length <= limits.maxIdLength && /^[A-Za-z0-9._:@/-]+$/.test(model));
    const chosen = wanted === undefined ? valid : valid.filter((model) => wanted.includes(model));
    return [...new Set(chosen)].slice(0, limits.maxModelsLoaded);
  }
}

/**
 * The battery file: a bare number (the battery level, 0..1), or a JSON object
 * with `battery-level` and/or `energy-source`. Throws on anything else, so a
 * half-written file is reported and the previous reading kept.
 */
export function parseBatteryFile(
  text: string,
  previous: { energySource: (typeof energySources)[number]; batteryLevel: number },
): { energySource: (typeof energySources)[number]; batteryLevel: number } {
  const level = (value: unknown): number => {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1) throw new Error(`battery level must be a number from 0 to 1, got ${JSON.stringify(value)}`);
    return value;
  };
  if (/^[0-9.]+$/.test(text)) return { energySource: previous.energySource, batteryLevel: level(Number(text)) };
  const parsed = JSON.parse(text) as unknown;
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('battery file must hold a number or a JSON object');
  const object = parsed as Record<string, unknown>;
  const source = object['energy-source'];
  if (source !== undefined && !energySources.includes(source as never)) throw new Error(`energy-source must be cogen, grid or battery, got ${JSON.stringify(source)}`);
  return {
    energySource: (source as (typeof energySources)[number] | undefined) ?? previous.energySource,
    batteryLevel: object['battery-level'] === undefined ? previous.batteryLevel : level(object['battery-level']),
  };
}
