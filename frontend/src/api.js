// Thin fetch wrapper: relative URLs (works behind a path prefix), bearer token, readable errors.

import { currentToken } from './auth.js';

export class ApiError extends Error {
  /**
   * @param {number} status HTTP status (0 when the API could not be reached)
   * @param {string} message human-readable reason
   * @param {any} detail the response's ``detail`` field, if any
   */
  constructor(status, message, detail) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.detail = detail;
  }

  get unauthorized() {
    return this.status === 401;
  }
}

function describe(status, data) {
  const detail = data && data.detail;
  if (status === 401) {
    const why = typeof detail === 'string' ? ` (${detail})` : '';
    return `API token required or invalid${why}. Enter the token under "API token" (emotionpipe token prints it).`;
  }
  if (Array.isArray(detail)) {
    // FastAPI validation errors: "field: reason" per problem.
    return detail
      .map((e) => {
        const where = (e.loc || []).filter((p) => p !== 'body' && p !== 'query').join('.');
        return where ? `${where}: ${e.msg}` : String(e.msg);
      })
      .join('; ');
  }
  if (typeof detail === 'string' && detail) return detail;
  if (status === 503) return 'the API cannot reach Redis (503)';
  return `HTTP ${status}`;
}

/**
 * Call the API.
 * @param {string} path relative path, e.g. ``cameras/lobby/summary?window=60``
 * @param {{method?: string, body?: any, raw?: boolean}} [options] ``raw`` returns the Response
 * @returns {Promise<any>} parsed JSON (null for 204) or the Response when ``raw``
 */
export async function api(path, { method = 'GET', body, raw = false } = {}) {
  const headers = { Accept: raw ? '*/*' : 'application/json' };
  const token = currentToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch {
    throw new ApiError(0, 'the API cannot be reached (is the stack running?)');
  }
  if (response.ok && raw) return response;
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, describe(response.status, data), data && data.detail);
  return data;
}

/** ``cameras/<id>/<rest>`` with the id escaped. */
export function cameraPath(id, rest = '') {
  return `cameras/${encodeURIComponent(id)}${rest ? `/${rest}` : ''}`;
}
