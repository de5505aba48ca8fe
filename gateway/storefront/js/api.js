// The one way this front-end talks to the bookstore: the public REST API (/restful) and the
// OAuth2 token endpoint (/oauth/token), exactly as any other client would. Every failure becomes
// an ApiError whose `message` a shopper can read.

import { session } from './session.js';

/** A failed call: the HTTP status (0 when the server could not be reached) and words for it. */
export class ApiError extends Error {
  constructor(status, message, fields = []) {
    super(message);
    this.status = status;
    this.fields = fields;
  }
}

/** What each service does, for "… is unavailable" messages. */
function serviceOf(path) {
  if (path.startsWith('/restful/accounts') || path.startsWith('/oauth')) return 'The account service';
  if (path.startsWith('/restful/settlements') || path.startsWith('/restful/pay')) return 'The payment service';
  return 'The catalogue';
}

function wordsFor(status, path, serverMessage) {
  switch (status) {
    case 0: return 'The bookstore cannot be reached. Check your connection and try again.';
    case 401: return 'Please log in to continue.';
    case 403: return 'Your account is not allowed to do this. Log in as an administrator for the warehouse pages.';
    case 404: return serverMessage || 'That no longer exists.';
    case 413: return 'That is too large to send.';
    case 429: return 'Too many attempts. Please wait a moment and try again.';
    case 503: return `${serviceOf(path)} is unavailable right now. Please try again in a moment.`;
    case 504: return `${serviceOf(path)} took too long to answer. Please try again.`;
    default:
      if (status >= 500) return 'Something went wrong on our side. Please try again.';
      return serverMessage || `The request was refused (${status}).`;
  }
}

async function readBody(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/**
 * Calls the API. `body` is sent as JSON. Sends the access token when logged in (refreshing it
 * first if it is about to expire). Resolves with the parsed answer; rejects with an ApiError.
 */
export async function call(method, path, { body, idempotencyKey, auth = true } = {}) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (idempotencyKey) headers['Idempotency-Key'] = idempotencyKey;
  if (auth) {
    const token = await session.accessToken();
    if (token) headers.Authorization = `bearer ${token}`;
  }
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, wordsFor(0, path));
  }
  const answer = await readBody(response);
  if (!response.ok) {
    const serverMessage = answer && (answer.message || answer.error_description);
    if (response.status === 401 && auth) {
      session.expired();
      window.dispatchEvent(new CustomEvent('bookstore:log-in-needed'));
    }
    throw new ApiError(response.status, wordsFor(response.status, path, serverMessage), (answer && answer.errors) || []);
  }
  return answer;
}

/** The OAuth2 token endpoint (form-encoded, as RFC 6749 has it). */
export async function token(parameters) {
  const form = new URLSearchParams({ client_id: 'bookstore_frontend', client_secret: 'bookstore_secret', ...parameters });
  let response;
  try {
    response = await fetch('/oauth/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: form,
    });
  } catch {
    throw new ApiError(0, wordsFor(0, '/oauth/token'));
  }
  const answer = await readBody(response);
  if (!response.ok) {
    if (answer && answer.error === 'invalid_grant') {
      throw new ApiError(400, 'Wrong username or password.');
    }
    const serverMessage = answer && (answer.error_description || answer.message);
    throw new ApiError(response.status, wordsFor(response.status, '/oauth/token', serverMessage));
  }
  return answer;
}

export const api = {
  products: () => call('GET', '/restful/products', { auth: false }),
  product: (id) => call('GET', `/restful/products/${encodeURIComponent(id)}`, { auth: false }),
  advertisements: () => call('GET', '/restful/advertisements', { auth: false }),
  account: (username) => call('GET', `/restful/accounts/${encodeURIComponent(username)}`),
  register: (account) => call('POST', '/restful/accounts', { body: account, auth: false }),
  updateAccount: (account) => call('PUT', '/restful/accounts', { body: account }),
  settle: (settlement, idempotencyKey) => call('POST', '/restful/settlements', { body: settlement, idempotencyKey }),
  payment: (payId) => call('GET', `/restful/pay/${encodeURIComponent(payId)}`),
  changePayment: (payId, state, idempotencyKey) =>
    call('PATCH', `/restful/pay/${encodeURIComponent(payId)}?state=${state}`, { idempotencyKey }),
  createProduct: (product) => call('POST', '/restful/products', { body: product }),
  updateProduct: (product) => call('PUT', '/restful/products', { body: product }),
  deleteProduct: (id) => call('DELETE', `/restful/products/${encodeURIComponent(id)}`),
  stock: (productId) => call('GET', `/restful/products/stockpile/${encodeURIComponent(productId)}`),
  setStock: (productId, amount) =>
    call('PATCH', `/restful/products/stockpile/${encodeURIComponent(productId)}?amount=${encodeURIComponent(amount)}`),
};
