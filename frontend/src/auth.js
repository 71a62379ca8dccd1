// The API token: kept in localStorage, sent only as an Authorization header, never in a URL.

const KEY = 'emotionpipe.apiToken';
const FRAGMENT_TOKEN = /(^|&)token=([^&]*)/;

export function getToken() {
  try {
    return window.localStorage.getItem(KEY) || '';
  } catch {
    return ''; // storage disabled (private mode): the token lives only in memory below
  }
}

let memoryToken = '';

export function currentToken() {
  return getToken() || memoryToken;
}

export function setToken(token) {
  memoryToken = token.trim();
  try {
    if (memoryToken) window.localStorage.setItem(KEY, memoryToken);
    else window.localStorage.removeItem(KEY);
  } catch {
    // keep the in-memory copy
  }
}

/**
 * Accept ``#token=...`` once (a link printed by ``emotionpipe up``): store the token, then
 * remove it from the address bar and history so it is not bookmarked, shared or logged.
 * Other fragment parts (the view route) are kept.
 * @returns {boolean} whether a token was taken
 */
export function takeTokenFromFragment() {
  const fragment = window.location.hash.replace(/^#/, '');
  const match = FRAGMENT_TOKEN.exec(fragment);
  if (!match) return false;
  let token = match[2];
  try {
    token = decodeURIComponent(token);
  } catch {
    // a malformed escape: use it as written
  }
  setToken(token);
  const rest = fragment.replace(FRAGMENT_TOKEN, '').replace(/^&/, '');
  const url = window.location.pathname + window.location.search + (rest ? `#${rest}` : '');
  window.history.replaceState(window.history.state, '', url);
  return true;
}
