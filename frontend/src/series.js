// Time series of one camera: /timeseries (resampled server-side) when the API has it, else
// /series (per-second or per-minute buckets) resampled here to a similar number of steps.

import { api, ApiError, cameraPath } from './api.js';
import { LABELS } from './format.js';

/** Steps a chart shows at most, whatever the window. */
export const TARGET_STEPS = 120;

// null = not probed yet; false once the route answered "Not Found" (an older API).
let timeseriesRoute = null;

/** Step (seconds) for a window: about TARGET_STEPS steps, whole seconds. */
export function stepFor(windowS) {
  return Math.max(1, Math.ceil(windowS / TARGET_STEPS));
}

function countsOf(point) {
  const counts = point.counts || {};
  const faces = Number(point.faces ?? LABELS.reduce((sum, l) => sum + Number(counts[l] || 0), 0));
  if (point.shares && !point.counts) {
    // shares-only points: turn them back into counts so resampling weights them by faces
    return { faces, counts: Object.fromEntries(LABELS.map((l) => [l, Number(point.shares[l] || 0) * faces])) };
  }
  return { faces, counts: Object.fromEntries(LABELS.map((l) => [l, Number(counts[l] || 0)])) };
}

/**
 * Points of either endpoint as ``{ts, faces, counts}``, oldest first.
 * @param {any} body a list of points or an object holding one (``points``/``series``/``data``)
 */
export function normalise(body) {
  const list = Array.isArray(body) ? body : (body && (body.points || body.series || body.data)) || [];
  return list
    .map((p) => ({ ts: Number(p.ts ?? p.t ?? p.start), ...countsOf(p) }))
    .filter((p) => Number.isFinite(p.ts))
    .sort((a, b) => a.ts - b.ts);
}

/** Merge consecutive points into ``step``-second bins aligned to the epoch. */
export function resample(points, step) {
  if (points.length < 2) return points;
  const spacing = points[1].ts - points[0].ts;
  if (step <= spacing) return points;
  const bins = new Map();
  for (const p of points) {
    const start = Math.floor(p.ts / step) * step;
    let bin = bins.get(start);
    if (!bin) {
      bin = { ts: start, faces: 0, counts: Object.fromEntries(LABELS.map((l) => [l, 0])) };
      bins.set(start, bin);
    }
    bin.faces += p.faces;
    for (const l of LABELS) bin.counts[l] += p.counts[l];
  }
  return [...bins.values()].sort((a, b) => a.ts - b.ts);
}

/**
 * Load a camera's series for a window.
 * @returns {Promise<{points: Array<{ts:number, faces:number, counts:Object}>, step:number, source:string}>}
 */
export async function loadSeries(cameraId, windowS) {
  const step = stepFor(windowS);
  if (timeseriesRoute !== false) {
    try {
      const body = await api(cameraPath(cameraId, `timeseries?window=${windowS}&step=${step}`));
      timeseriesRoute = true;
      const points = normalise(body);
      // the API rounds the step up to whole buckets: the spacing tells the step it used
      const effective = points.length > 1 ? points[1].ts - points[0].ts : step;
      return { points, step: effective, source: 'timeseries' };
    } catch (err) {
      if (!(err instanceof ApiError) || (err.status !== 404 && err.status !== 422)) throw err;
      // FastAPI's own 404 for an unknown route says "Not Found"; a missing camera says more.
      if (err.status === 404 && err.detail === 'Not Found') timeseriesRoute = false;
    }
  }
  const body = await api(cameraPath(cameraId, `series?window=${windowS}`));
  const points = normalise(body);
  const spacing = points.length > 1 ? points[1].ts - points[0].ts : step;
  const effective = Math.max(step, spacing);
  return { points: resample(points, Math.ceil(effective / spacing) * spacing), step: effective, source: 'series' };
}
