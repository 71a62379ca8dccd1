// Stacked emotion-share chart of one camera (uPlot), plus the faces per step on a second axis.
//
// uPlot has no stacking of its own: each band is drawn as a bar from 0 up to the cumulative
// share, tallest (neutral, on top) first, so each later, lower bar covers the one before and
// the visible part of a band is its own share. Bars (not lines) because a quiet camera has
// many empty steps, and a lone step between gaps must still show.

import uPlot from 'uplot';
import { EMOTION_COLORS, LABELS, int, pct } from './format.js';

const TOP_DOWN = [...LABELS].reverse();

function timeLabel(ts, seconds) {
  const d = new Date(ts * 1000);
  const two = (n) => String(n).padStart(2, '0');
  const hm = `${two(d.getHours())}:${two(d.getMinutes())}`;
  return seconds ? `${hm}:${two(d.getSeconds())}` : hm;
}

function shareColumns(points) {
  // cumulative[k][i]: share of labels 0..k at step i (null for a step without faces)
  const own = LABELS.map(() => []);
  const cumulative = LABELS.map(() => []);
  for (const p of points) {
    let running = 0;
    LABELS.forEach((label, k) => {
      if (!p.faces) {
        own[k].push(null);
        cumulative[k].push(null);
        return;
      }
      const share = p.counts[label] / p.faces;
      running += share;
      own[k].push(share);
      cumulative[k].push(Math.min(running, 1));
    });
  }
  return { own, cumulative };
}

export class ShareChart {
  /** @param {HTMLElement} container */
  constructor(container) {
    this.container = container;
    this.own = LABELS.map(() => []);
    this.plot = null;
    this.resizeObserver = new ResizeObserver(() => this.resize());
    this.resizeObserver.observe(container);
  }

  size() {
    const width = Math.max(280, Math.floor(this.container.clientWidth || 600));
    return { width, height: Math.round(Math.min(340, Math.max(220, width * 0.4))) };
  }

  build() {
    const bars = uPlot.paths.bars({ size: [1, Infinity], gap: 0, align: 1 });
    const ownValue = (k) => (u, v, si, idx) => (idx === null || idx === undefined ? '–' : pct(this.own[k][idx]));
    const series = [
      { label: 'time', value: (u, ts) => (ts === null || ts === undefined ? '–' : timeLabel(ts, true)) },
      ...TOP_DOWN.map((label) => {
        const k = LABELS.indexOf(label);
        return {
          label,
          scale: 'share',
          paths: bars,
          points: { show: false },
          stroke: EMOTION_COLORS[label],
          fill: EMOTION_COLORS[label],
          width: 0,
          value: ownValue(k),
        };
      }),
      {
        label: 'faces',
        scale: 'faces',
        stroke: 'rgba(230, 237, 243, 0.75)',
        width: 1.25,
        points: { show: false },
        spanGaps: false,
        value: (u, v) => (v === null || v === undefined ? '–' : int(v)),
      },
    ];
    const opts = {
      ...this.size(),
      class: 'share-chart',
      series,
      scales: {
        x: { time: true },
        share: { range: [0, 1] },
        faces: { range: (u, min, max) => [0, Math.max(1, max * 1.15)] },
      },
      axes: [
        {
          stroke: '#9aa4b2',
          grid: { stroke: '#2a313c' },
          ticks: { stroke: '#2a313c' },
          // 24 h clock; seconds only while ticks are less than a minute apart
          values: (u, ticks, axisIdx, space, incr) => ticks.map((t) => timeLabel(t, incr < 60)),
        },
        {
          scale: 'share',
          stroke: '#9aa4b2',
          values: (u, ticks) => ticks.map((t) => pct(t)),
          grid: { stroke: '#2a313c' },
          ticks: { stroke: '#2a313c' },
          size: 48,
        },
        { scale: 'faces', side: 1, stroke: '#9aa4b2', grid: { show: false }, label: 'faces', size: 52 },
      ],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
    };
    this.plot = new uPlot(opts, [[], ...series.slice(1).map(() => [])], this.container);
  }

  /** @param {Array<{ts:number, faces:number, counts:Object}>} points */
  update(points) {
    if (!this.plot) this.build();
    const { own, cumulative } = shareColumns(points);
    this.own = own;
    const xs = points.map((p) => p.ts);
    const faces = points.map((p) => p.faces); // 0, not a gap: no faces is a fact worth a line
    const data = [xs, ...TOP_DOWN.map((label) => cumulative[LABELS.indexOf(label)]), faces];
    this.plot.setData(data);
  }

  resize() {
    if (this.plot) this.plot.setSize(this.size());
  }

  destroy() {
    this.resizeObserver.disconnect();
    if (this.plot) this.plot.destroy();
    this.plot = null;
  }
}
