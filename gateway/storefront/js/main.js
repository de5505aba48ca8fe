// The storefront's entry point: hash routes to pages, the navigation bar, and what happens when
// the API says the user must log in.

import { cart } from './cart.js';
import { session } from './session.js';
import { h, navigated, notify } from './ui.js';
import { adminPage, productEditor } from './views/admin.js';
import { loginPage, profilePage, registerPage } from './views/account.js';
import { cartPage, settlePage } from './views/cart.js';
import { catalogue } from './views/catalogue.js';
import { paymentPage } from './views/payment.js';
import { productPage } from './views/product.js';

const routes = [
  [/^#?\/?$/, () => catalogue()],
  [/^#\/product\/(\d+)$/, (id) => productPage(id)],
  [/^#\/cart$/, () => cartPage()],
  [/^#\/settle$/, () => settlePage()],
  [/^#\/payment\/([\w-]+)$/, (payId) => paymentPage(payId)],
  [/^#\/login(?:\?(.*))?$/, (query) => loginPage(query || '')],
  [/^#\/register(?:\?(.*))?$/, (query) => registerPage(query || '')],
  [/^#\/profile$/, () => profilePage()],
  [/^#\/admin$/, () => adminPage()],
  [/^#\/admin\/product\/(new|\d+)$/, (id) => productEditor(id)],
];

function route() {
  const hash = window.location.hash || '#/';
  for (const [pattern, page] of routes) {
    const match = hash.match(pattern);
    if (match) {
      navigated();
      page(...match.slice(1));
      return;
    }
  }
  window.location.hash = '#/';
}

function renderNav() {
  document.getElementById('cart-count').textContent = String(cart.count());
  document.getElementById('cart-link').setAttribute('aria-label', `Cart, ${cart.count()} books`);
  document.getElementById('admin-link').hidden = !session.isAdmin;
  const links = document.getElementById('session-links');
  const user = session.user;
  links.replaceChildren(
    ...(user
      ? [
          h('a', { href: '#/profile' }, user.username),
          h('button', {
            type: 'button',
            class: 'link',
            onclick: () => {
              session.logOut();
              notify('You are logged out.');
              window.location.hash = '#/';
            },
          }, 'Log out'),
        ]
      : [h('a', { href: '#/login' }, 'Log in')]),
  );
}

window.addEventListener('bookstore:log-in-needed', () => {
  const here = window.location.hash || '#/';
  if (here.startsWith('#/login')) return;
  notify('Please log in to continue.');
  window.location.hash = `#/login?next=${encodeURIComponent(here)}`;
});

cart.onChange(renderNav);
session.onChange(renderNav);
window.addEventListener('hashchange', route);
renderNav();
route();
