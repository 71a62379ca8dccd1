// Per-camera detail view: stacked share chart, summary table, stream health, snapshot.

import { api, ApiError, cameraPath } from './api.js';
import { ShareChart } from './chart.js';
import { el, setChildren, setText } from './dom.js';
import {
  EMOTION_COLORS, LABELS, clock, int, num, pct, processedFps, streamState, windowName,
} from './format.js';
import { shareBar, stateBadge, updateBadge, updateShareBar } from './grid.js';
import { loadSeries } from './series.js';

// Health fields shown in the health panel, in this order, with their labels.
const HEALTH_FIELDS = [
  ['fps_in', 'fps read'],
  ['fps_out', 'fps processed'],
  ['fps_target', 'fps target'],
  ['latency_ms', 'detect latency (ms)'],
  ['inflight', 'frames in flight'],
  ['dropped', 'frames dropped'],
  ['faces', 'faces (last frame)'],
  ['reconnects', 'reconnects'],
  ['stalls', 'stalls'],
  ['detect_errors', 'detect errors'],
  ['publish_refused', 'faces refused'],
  ['width', 'width'],
  ['height', 'height'],
];

export class DetailView {
  /**
   * @param {string} cameraId
   * @param {{onToggle: Function, onRemove: Function}} actions
   */
  constructor(cameraId, actions) {
    this.id = cameraId;
    this.snapshotUrl = null;
    const r = (this.refs = {});
    r.title = el('h2', { class: 'detail-title' });
    r.id = el('code', { class: 'card-id', text: cameraId });
    r.badge = stateBadge();
    r.url = el('code', { class: 'detail-url' });
    r.toggle = el('button', { type: 'button', class: 'btn', onclick: () => actions.onToggle(cameraId) });
    r.remove = el('button', {
      type: 'button', class: 'btn btn-danger', text: 'Remove', onclick: () => actions.onRemove(cameraId),
    });
    r.error = el('p', { class: 'panel-error', role: 'alert', hidden: true });
    r.chartTitle = el('h3');
    r.chart = el('div', { class: 'chart', id: 'share-chart' });
    r.chartNote = el('p', { class: 'muted small' });
    r.summaryTitle = el('h3');
    r.table = el('tbody');
    r.totals = el('p', { class: 'muted small' });
    r.bar = shareBar({}, 0);
    r.health = el('dl', { class: 'health-list' });
    r.lastError = el('p', { class: 'health-error', hidden: true });
    r.snapshotImg = el('img', { class: 'snapshot-img', alt: 'Latest annotated frame' });
    r.snapshotNote = el('p', { class: 'muted small' });
    r.snapshot = el('section', { class: 'panel snapshot-panel', hidden: true },
      el('h3', { text: 'Latest frame' }), r.snapshotImg, r.snapshotNote);
    r.root = el('section', { class: 'detail', dataset: { cameraId } },
      el('nav', { class: 'crumbs' }, el('a', { href: '#/', text: '← All cameras' })),
      el('header', { class: 'detail-head' },
        el('div', { class: 'card-names' }, r.title, el('div', { class: 'detail-sub' }, r.id, r.url)),
        el('div', { class: 'detail-actions' }, r.badge, r.toggle, r.remove)),
      r.error,
      el('div', { class: 'detail-grid' },
        el('section', { class: 'panel chart-panel' }, r.chartTitle, r.chart, r.chartNote),
        el('section', { class: 'panel summary-panel' }, r.summaryTitle, r.bar,
          el('table', { class: 'summary-table' },
            el('thead', {}, el('tr', {},
              el('th', { text: 'emotion' }), el('th', { text: 'faces' }),
              el('th', { text: 'share' }), el('th', { text: 'mean prob.' }))),
            r.table),
          r.totals),
        el('section', { class: 'panel health-panel' }, el('h3', { text: 'Stream health' }), r.health, r.lastError),
        r.snapshot),
    );
    this.chart = null;
    this.destroyed = false;
  }

  get root() {
    return this.refs.root;
  }

  /** Fetch everything the view shows for ``windowS`` and render it. */
  async refresh(windowS) {
    const r = this.refs;
    const path = (rest) => cameraPath(this.id, rest);
    const [camera, summary, health, series] = await Promise.allSettled([
      api(path()),
      api(path(`summary?window=${windowS}`)),
      api(path('health')),
      loadSeries(this.id, windowS),
    ]);
    if (this.destroyed) return; // the user left this view while the reads were under way
    if (camera.status === 'rejected') {
      // Unknown camera, bad token, API down: one clear message instead of empty panels.
      r.error.hidden = false;
      setText(r.error, camera.reason.status === 404 ? `camera "${this.id}" is not registered` : camera.reason.message);
      if (!(camera.reason instanceof ApiError)) throw camera.reason;
      return;
    }
    const errors = [summary, health, series].filter((x) => x.status === 'rejected').map((x) => x.reason.message);
    r.error.hidden = errors.length === 0;
    setText(r.error, [...new Set(errors)].join(' · '));
    const cam = camera.value;
    this.renderHead(cam, health.value || null);
    if (series.status === 'fulfilled') this.renderChart(series.value, windowS);
    if (summary.status === 'fulfilled') this.renderSummary(summary.value, windowS);
    if (health.status === 'fulfilled') this.renderHealth(health.value);
    await this.renderSnapshot(cam);
  }

  renderHead(cam, health) {
    const r = this.refs;
    setText(r.title, cam.name || cam.id);
    setText(r.url, cam.url); // already redacted by the API
    updateBadge(r.badge, streamState(cam, health));
    setText(r.toggle, cam.enabled ? 'Pause' : 'Resume');
    document.title = `${cam.name || cam.id} · emotion-pipeline`;
  }

  renderChart({ points, step }, windowS) {
    const r = this.refs;
    setText(r.chartTitle, `Emotion share over the last ${windowName(windowS)}`);
    if (!this.chart) this.chart = new ShareChart(r.chart);
    this.chart.update(points);
    const faces = points.reduce((sum, p) => sum + p.faces, 0);
    r.chart.dataset.faces = String(faces);
    r.chart.dataset.points = String(points.length);
    setText(r.chartNote, `${int(faces)} faces in ${points.length} steps of ${num(step, 0)} s; ` +
      'bands stack the share of each emotion per step, the line counts faces.');
  }

  renderSummary(s, windowS) {
    const r = this.refs;
    setText(r.summaryTitle, `Summary · last ${windowName(windowS)}`);
    updateShareBar(r.bar, s.shares, s.faces);
    const rows = LABELS.map((label) => el('tr', { dataset: { label }, class: label === s.dominant ? 'dominant-row' : null },
      el('td', {}, el('span', { class: 'swatch', style: { background: EMOTION_COLORS[label] } }), label),
      el('td', { class: 'num', text: int(s.counts[label]) }),
      el('td', { class: 'num', text: pct(s.shares[label], 1) }),
      el('td', { class: 'num', text: num(s.mean_probs[label], 3) })));
    setChildren(r.table, rows);
    const parts = [`${int(s.faces)} faces`, `${int(s.distinct_tracks)} people (tracks)`];
    parts.push(s.dominant ? `dominant: ${s.dominant} ${pct(s.shares[s.dominant])}` : 'no faces in the window');
    if (s.model) parts.push(`model ${s.model}`);
    setText(r.totals, parts.join(' · '));
    r.totals.dataset.dominant = s.dominant || '';
  }

  renderHealth(h) {
    const r = this.refs;
    const fields = h.health || {};
    const items = [['reporting', h.reporting ? 'yes' : 'no (reader silent)']];
    for (const [key, label] of HEALTH_FIELDS) {
      if (fields[key] !== undefined) items.push([label, typeof fields[key] === 'number' ? num(fields[key], 1) : fields[key]]);
    }
    if (fields.last_frame_ts) items.push(['last frame', clock(Number(fields.last_frame_ts))]);
    const fps = processedFps(h);
    if (fps !== null && fields.fps_out === undefined) items.push(['fps', num(fps, 1)]);
    for (const [name, value] of Object.entries(h.counters || {})) items.push([`${name} (total)`, int(value)]);
    setChildren(r.health, items.map(([k, v]) => [el('dt', { text: k }), el('dd', { text: String(v) })]));
    r.lastError.hidden = !fields.last_error;
    setText(r.lastError, fields.last_error ? `last error: ${fields.last_error}` : '');
  }

  async renderSnapshot(cam) {
    const r = this.refs;
    r.snapshot.hidden = !cam.keep_frames;
    if (!cam.keep_frames) return;
    try {
      // fetch + object URL, not <img src>: an <img> request could not carry the token.
      const response = await api(cameraPath(this.id, 'snapshot.jpg'), { raw: true });
      const blob = await response.blob();
      if (this.destroyed) return;
      const url = URL.createObjectURL(blob);
      if (this.snapshotUrl) URL.revokeObjectURL(this.snapshotUrl);
      this.snapshotUrl = url;
      r.snapshotImg.src = url;
      r.snapshotImg.hidden = false;
      setText(r.snapshotNote, `as of ${clock(Date.now() / 1000)}; kept only briefly, never as a history`);
    } catch (err) {
      r.snapshotImg.hidden = true;
      setText(r.snapshotNote, err.status === 404 ? 'no recent frame (none with a face yet, or the reader is idle)' : err.message);
    }
  }

  destroy() {
    this.destroyed = true;
    if (this.chart) this.chart.destroy();
    if (this.snapshotUrl) URL.revokeObjectURL(this.snapshotUrl);
    this.chart = null;
  }
}
