import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import type { GlobalViewContext, ViewSummary } from '../../machines/global-view.js';

/** Alert thresholds: configuration with these defaults. */
export interface AlertConfig {
  /** A region is silent after this many summary periods without one. */
  readonly silentPeriods: number;
  /** Active nodes falling by at least this fraction against the recent level. */
  readonly activeDropFraction: number;
  /** Average GPU utilisation above this ... */
  readonly gpuUtilHigh: number;
  /** ... for this many consecutive summaries. */
  readonly gpuUtilHighPeriods: number;
  /** Battery's share of active nodes rising by at least this much against the recent level. */
  readonly batteryShiftFraction: number;
  /** Summaries the recent level is measured over. */
  readonly recentWindow: number;
}

export const defaultAlertConfig: AlertConfig = {
  silentPeriods: 3,
  activeDropFraction: 0.2,
  gpuUtilHigh: 0.85,
  gpuUtilHighPeriods: 3,
  batteryShiftFraction: 0.2,
  recentWindow: 5,
};

/** `--alerts` names of the thresholds, and the bounds a value must keep. */
const thresholdFlags = {
  'silent-periods': { field: 'silentPeriods', integer: true, min: 1, max: 1_000 },
  'active-drop': { field: 'activeDropFraction', integer: false, min: 0.01, max: 1 },
  'gpu-high': { field: 'gpuUtilHigh', integer: false, min: 0, max: 1 },
  'gpu-high-periods': { field: 'gpuUtilHighPeriods', integer: true, min: 1, max: 1_000 },
  'battery-shift': { field: 'batteryShiftFraction', integer: false, min: 0.01, max: 1 },
  'recent-window': { field: 'recentWindow', integer: true, min: 1, max: 100 },
} as const satisfies Record<string, { field: keyof AlertConfig; integer: boolean; min: number; max: number }>;

/**
 * Alert thresholds from `--alerts silent-periods=5,gpu-high=0.9,...` (the others keep their
 * defaults); a name or value it does not take is a usage error that lists what it takes.
 */
export function parseAlertThresholds(text: string): AlertConfig {
  const names = Object.keys(thresholdFlags).join(', ');
  const config: Record<keyof AlertConfig, number> = { ...defaultAlertConfig };
  for (const part of text.split(',')) {
    const [name = '', value = '', ...rest] = part.trim().split('=');
    const spec = (thresholdFlags as Record<string, (typeof thresholdFlags)[keyof typeof thresholdFlags]>)[name];
    if (spec === undefined || rest.length > 0) throw new ArcError(ErrorCodes.USAGE, `--alerts ${part.trim()}: use NAME=VALUE with NAME one of ${names}`);
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || (spec.integer && !Number.isInteger(n)) || n < spec.min || n > spec.max) {
      throw new ArcError(ErrorCodes.USAGE, `--alerts ${name}=${value}: use ${spec.integer ? 'a whole number' : 'a number'} from ${spec.min} to ${spec.max}`);
    }
    config[spec.field] = n;
  }
  return config;
}

export type AlertRule = 'region-silent' | 'active-nodes-drop' | 'gpu-util-high' | 'energy-shift-battery';

export interface Alert {
  readonly rule: AlertRule;
  readonly severity: 'info' | 'warn' | 'error';
  readonly message: string;
  /** Why: the rule, the threshold and the numbers it compared. */
  readonly details: Readonly<Record<string, string | number | boolean | null>>;
}

const mean = (values: readonly number[]): number => (values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length);
const batteryShare = (s: ViewSummary): number => (s.activeNodes === 0 ? 0 : s.energyBreakdown.battery / s.activeNodes);
const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/**
 * The detectors that look at a new summary against the view before it (pure,
 * deterministic: no clock, only the summaries). Each fires on the summary where
 * its condition starts to hold, not again while it keeps holding, so one
 * degradation is one alert.
 */
export function summaryAlerts(before: GlobalViewContext, next: ViewSummary, config: AlertConfig): Alert[] {
  const geozone = before.geozone;
  const alerts: Alert[] = [];
  const window = [...before.recent, before.latest].slice(-config.recentWindow);
  const previousWindow = window.slice(0, -1);

  // Active nodes against the recent level (the mean over the window).
  const level = mean(window.map((s) => s.activeNodes));
  const dropped = (s: ViewSummary, lvl: number): boolean => lvl > 0 && s.activeNodes <= lvl * (1 - config.activeDropFraction);
  const levelBefore = mean(previousWindow.map((s) => s.activeNodes));
  if (dropped(next, level) && !(previousWindow.length > 0 && dropped(before.latest, levelBefore))) {
    alerts.push({
      rule: 'active-nodes-drop',
      severity: 'warn',
      message: `${geozone}: active nodes fell from a recent level of ${round3(level)} to ${next.activeNodes}`,
      details: {
        geozone,
        rule: 'active-nodes-drop',
        explanation: `active nodes ${next.activeNodes} <= (1 - ${config.activeDropFraction}) x mean of the last ${window.length} summaries (${round3(level)})`,
        activeNodes: next.activeNodes,
        recentLevel: round3(level),
        threshold: config.activeDropFraction,
        window: window.length,
      },
    });
  }

  // GPU utilisation high for N consecutive summaries: fires when the streak reaches N.
  const streak = (list: readonly ViewSummary[]): number => {
    let n = 0;
    for (let i = list.length - 1; i >= 0 && (list[i] as ViewSummary).avgGpuUtil > config.gpuUtilHigh; i--) n++;
    return n;
  };
  const all = [...before.recent, before.latest, next];
  if (streak(all) === config.gpuUtilHighPeriods) {
    alerts.push({
      rule: 'gpu-util-high',
      severity: 'warn',
      message: `${geozone}: average GPU utilisation above ${config.gpuUtilHigh * 100} % for ${config.gpuUtilHighPeriods} summary periods`,
      details: {
        geozone,
        rule: 'gpu-util-high',
        explanation: `avg-gpu-util > ${config.gpuUtilHigh} in each of the last ${config.gpuUtilHighPeriods} summaries`,
        avgGpuUtil: round3(next.avgGpuUtil),
        threshold: config.gpuUtilHigh,
        periods: config.gpuUtilHighPeriods,
      },
    });
  }

  // Energy mix shifting to battery: battery's share against its recent level.
  const shareLevel = mean(window.map(batteryShare));
  const shifted = (s: ViewSummary, lvl: number): boolean => batteryShare(s) - lvl >= config.batteryShiftFraction;
  const shareLevelBefore = mean(previousWindow.map(batteryShare));
  if (shifted(next, shareLevel) && !(previousWindow.length > 0 && shifted(before.latest, shareLevelBefore))) {
    alerts.push({
      rule: 'energy-shift-battery',
      severity: 'warn',
      message: `${geozone}: energy mix shifting to battery (${Math.round(batteryShare(next) * 100)} % of active nodes, recent level ${Math.round(shareLevel * 100)} %)`,
      details: {
        geozone,
        rule: 'energy-shift-battery',
        explanation: `battery share ${round3(batteryShare(next))} - recent share ${round3(shareLevel)} >= ${config.batteryShiftFraction}`,
        batteryShare: round3(batteryShare(next)),
        recentBatteryShare: round3(shareLevel),
        threshold: config.batteryShiftFraction,
        cogen: next.energyBreakdown.cogen,
        grid: next.energyBreakdown.grid,
        battery: next.energyBreakdown.battery,
      },
    });
  }
  return alerts;
}

/** The silence detector: the view's deadline passed (the timer wheel fired it on logical time). */
export function silenceAlert(view: GlobalViewContext, atMs: number, config: AlertConfig): Alert {
  const lastMs = view.latest.receivedAtMs;
  return {
    rule: 'region-silent',
    severity: 'error',
    message: `${view.geozone}: no regional summary for ${config.silentPeriods} summary periods`,
    details: {
      geozone: view.geozone,
      rule: 'region-silent',
      explanation: `no summary since logical time ${lastMs}; ${config.silentPeriods} periods of ${view.summaryEveryMs} ms passed at ${atMs}`,
      lastSummaryAtMs: lastMs,
      silentForMs: atMs - lastMs,
      summaryEveryMs: view.summaryEveryMs,
      periods: config.silentPeriods,
    },
  };
}
