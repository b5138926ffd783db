import type { GlobalViewContext } from '../../machines/global-view.js';

export interface PlacementCandidate {
  readonly geozone: string;
  readonly silent: boolean;
  readonly view: GlobalViewContext;
}

export interface Placement {
  readonly geozone: string | null;
  /** Why this geozone (or why none), journaled with the decision. */
  readonly reason: string;
  readonly ranked: readonly string[];
}

const share = (part: number, whole: number): number => (whole === 0 ? 0 : part / whole);

/**
 * Where a federated job goes (pure): among geozones that are reporting and have
 * at least `minParticipants` active nodes, the best energy mix first (a larger
 * cogen share, then a larger grid share, then a smaller battery share), then
 * more active nodes, then the geozone id, so equal views always give the same
 * answer. RegionalSummary v1 does not say which models a region's nodes hold,
 * so "nodes with the model" is the region's to check when it picks participants.
 */
export function rankGeozones(candidates: readonly PlacementCandidate[], minParticipants: number): Placement {
  const eligible = candidates.filter((c) => !c.silent && c.view.latest.activeNodes >= minParticipants);
  if (eligible.length === 0) {
    return { geozone: null, reason: `no reporting geozone has ${minParticipants} active nodes (${candidates.length} known)`, ranked: [] };
  }
  const key = (c: PlacementCandidate): [number, number, number, number] => {
    const s = c.view.latest;
    return [share(s.energyBreakdown.cogen, s.activeNodes), share(s.energyBreakdown.grid, s.activeNodes), share(s.energyBreakdown.battery, s.activeNodes), s.activeNodes];
  };
  const sorted = [...eligible].sort((a, b) => {
    const [ac, ag, ab, an] = key(a);
    const [bc, bg, bb, bn] = key(b);
    if (ac !== bc) return bc - ac;
    if (ag !== bg) return bg - ag;
    if (ab !== bb) return ab - bb;
    if (an !== bn) return bn - an;
    return a.geozone < b.geozone ? -1 : a.geozone > b.geozone ? 1 : 0;
  });
  const best = sorted[0] as PlacementCandidate;
  const s = best.view.latest;
  return {
    geozone: best.geozone,
    reason: `best energy mix of ${eligible.length} eligible geozone(s): cogen ${s.energyBreakdown.cogen}, grid ${s.energyBreakdown.grid}, battery ${s.energyBreakdown.battery} of ${s.activeNodes} active (>= ${minParticipants})`,
    ranked: sorted.map((c) => c.geozone),
  };
}
