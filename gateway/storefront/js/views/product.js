// One book: its detail picture, description, specifications and (for administrators) stock.

import { api } from '../api.js';
import { cart } from '../cart.js';
import { session } from '../session.js';
import { cover, errorBox, h, money, notify, richText, page } from '../ui.js';

export async function productPage(id) {
  const show = page();
  show('Book', h('p', { class: 'loading' }, 'Loading the book…'));
  let product;
  try {
    product = await api.product(id);
  } catch (error) {
    show('Book', h('p', {}, h('a', { href: '#/' }, '← Catalogue')), errorBox(error, () => productPage(id)));
    return;
  }
  const amount = h('input', { type: 'number', id: 'amount', min: 1, max: 99, value: 1, inputmode: 'numeric' });
  const stock = h('p', { class: 'stock muted' }, 'Stock is checked when you settle.');
  if (session.isAdmin) {
    api.stock(product.id).then(
      (s) => {
        stock.textContent = s.amount > 0 ? `In stock: ${s.amount} (${s.frozen} held by unpaid orders)` : `Out of stock (${s.frozen} held by unpaid orders)`;
      },
      (error) => {
        stock.textContent = error.message;
      },
    );
  }
  show(
    product.title,
    h('p', {}, h('a', { href: '#/' }, '← Catalogue')),
    h(
      'article',
      { class: 'product' },
      cover(product, 'cover large'),
      h(
        'div',
        { class: 'product-info' },
        h('h1', {}, product.title),
        h('p', { class: 'price big' }, money(product.price), h('span', { class: 'rate', title: 'Rating out of 10' }, `★ ${product.rate}`)),
        stock,
        h(
          'form',
          {
            class: 'buy',
            onsubmit: (event) => {
              event.preventDefault();
              const n = Math.max(1, Math.min(99, Number.parseInt(amount.value, 10) || 1));
              cart.add(product.id, n);
              notify(`${n} × "${product.title}" added to your cart.`);
            },
          },
          h('label', { for: 'amount' }, 'Amount'),
          amount,
          h('button', { type: 'submit' }, 'Add to cart'),
          h('a', { href: '#/cart', class: 'button secondary' }, 'Go to cart'),
        ),
        richText(product.description),
        product.specifications.length
          ? h(
              'table',
              { class: 'specs' },
              h('caption', {}, 'Specifications'),
              h('tbody', {}, product.specifications.map((s) => h('tr', {}, h('th', { scope: 'row' }, s.item), h('td', {}, s.value)))),
            )
          : null,
      ),
    ),
    product.detail
      ? h('figure', { class: 'detail' }, h('img', { src: product.detail, alt: `Contents of ${product.title}`, width: 800, height: 500, loading: 'lazy' }))
      : null,
  );
}
