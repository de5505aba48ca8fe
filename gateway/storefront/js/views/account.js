// Logging in, registering, and the user's own profile.

import { api } from '../api.js';
import { session } from '../session.js';
import { errorBox, field, h, notify, page } from '../ui.js';

/** Sends the user to the login form, and back to `next` afterwards. */
export function logInFirst(next) {
  notify('Please log in to continue.');
  window.location.hash = `#/login?next=${encodeURIComponent(next)}`;
}

function nextFrom(query) {
  const next = new URLSearchParams(query).get('next');
  // Only a page of this front-end.
  return next && next.startsWith('#/') ? next : '#/';
}

export function loginPage(query) {
  const show = page();
  const username = h('input', { name: 'username', required: true, maxlength: 50, autocomplete: 'username', autocapitalize: 'none' });
  const password = h('input', { name: 'password', type: 'password', required: true, autocomplete: 'current-password' });
  const outcome = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit' }, 'Log in');
  show(
    'Log in',
    h('h1', {}, 'Log in'),
    h(
      'form',
      {
        class: 'form narrow',
        onsubmit: async (event) => {
          event.preventDefault();
          submit.disabled = true;
          outcome.replaceChildren(h('p', { class: 'loading' }, 'Logging in…'));
          try {
            await session.logIn(username.value.trim(), password.value);
            notify(`Welcome, ${session.user.username}.`);
            window.location.hash = nextFrom(query);
          } catch (error) {
            submit.disabled = false;
            outcome.replaceChildren(errorBox(error));
          }
        },
      },
      field('Username', username),
      field('Password', password),
      submit,
    ),
    outcome,
    h('p', {}, 'New here? ', h('a', { href: `#/register?${new URLSearchParams({ next: nextFrom(query) })}` }, 'Create an account'), '.'),
  );
}

function accountFields(account = {}) {
  return {
    name: h('input', { name: 'name', required: true, maxlength: 50, value: account.name || '', autocomplete: 'name' }),
    telephone: h('input', { name: 'telephone', maxlength: 20, value: account.telephone || '', autocomplete: 'tel', inputmode: 'tel', pattern: '1[0-9]{10}' }),
    email: h('input', { name: 'email', type: 'email', maxlength: 100, value: account.email || '', autocomplete: 'email' }),
    location: h('input', { name: 'location', maxlength: 100, value: account.location || '', autocomplete: 'street-address' }),
  };
}

export function registerPage(query) {
  const show = page();
  const username = h('input', { name: 'username', required: true, maxlength: 50, pattern: '[A-Za-z0-9_.\\-]+', autocomplete: 'username', autocapitalize: 'none' });
  const password = h('input', { name: 'password', type: 'password', required: true, autocomplete: 'new-password' });
  const fields = accountFields();
  const outcome = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit' }, 'Create account');
  show(
    'Register',
    h('h1', {}, 'Create an account'),
    h(
      'form',
      {
        class: 'form narrow',
        onsubmit: async (event) => {
          event.preventDefault();
          submit.disabled = true;
          outcome.replaceChildren(h('p', { class: 'loading' }, 'Creating your account…'));
          try {
            const { prehash } = await import('../prehash.js');
            await api.register({
              username: username.value.trim(),
              password: prehash(password.value),
              name: fields.name.value.trim(),
              telephone: fields.telephone.value.trim(),
              email: fields.email.value.trim(),
              location: fields.location.value.trim(),
              avatar: '',
            });
            await session.logIn(username.value.trim(), password.value);
            notify(`Welcome, ${session.user.username}. Your wallet is open.`);
            window.location.hash = nextFrom(query);
          } catch (error) {
            submit.disabled = false;
            outcome.replaceChildren(errorBox(error));
          }
        },
      },
      field('Username', username, 'Letters, digits, _ . and -'),
      field('Password', password),
      field('Name', fields.name),
      field('Telephone', fields.telephone, '1 followed by 10 digits'),
      field('E-mail', fields.email),
      field('Address', fields.location),
      submit,
    ),
    outcome,
  );
}

export async function profilePage() {
  const show = page();
  if (!session.user) {
    logInFirst('#/profile');
    return;
  }
  let account;
  try {
    account = await api.account(session.user.username);
  } catch (error) {
    if (error.status === 401) return;
    show('Profile', h('h1', {}, 'Your profile'), errorBox(error, profilePage));
    return;
  }
  const fields = accountFields(account);
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'new-password' });
  const outcome = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit' }, 'Save');
  show(
    'Profile',
    h('h1', {}, 'Your profile'),
    h('p', {}, 'Logged in as ', h('strong', {}, account.username), '.'),
    h(
      'form',
      {
        class: 'form narrow',
        onsubmit: async (event) => {
          event.preventDefault();
          submit.disabled = true;
          try {
            const changes = {
              id: account.id,
              username: account.username,
              avatar: account.avatar || '',
              name: fields.name.value.trim(),
              telephone: fields.telephone.value.trim(),
              email: fields.email.value.trim(),
              location: fields.location.value.trim(),
            };
            if (password.value) {
              const { prehash } = await import('../prehash.js');
              changes.password = prehash(password.value);
            }
            await api.updateAccount(changes);
            outcome.replaceChildren(h('p', { class: 'ok' }, 'Saved.'));
          } catch (error) {
            if (error.status === 401) return;
            outcome.replaceChildren(errorBox(error));
          } finally {
            submit.disabled = false;
          }
        },
      },
      field('Name', fields.name),
      field('Telephone', fields.telephone, '1 followed by 10 digits'),
      field('E-mail', fields.email),
      field('Address', fields.location),
      field('New password', password, 'Leave empty to keep the current one'),
      submit,
    ),
    outcome,
  );
}
