// The cart and the settlement form: change amounts, remove lines, then give an address and
// settle, which reserves the stock and opens a payment.

import { api } from '../api.js';
import { cart } from '../cart.js';
import { session } from '../session.js';
import { errorBox, field, h, money, page, uuid } from '../ui.js';
import { logInFirst } from './account.js';

export async function cartPage() {
  const show = page();
  const lines = cart.lines();
  if (!lines.length) {
    show('Cart', h('h1', {}, 'Your cart'), h('p', {}, 'Your cart is empty. ', h('a', { href: '#/' }, 'Browse the catalogue.')));
    return;
  }
  show('Cart', h('h1', {}, 'Your cart'), h('p', { class: 'loading' }, 'Loading…'));
  let products;
  try {
    products = await api.products();
  } catch (error) {
    show('Cart', h('h1', {}, 'Your cart'), errorBox(error, cartPage));
    return;
  }
  const byId = new Map(products.map((p) => [p.id, p]));
  // A product deleted since it was added leaves the cart.
  lines.filter((l) => !byId.has(l.id)).forEach((l) => cart.remove(l.id));
  const kept = cart.lines();
  const total = kept.reduce((sum, l) => sum + byId.get(l.id).price * l.amount, 0);
  const rows = kept.map((line) => {
    const product = byId.get(line.id);
    const amount = h('input', {
      type: 'number',
      min: 1,
      max: 99,
      value: line.amount,
      'aria-label': `Amount of ${product.title}`,
      onchange: (event) => {
        cart.set(line.id, Number.parseInt(event.target.value, 10) || 1);
        cartPage();
      },
    });
    return h(
      'tr',
      {},
      h('th', { scope: 'row' }, h('a', { href: `#/product/${product.id}` }, product.title)),
      h('td', { class: 'num' }, money(product.price)),
      h('td', {}, amount),
      h('td', { class: 'num' }, money(product.price * line.amount)),
      h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => { cart.remove(line.id); cartPage(); } }, `Remove ${product.title}`)),
    );
  });
  show(
    'Cart',
    h('h1', {}, 'Your cart'),
    h(
      'table',
      { class: 'cart' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Book'), h('th', { scope: 'col', class: 'num' }, 'Price'), h('th', { scope: 'col' }, 'Amount'), h('th', { scope: 'col', class: 'num' }, 'Subtotal'), h('td', {}))),
      h('tbody', {}, rows),
      h('tfoot', {}, h('tr', {}, h('th', { scope: 'row', colspan: 3 }, 'Books'), h('td', { class: 'num' }, money(total)), h('td', {}))),
    ),
    h('p', { class: 'muted' }, 'A shipping fee is added when you settle.'),
    h('p', {}, h('a', { href: '#/settle', class: 'button' }, 'Settle')),
  );
}

export async function settlePage() {
  const show = page();
  if (!session.user) {
    logInFirst('#/settle');
    return;
  }
  const lines = cart.lines();
  if (!lines.length) {
    cartPage();
    return;
  }
  let account = {};
  try {
    account = await api.account(session.user.username);
  } catch (error) {
    if (error.status === 401) return;
  }
  const name = h('input', { name: 'name', required: true, maxlength: 50, value: account.name || '', autocomplete: 'name' });
  const telephone = h('input', { name: 'telephone', required: true, maxlength: 20, value: account.telephone || '', autocomplete: 'tel', inputmode: 'tel' });
  const location = h('input', { name: 'location', required: true, maxlength: 100, value: account.location || '', autocomplete: 'street-address' });
  const outcome = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit' }, 'Settle and go to payment');
  // One key per settlement attempt: a resubmission after a lost answer does not buy twice.
  const key = uuid();
  const form = h(
    'form',
    {
      class: 'form',
      onsubmit: async (event) => {
        event.preventDefault();
        submit.disabled = true;
        outcome.replaceChildren(h('p', { class: 'loading' }, 'Reserving your books…'));
        try {
          const payment = await api.settle(
            {
              items: cart.lines().map((l) => ({ id: l.id, amount: l.amount })),
              purchase: { name: name.value.trim(), telephone: telephone.value.trim(), location: location.value.trim(), pay: 'wallet', delivery: true },
            },
            key,
          );
          cart.clear();
          window.location.hash = `#/payment/${payment.payId}`;
        } catch (error) {
          submit.disabled = false;
          if (error.status === 401) return;
          outcome.replaceChildren(errorBox(error));
        }
      },
    },
    field('Name', name),
    field('Telephone', telephone, '1 followed by 10 digits'),
    field('Address', location),
    submit,
  );
  show('Settle', h('h1', {}, 'Where should the books go?'), form, outcome);
}
