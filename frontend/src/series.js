// Time series of one camera from /timeseries, resampled server-side to about TARGET_STEPS steps.

import { api, cameraPath } from './api.js';
import { LABELS } from './format.js';

/** Steps a chart shows at most, whatever the window. */
export const TARGET_STEPS = 120;

/** Step (seconds) for a window: about TARGET_STEPS steps, whole seconds. */
export function stepFor(windowS) {
  return Math.max(1, Math.ceil(windowS / TARGET_STEPS));
}

/**
 * /timeseries points as ``{ts, faces, counts}``, oldest first.
 * @param {Array<{ts:number, faces:number, counts:Object}>} body the API's SeriesPoint list
 */
export function normalise(body) {
  return body
    .map((p) => ({
      ts: Number(p.ts),
      faces: Number(p.faces),
      counts: Object.fromEntries(LABELS.map((l) => [l, Number(p.counts[l] || 0)])),
    }))
    .sort((a, b) => a.ts - b.ts);
}

/**
 * Load a camera's series for a window.
 * @returns {Promise<{points: Array<{ts:number, faces:number, counts:Object}>, step:number}>}
 */
export async function loadSeries(cameraId, windowS) {
  const step = stepFor(windowS);
  const points = normalise(await api(cameraPath(cameraId, `timeseries?window=${windowS}&step=${step}`)));
  // the API rounds the step up to whole buckets: the spacing tells the step it used
  const effective = points.length > 1 ? points[1].ts - points[0].ts : step;
  return { points, step: effective };
}
