// A small map of the nodes: each geohash decoded to its cell's centre, fitted
// to the canvas; fill is the node's status, the ring its energy source.
// (Served from simulations/geohash.ts as compiled; tsconfig.page.json maps the path there for type checking.)
import { decodeGeohash } from '/inspector/assets/geohash.js';

/** @import { GeozoneNodes } from './api.js' */

/** @type {Record<string, string>} Status → fill; an unknown status is drawn dark grey. */
const statusColour = { online: '#1f9d55', draining: '#e0a100', offline: '#8a8f98' };
/** @type {Record<string, string>} Energy source → ring; an unknown one is drawn dark grey. */
const energyColour = { cogen: '#7b3fe4', grid: '#1f6fd1', battery: '#e4572e' };

/**
 * Draws the nodes of `geozones`; returns how many were drawn.
 * @param {HTMLCanvasElement} canvas
 * @param {GeozoneNodes[]} geozones
 */
export function drawMap(canvas, geozones) {
  const context = canvas.getContext('2d');
  if (context === null) throw new Error('the map canvas has no 2d context');
  context.clearRect(0, 0, canvas.width, canvas.height);
  /** @type {{ lng: number, lat: number, status: string, energy: string }[]} */
  const points = [];
  for (const { nodes } of geozones) {
    for (const [geohash, status, energy] of nodes) {
      try {
        const [lng, lat] = decodeGeohash(geohash);
        points.push({ lng, lat, status, energy });
      } catch {
        // A malformed geohash is left off the map rather than stopping it.
      }
    }
  }
  if (points.length === 0) {
    context.fillStyle = '#667';
    context.fillText('no nodes', 12, 20);
    return 0;
  }
  let minLng = Infinity, maxLng = -Infinity, minLat = Infinity, maxLat = -Infinity;
  for (const p of points) {
    minLng = Math.min(minLng, p.lng); maxLng = Math.max(maxLng, p.lng);
    minLat = Math.min(minLat, p.lat); maxLat = Math.max(maxLat, p.lat);
  }
  const pad = 14;
  const spanLng = Math.max(maxLng - minLng, 0.5);
  const spanLat = Math.max(maxLat - minLat, 0.5);
  const scale = Math.min((canvas.width - 2 * pad) / spanLng, (canvas.height - 2 * pad) / spanLat);
  const radius = points.length > 2000 ? 2 : 3.5;
  for (const p of points) {
    const x = pad + (p.lng - minLng) * scale;
    const y = canvas.height - pad - (p.lat - minLat) * scale;
    context.beginPath();
    context.arc(x, y, radius, 0, Math.PI * 2);
    context.fillStyle = statusColour[p.status] ?? '#333';
    context.fill();
    context.lineWidth = 1.2;
    context.strokeStyle = energyColour[p.energy] ?? '#333';
    context.stroke();
  }
  return points.length;
}
