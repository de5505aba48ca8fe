// Who is logged in: the tokens from /oauth/token, kept in localStorage so a reload keeps the
// session, and refreshed (refresh_token grant) a minute before the access token expires.

import { token } from './api.js';
import { prehash } from './prehash.js';

const KEY = 'bookstore.session';
const REFRESH_BEFORE_MS = 60_000;

function load() {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY) || 'null');
    return saved && saved.accessToken ? saved : null;
  } catch {
    return null;
  }
}

let current = load();
let refreshTimer = null;
let refreshing = null;
const listeners = new Set();

function save(answer) {
  current = {
    accessToken: answer.access_token,
    refreshToken: answer.refresh_token || (current && current.refreshToken),
    expiresAt: Date.now() + Number(answer.expires_in || 0) * 1000,
    username: answer.username || (current && current.username),
    authorities: answer.authorities || (current && current.authorities) || [],
  };
  localStorage.setItem(KEY, JSON.stringify(current));
  schedule();
  listeners.forEach((listener) => listener(current));
}

function clear() {
  current = null;
  localStorage.removeItem(KEY);
  clearTimeout(refreshTimer);
  listeners.forEach((listener) => listener(null));
}

function schedule() {
  clearTimeout(refreshTimer);
  if (!current || !current.refreshToken) return;
  const wait = Math.max(current.expiresAt - Date.now() - REFRESH_BEFORE_MS, 1_000);
  // setTimeout's limit is about 24.8 days; tokens live for hours.
  refreshTimer = setTimeout(() => session.refresh().catch(() => {}), Math.min(wait, 2 ** 31 - 1));
}

export const session = {
  get user() {
    return current;
  },
  get isAdmin() {
    return Boolean(current && current.authorities.includes('ROLE_ADMIN'));
  },
  onChange(listener) {
    listeners.add(listener);
  },
  async logIn(username, typedPassword) {
    const answer = await token({ grant_type: 'password', username, password: prehash(typedPassword) });
    save(answer);
  },
  async refresh() {
    if (!current || !current.refreshToken) return;
    if (!refreshing) {
      refreshing = token({ grant_type: 'refresh_token', refresh_token: current.refreshToken })
        .then(save, (error) => {
          // The refresh token expired or the account changed: log in again.
          if (error.status && error.status < 500) clear();
          throw error;
        })
        .finally(() => {
          refreshing = null;
        });
    }
    await refreshing;
  },
  /** The access token to send, refreshed first when it is about to expire. */
  async accessToken() {
    if (!current) return null;
    if (current.expiresAt - Date.now() < REFRESH_BEFORE_MS && current.refreshToken) {
      try {
        await session.refresh();
      } catch {
        // Sent as it is; a 401 will ask the user to log in.
      }
    }
    return current && current.accessToken;
  },
  /** The server refused the token: forget it. */
  expired() {
    clear();
  },
  logOut() {
    clear();
  },
};

schedule();
