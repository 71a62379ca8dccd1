// The camera grid: one card per camera, updated in place on every poll.

import { el, setChildren, setText } from './dom.js';
import {
  EMOTION_COLORS, LABELS, STATE_TEXT, int, num, pct, processedFps, stateClass, streamState,
} from './format.js';

/** A horizontal bar of the 7 shares (empty when no faces). */
export function shareBar(shares, faces) {
  const bar = el('div', { class: 'sharebar', role: 'img' });
  updateShareBar(bar, shares, faces);
  return bar;
}

export function updateShareBar(bar, shares, faces) {
  const parts = [];
  const described = [];
  if (faces > 0 && shares) {
    for (const label of LABELS) {
      const share = Number(shares[label] || 0);
      if (share <= 0) continue;
      described.push(`${label} ${pct(share)}`);
      parts.push(el('span', {
        class: 'sharebar-part',
        title: `${label} ${pct(share, 1)}`,
        dataset: { label },
        style: { width: `${(share * 100).toFixed(2)}%`, background: EMOTION_COLORS[label] },
      }));
    }
  }
  bar.setAttribute('aria-label', described.length ? described.join(', ') : 'no faces in the window');
  setChildren(bar, parts.length ? parts : el('span', { class: 'sharebar-empty' }));
}

/** The coloured stream-state badge. */
export function stateBadge() {
  return el('span', { class: 'badge' });
}

export function updateBadge(badge, state) {
  badge.className = `badge ${stateClass(state)}`;
  setText(badge, STATE_TEXT[state] || state);
  badge.dataset.state = state;
}

/**
 * One camera card.
 * @param {string} id camera id
 * @param {{onOpen: Function, onToggle: Function, onRemove: Function}} actions
 */
export function createCard(id, actions) {
  const refs = {};
  refs.title = el('a', { class: 'card-title', href: `#/cameras/${encodeURIComponent(id)}` });
  refs.id = el('code', { class: 'card-id', text: id });
  refs.badge = stateBadge();
  refs.domLabel = el('span', { class: 'dominant-label' });
  refs.domShare = el('span', { class: 'dominant-share' });
  refs.bar = shareBar({}, 0);
  refs.fps = el('span', { class: 'stat-value' });
  refs.faces = el('span', { class: 'stat-value' });
  refs.people = el('span', { class: 'stat-value' });
  refs.toggle = el('button', { type: 'button', class: 'btn btn-small', onclick: () => actions.onToggle(id) });
  refs.remove = el('button', {
    type: 'button', class: 'btn btn-small btn-danger', text: 'Remove', onclick: () => actions.onRemove(id),
  });
  refs.error = el('p', { class: 'card-error', hidden: true });
  const stat = (name, value) => el('div', { class: 'stat' }, el('span', { class: 'stat-name', text: name }), value);
  refs.root = el('article', { class: 'card', dataset: { cameraId: id } },
    el('header', { class: 'card-head' }, el('div', { class: 'card-names' }, refs.title, refs.id), refs.badge),
    el('div', { class: 'dominant' }, refs.domLabel, refs.domShare),
    refs.bar,
    el('div', { class: 'stats' }, stat('fps', refs.fps), stat('faces', refs.faces), stat('people', refs.people)),
    refs.error,
    el('footer', { class: 'card-actions' },
      el('button', { type: 'button', class: 'btn btn-small', text: 'Details', onclick: () => actions.onOpen(id) }),
      refs.toggle, refs.remove),
  );
  return refs;
}

/**
 * Update a card from the latest poll.
 * @param {object} refs from createCard
 * @param {{camera: object, summary: object|null, health: object|null, error: string|null}} data
 */
export function updateCard(refs, { camera, summary, health, error }) {
  setText(refs.title, camera.name || camera.id);
  refs.title.title = camera.name ? `${camera.name} (${camera.id})` : camera.id;
  const state = streamState(camera, health);
  updateBadge(refs.badge, state);
  refs.root.dataset.state = state;
  const faces = summary ? summary.faces : 0;
  const dominant = summary && summary.dominant;
  if (dominant) {
    setText(refs.domLabel, dominant);
    refs.domLabel.style.color = EMOTION_COLORS[dominant] || '';
    refs.domLabel.classList.remove('none');
    setText(refs.domShare, pct(summary.shares[dominant]));
  } else {
    setText(refs.domLabel, summary ? 'no faces' : '–');
    refs.domLabel.style.color = '';
    refs.domLabel.classList.add('none');
    setText(refs.domShare, '');
  }
  refs.root.dataset.dominant = dominant || '';
  updateShareBar(refs.bar, summary && summary.shares, faces);
  const fps = processedFps(health);
  setText(refs.fps, fps === null ? '–' : num(fps, 1));
  setText(refs.faces, summary ? int(summary.faces) : '–');
  // /overview rows carry no track count: hide the stat rather than show a wrong zero
  const people = summary ? summary.distinct_tracks : undefined;
  refs.people.parentElement.hidden = people === undefined;
  setText(refs.people, people === undefined ? '–' : int(people));
  setText(refs.toggle, camera.enabled ? 'Pause' : 'Resume');
  refs.toggle.setAttribute('aria-pressed', camera.enabled ? 'false' : 'true');
  refs.error.hidden = !error;
  setText(refs.error, error || '');
}
