// Labels, colours and number formats shared by the grid and the detail view.

/** FER2013 label order, as everywhere in the pipeline. */
export const LABELS = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral'];

/** One colour per emotion, distinguishable on the dark background and in the stacked chart. */
export const EMOTION_COLORS = {
  angry: '#e5484d',
  disgust: '#8da33b',
  fear: '#9d6ff0',
  happy: '#f5c33b',
  sad: '#3e8ee0',
  surprise: '#f0883e',
  neutral: '#8b96a5',
};

/** Window choices of the selector, in seconds. */
export const WINDOWS = [
  ['1m', 60],
  ['5m', 300],
  ['15m', 900],
  ['1h', 3600],
  ['24h', 86400],
];

/** Stream states the readers report, plus the two the dashboard derives (paused, offline). */
export const STATE_TEXT = {
  live: 'live',
  connecting: 'connecting',
  reconnecting: 'reconnecting',
  stalled: 'stalled',
  failed: 'failed',
  stopped: 'stopped',
  paused: 'paused',
  offline: 'no reader',
  unknown: 'unknown',
};

export function pct(x, digits = 0) {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  return `${(x * 100).toFixed(digits)}%`;
}

export function num(x, digits = 1) {
  if (x === null || x === undefined || x === '' || !Number.isFinite(Number(x))) return '–';
  return Number(x).toFixed(digits).replace(/\.0+$/, '');
}

export function int(x) {
  if (x === null || x === undefined || !Number.isFinite(Number(x))) return '–';
  return Math.round(Number(x)).toLocaleString('en-US');
}

export function clock(ts) {
  if (!ts) return '–';
  return new Date(ts * 1000).toLocaleTimeString([], { hour12: false });
}

export function windowName(seconds) {
  const hit = WINDOWS.find(([, s]) => s === seconds);
  return hit ? hit[0] : `${seconds}s`;
}

/**
 * The state a camera card shows: paused cameras are paused whatever their last report said;
 * a camera whose reader has not reported lately (health TTL) is "no reader".
 */
export function streamState(camera, health) {
  if (camera && camera.enabled === false) return 'paused';
  if (!health) return 'unknown';
  if (!health.reporting) return 'offline';
  const state = health.health && health.health.state;
  return typeof state === 'string' && state ? state : 'unknown';
}

/** Sampling rate actually processed (falls back to what the reader reads, then the target). */
export function processedFps(health) {
  const h = (health && health.health) || {};
  for (const key of ['fps_out', 'fps', 'fps_in']) {
    if (h[key] !== undefined && h[key] !== null && h[key] !== '') return Number(h[key]);
  }
  return null;
}

/** A CSS class for a state name (unknown states share one look). */
export function stateClass(state) {
  return `state-${Object.hasOwn(STATE_TEXT, state) ? state : 'unknown'}`;
}
