// The warehouse, for administrators: create, edit and delete products and their
// specifications, and set stock. The API decides who may; this page only shows what it said.

import { api } from '../api.js';
import { session } from '../session.js';
import { errorBox, field, h, money, notify, page } from '../ui.js';
import { logInFirst } from './account.js';

function needsAdmin(next, show) {
  if (!session.user) {
    logInFirst(next);
    return true;
  }
  if (!session.isAdmin) {
    show('Warehouse', h('h1', {}, 'Warehouse'), errorBox({ message: 'Your account is not allowed to do this. Log in as an administrator for the warehouse pages.' }));
    return true;
  }
  return false;
}

export async function adminPage() {
  const show = page();
  if (needsAdmin('#/admin', show)) return;
  let products;
  try {
    products = await api.products();
  } catch (error) {
    if (error.status === 401) return;
    show('Warehouse', h('h1', {}, 'Warehouse'), errorBox(error, adminPage));
    return;
  }
  const rows = products.map((product) => {
    const amount = h('input', { type: 'number', min: 0, 'aria-label': `Stock of ${product.title}`, class: 'stock-input' });
    const frozen = h('span', { class: 'muted' });
    api.stock(product.id).then((s) => {
      amount.value = s.amount;
      frozen.textContent = s.frozen ? ` (${s.frozen} held)` : '';
    }, (error) => {
      frozen.textContent = error.message;
    });
    const saveStock = h('button', {
      type: 'button',
      class: 'secondary',
      onclick: async () => {
        try {
          await api.setStock(product.id, amount.value);
          notify(`Stock of "${product.title}" set to ${amount.value}.`, 'ok');
        } catch (error) {
          notify(error.message, 'bad');
        }
      },
    }, `Set stock of ${product.title}`);
    const remove = h('button', {
      type: 'button',
      class: 'link danger',
      onclick: async () => {
        if (!window.confirm(`Delete "${product.title}" with its stock and advertisements?`)) return;
        try {
          await api.deleteProduct(product.id);
          notify(`"${product.title}" deleted.`, 'ok');
          adminPage();
        } catch (error) {
          notify(error.message, 'bad');
        }
      },
    }, `Delete ${product.title}`);
    return h(
      'tr',
      {},
      h('th', { scope: 'row' }, h('a', { href: `#/admin/product/${product.id}` }, product.title)),
      h('td', { class: 'num' }, money(product.price)),
      h('td', {}, amount, frozen, ' ', saveStock),
      h('td', {}, remove),
    );
  });
  show(
    'Warehouse',
    h('h1', {}, 'Warehouse'),
    h('p', {}, h('a', { href: '#/admin/product/new', class: 'button' }, 'New product')),
    h(
      'table',
      { class: 'admin' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Book'), h('th', { scope: 'col', class: 'num' }, 'Price'), h('th', { scope: 'col' }, 'Stock'), h('td', {}))),
      h('tbody', {}, rows),
    ),
  );
}

export async function productEditor(id) {
  const show = page();
  if (needsAdmin(`#/admin/product/${id}`, show)) return;
  let product = { title: '', price: 0, rate: 0, description: '', cover: '', detail: '', specifications: [] };
  if (id !== 'new') {
    try {
      product = await api.product(id);
    } catch (error) {
      show('Edit product', h('h1', {}, 'Edit product'), errorBox(error, () => productEditor(id)));
      return;
    }
  }
  const input = (name, value, attributes = {}) => h('input', { name, value: value ?? '', ...attributes });
  const title = input('title', product.title, { required: true, maxlength: 50 });
  const price = input('price', product.price, { type: 'number', min: 0, step: '0.01', required: true });
  const rate = input('rate', product.rate, { type: 'number', min: 0, max: 10, step: '0.1' });
  const coverPath = input('cover', product.cover, { placeholder: '/static/cover/my-book.jpg' });
  const detailPath = input('detail', product.detail, { placeholder: '/static/desc/my-book.jpg' });
  const description = h('textarea', { name: 'description', rows: 5 });
  description.value = product.description || '';
  const specs = h('tbody');
  const specRow = (spec = { item: '', value: '' }) => {
    const row = h(
      'tr',
      {},
      h('td', {}, h('input', { 'aria-label': 'Specification', value: spec.item, class: 'spec-item' })),
      h('td', {}, h('input', { 'aria-label': 'Value', value: spec.value, class: 'spec-value' })),
      h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => row.remove() }, 'Remove')),
    );
    return row;
  };
  product.specifications.forEach((spec) => specs.append(specRow(spec)));
  const outcome = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit' }, id === 'new' ? 'Create product' : 'Save product');
  show(
    id === 'new' ? 'New product' : `Edit ${product.title}`,
    h('p', {}, h('a', { href: '#/admin' }, '← Warehouse')),
    h('h1', {}, id === 'new' ? 'New product' : `Edit "${product.title}"`),
    h(
      'form',
      {
        class: 'form',
        onsubmit: async (event) => {
          event.preventDefault();
          submit.disabled = true;
          const body = {
            title: title.value.trim(),
            price: price.value,
            rate: rate.value || 0,
            description: description.value,
            cover: coverPath.value.trim(),
            detail: detailPath.value.trim(),
            specifications: Array.from(specs.rows, (row) => ({
              item: row.querySelector('.spec-item').value.trim(),
              value: row.querySelector('.spec-value').value.trim(),
            })).filter((s) => s.item || s.value),
          };
          try {
            if (id === 'new') {
              const saved = await api.createProduct(body);
              notify(`"${saved.title}" created. Set its stock to sell it.`, 'ok');
            } else {
              await api.updateProduct({ ...body, id: product.id });
              notify(`"${body.title}" saved.`, 'ok');
            }
            window.location.hash = '#/admin';
          } catch (error) {
            submit.disabled = false;
            if (error.status === 401) return;
            outcome.replaceChildren(errorBox(error));
          }
        },
      },
      field('Title', title),
      field('Price', price),
      field('Rating (0–10)', rate),
      field('Cover image path', coverPath, 'Leave empty for a drawn cover'),
      field('Detail image path', detailPath),
      field('Description (HTML)', description),
      h('table', { class: 'specs-editor' }, h('caption', {}, 'Specifications'), specs),
      h('button', { type: 'button', class: 'secondary', onclick: () => specs.append(specRow()) }, 'Add a specification'),
      submit,
    ),
    outcome,
  );
}
