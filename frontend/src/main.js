// Entry point: token handling, routing (#/ grid, #/cameras/<id> detail), polling, mutations.

import { api, ApiError, cameraPath } from './api.js';
import { currentToken, setToken, takeTokenFromFragment } from './auth.js';
import { DetailView } from './detail.js';
import { $, el, setText } from './dom.js';
import { WINDOWS, clock } from './format.js';
import { createCard, updateCard } from './grid.js';

const POLL_MS = 2500;
const WINDOW_KEY = 'emotionpipe.window';

const state = {
  windowS: loadWindow(),
  cameras: new Map(), // id -> last camera object
  cards: new Map(), // id -> card refs
  detail: null, // DetailView while the detail route is shown
  timer: null,
  polls: 0,
  inFlight: null,
};

function loadWindow() {
  try {
    const saved = Number(window.localStorage.getItem(WINDOW_KEY));
    if (WINDOWS.some(([, s]) => s === saved)) return saved;
  } catch {
    // storage disabled
  }
  return 300;
}

// ------------------------------------------------------------------ messages
let noticeTimer = null;

/** A transient message about a user action (kind: ok | error). */
function notice(message, kind = 'ok') {
  const box = $('#notice');
  box.className = `notice notice-${kind}`;
  box.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  setText(box, message);
  box.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { box.hidden = true; }, kind === 'error' ? 12000 : 5000);
}

/** A lasting problem with reading the API (cleared by the next good poll). */
function banner(message) {
  const box = $('#banner');
  box.hidden = !message;
  setText(box, message || '');
}

function showTokenState() {
  const has = Boolean(currentToken());
  const node = $('#token-state');
  setText(node, has ? 'token set' : 'no token');
  node.className = `token-state small ${has ? 'ok' : 'muted'}`;
}

// ------------------------------------------------------------------ mutations
async function mutate(action, success) {
  try {
    await action();
    notice(success, 'ok');
    return true;
  } catch (err) {
    notice(err instanceof ApiError ? err.message : String(err), 'error');
    if (err instanceof ApiError && err.unauthorized) $('#token-input').focus();
    return false;
  } finally {
    poll();
  }
}

async function toggleCamera(id) {
  const cam = state.cameras.get(id) || (await api(cameraPath(id)));
  const enabled = !cam.enabled;
  await mutate(() => api(cameraPath(id), { method: 'PATCH', body: { enabled } }),
    `${enabled ? 'resumed' : 'paused'} ${id}`);
}

async function removeCamera(id) {
  const cam = state.cameras.get(id);
  const label = cam && cam.name ? `"${cam.name}" (${id})` : id;
  // confirm() shows plain text, so the name needs no escaping.
  if (!window.confirm(`Remove camera ${label}? Its reader stops; its history stays queryable.`)) return;
  const ok = await mutate(() => api(cameraPath(id), { method: 'DELETE' }), `removed ${id}`);
  if (ok && state.detail && state.detail.id === id) window.location.hash = '#/';
}

async function addCamera(form) {
  const data = new FormData(form);
  const body = { id: String(data.get('id')).trim(), url: String(data.get('url')).trim() };
  const fps = String(data.get('fps') || '').trim();
  if (fps) body.fps = Number(fps);
  const name = String(data.get('name') || '').trim();
  if (name) body.name = name;
  if (data.get('keep_frames')) body.keep_frames = true;
  const status = $('#add-status');
  status.className = 'form-status small';
  setText(status, 'adding…');
  try {
    await api('cameras', { method: 'POST', body });
    setText(status, `added ${body.id}`);
    status.classList.add('ok');
    form.reset();
    notice(`added camera ${body.id}`, 'ok');
  } catch (err) {
    status.classList.add('error');
    setText(status, err instanceof ApiError ? err.message : String(err));
    if (err instanceof ApiError && err.unauthorized) $('#token-input').focus();
  }
  poll();
}

const actions = {
  onOpen: (id) => { window.location.hash = `#/cameras/${encodeURIComponent(id)}`; },
  onToggle: (id) => toggleCamera(id),
  onRemove: (id) => removeCamera(id),
};

// ------------------------------------------------------------------ grid
/** An /overview row in the shape the card renderer takes. */
function fromOverview(row) {
  return {
    camera: { id: row.id, name: row.name, enabled: row.enabled },
    summary: { faces: row.faces, dominant: row.dominant, shares: row.shares },
    health: {
      reporting: row.state !== 'unknown',
      health: { state: row.state, fps_out: row.fps_processed, fps_in: row.fps_in },
    },
    error: null,
  };
}

async function refreshGrid() {
  // one request for the whole grid instead of two per camera
  const body = await api(`overview?window=${state.windowS}`);
  renderGrid(body.cameras.map(fromOverview));
  renderCapacity(body.capacity);
}

/** The over-capacity warning: frames dropped, and how many cameras the pipeline sustains. */
function renderCapacity(cap) {
  const box = $('#capacity');
  box.hidden = !(cap && cap.over_capacity);
  if (box.hidden) return;
  setText(box, `Over capacity: ${cap.dropped_fps.toFixed(1)} of ${cap.demand_fps.toFixed(1)} frames/s dropped. `
    + `The pipeline processes ${cap.processed_fps.toFixed(1)} frames/s, enough for about `
    + `${cap.sustainable_cameras} of these ${cap.cameras} cameras at their fps: add CPUs or detector replicas, `
    + 'lower the cameras\' fps, or remove cameras.');
}

function renderGrid(rows) {
  const grid = $('#grid');
  const seen = new Set();
  state.cameras = new Map(rows.map((r) => [r.camera.id, r.camera]));
  rows.forEach((row, index) => {
    const id = row.camera.id;
    seen.add(id);
    let card = state.cards.get(id);
    if (!card) {
      card = createCard(id, actions);
      state.cards.set(id, card);
    }
    updateCard(card, row);
    // keep DOM order = API order (sorted by id) without re-inserting unchanged cards
    if (grid.children[index] !== card.root) grid.insertBefore(card.root, grid.children[index] || null);
  });
  for (const [id, card] of state.cards) {
    if (!seen.has(id)) {
      card.root.remove();
      state.cards.delete(id);
    }
  }
  $('#grid-empty').hidden = rows.length > 0;
  setText($('#camera-count'), rows.length ? `(${rows.length})` : '');
}

// ------------------------------------------------------------------ routing
function route() {
  const match = /^#\/cameras\/([^/?&]+)/.exec(window.location.hash);
  const id = match ? decodeURIComponent(match[1]) : null;
  const gridView = $('#grid-view');
  const detailView = $('#detail-view');
  if (state.detail && state.detail.id !== id) {
    state.detail.destroy();
    state.detail = null;
    detailView.replaceChildren();
  }
  if (id && !state.detail) {
    state.detail = new DetailView(id, actions);
    detailView.append(state.detail.root);
  }
  gridView.hidden = Boolean(id);
  detailView.hidden = !id;
  if (!id) document.title = 'emotion-pipeline';
  poll();
}

// ------------------------------------------------------------------ polling
async function refresh() {
  try {
    if (state.detail) await state.detail.refresh(state.windowS);
    else await refreshGrid();
    banner(null);
    setText($('#updated'), `updated ${clock(Date.now() / 1000)}`);
  } catch (err) {
    if (!(err instanceof ApiError)) console.error(err); // eslint-disable-line no-console
    banner(err instanceof ApiError ? err.message : `dashboard error: ${err}`);
  } finally {
    state.polls += 1;
    document.body.dataset.polls = String(state.polls); // lets tests wait for "the next poll"
  }
}

/** Refresh now, then every POLL_MS while the tab is visible (never two refreshes at once). */
function poll() {
  clearTimeout(state.timer);
  state.timer = null;
  if (document.hidden) return;
  if (state.inFlight) {
    state.inFlight.then(() => poll());
    return;
  }
  state.inFlight = refresh().finally(() => {
    state.inFlight = null;
    if (!document.hidden && state.timer === null) state.timer = setTimeout(poll, POLL_MS);
  });
}

function onVisibility() {
  if (document.hidden) {
    clearTimeout(state.timer);
    state.timer = null;
    setText($('#updated'), 'paused while hidden');
  } else {
    poll();
  }
}

// ------------------------------------------------------------------ controls
function buildWindowPicker() {
  const picker = $('#window-picker');
  for (const [name, seconds] of WINDOWS) {
    picker.append(el('button', {
      type: 'button',
      class: 'btn btn-seg',
      text: name,
      dataset: { window: String(seconds) },
      'aria-pressed': String(seconds === state.windowS),
      onclick: () => {
        state.windowS = seconds;
        try { window.localStorage.setItem(WINDOW_KEY, String(seconds)); } catch { /* storage disabled */ }
        for (const b of picker.children) b.setAttribute('aria-pressed', String(Number(b.dataset.window) === seconds));
        poll();
      },
    }));
  }
}

function wireControls() {
  $('#token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = $('#token-input');
    setToken(input.value);
    input.value = '';
    showTokenState();
    notice(currentToken() ? 'token saved in this browser' : 'token cleared', 'ok');
    poll();
  });
  $('#token-clear').addEventListener('click', () => {
    setToken('');
    showTokenState();
    notice('token cleared', 'ok');
    poll();
  });
  $('#add-form').addEventListener('submit', (event) => {
    event.preventDefault();
    addCamera(event.currentTarget);
  });
  window.addEventListener('hashchange', () => {
    if (takeTokenFromFragment()) showTokenState();
    route();
  });
  document.addEventListener('visibilitychange', onVisibility);
}

function start() {
  takeTokenFromFragment();
  showTokenState();
  buildWindowPicker();
  wireControls();
  route();
}

start();
