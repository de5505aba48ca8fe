// The shop window: the advertisement carousel and every product, with a search box.

import { api } from '../api.js';
import { cart } from '../cart.js';
import { cover, errorBox, h, money, notify, page } from '../ui.js';

const ROTATE_MS = 6000;

export async function catalogue() {
  const show = page();
  show('Catalogue', h('p', { class: 'loading' }, 'Loading the catalogue…'));
  let products;
  let advertisements;
  try {
    [products, advertisements] = await Promise.all([api.products(), api.advertisements()]);
  } catch (error) {
    show('Catalogue', h('h1', {}, 'Catalogue'), errorBox(error, catalogue));
    return;
  }
  const grid = h('ul', { class: 'grid', 'aria-label': 'Books' });
  const status = h('p', { class: 'muted', role: 'status', 'aria-live': 'polite' });
  const search = h('input', {
    type: 'search',
    id: 'search',
    placeholder: 'Title, author, publisher…',
    autocomplete: 'off',
  });
  const render = () => {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    const shown = products.filter((product) => {
      const text = [product.title, product.description, ...product.specifications.map((s) => s.value)]
        .join(' ')
        .toLowerCase();
      return words.every((word) => text.includes(word));
    });
    grid.replaceChildren(...shown.map(card));
    status.textContent = words.length
      ? `${shown.length} of ${products.length} books match.`
      : `${products.length} books.`;
  };
  search.addEventListener('input', render);
  render();
  show(
    '',
    carousel(advertisements, products),
    h(
      'section',
      { class: 'catalogue', 'aria-labelledby': 'catalogue-title' },
      h(
        'div',
        { class: 'catalogue-head' },
        h('h1', { id: 'catalogue-title' }, 'Catalogue'),
        h('div', { class: 'search' }, h('label', { for: 'search' }, 'Search'), search),
      ),
      status,
      grid,
    ),
  );
}

function card(product) {
  return h(
    'li',
    { class: 'card' },
    h('a', { href: `#/product/${product.id}`, class: 'card-link' }, cover(product), h('h2', {}, product.title)),
    h('p', { class: 'price' }, money(product.price), h('span', { class: 'rate', title: 'Rating out of 10' }, `★ ${product.rate}`)),
    h(
      'button',
      {
        type: 'button',
        class: 'secondary',
        onclick: () => {
          cart.add(product.id);
          notify(`"${product.title}" is in your cart.`);
        },
      },
      'Add to cart',
    ),
  );
}

function carousel(advertisements, products) {
  const slides = advertisements
    .map((ad) => ({ ad, product: products.find((p) => p.id === ad.productId) }))
    .filter((slide) => slide.product);
  if (!slides.length) return null;
  let index = 0;
  let timer = null;
  const reduceMotion = window.matchMedia('(prefers-reduced-motion: reduce)').matches;
  const figures = slides.map(({ ad, product }, i) =>
    h(
      'a',
      { href: `#/product/${product.id}`, class: 'slide', hidden: i !== 0, 'aria-label': `${product.title}, see the book` },
      h('img', { src: ad.image, alt: `Advertisement: ${product.title}`, width: 1200, height: 400 }),
    ),
  );
  const dots = slides.map((_, i) =>
    h('button', { type: 'button', class: 'dot', 'aria-label': `Show advertisement ${i + 1}`, onclick: () => go(i) }),
  );
  const go = (next) => {
    index = (next + slides.length) % slides.length;
    figures.forEach((figure, i) => {
      figure.hidden = i !== index;
    });
    dots.forEach((dot, i) => dot.setAttribute('aria-current', String(i === index)));
  };
  const start = () => {
    clearInterval(timer);
    if (!reduceMotion && slides.length > 1) timer = setInterval(() => {
      if (!document.body.contains(region)) clearInterval(timer);
      else go(index + 1);
    }, ROTATE_MS);
  };
  const region = h(
    'section',
    { class: 'carousel', 'aria-roledescription': 'carousel', 'aria-label': 'Featured books' },
    figures,
    h('button', { type: 'button', class: 'prev', 'aria-label': 'Previous advertisement', onclick: () => go(index - 1) }, '‹'),
    h('button', { type: 'button', class: 'next', 'aria-label': 'Next advertisement', onclick: () => go(index + 1) }, '›'),
    h('div', { class: 'dots' }, dots),
  );
  region.addEventListener('mouseenter', () => clearInterval(timer));
  region.addEventListener('mouseleave', start);
  region.addEventListener('focusin', () => clearInterval(timer));
  region.addEventListener('focusout', start);
  go(0);
  start();
  return region;
}
