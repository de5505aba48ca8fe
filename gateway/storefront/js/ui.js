// Small DOM helpers: elements are built with `h`, never from HTML strings, except a product's
// description, which the API defines as HTML and `richText` cleans first.

/** `h('a', { href: '#/' }, 'Home')`: an element with attributes, listeners and children. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2), value);
    } else if (name === 'class') {
      element.className = value;
    } else if (value === true) {
      element.setAttribute(name, '');
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

let generation = 0;

/** A new page is being shown: whatever older pages still render after their awaits is dropped. */
export function navigated() {
  generation += 1;
}

/**
 * The `show` of the page being opened, to be taken before the page's first await: once the user
 * has moved on, a slow answer for this page must not replace the next page.
 */
export function page() {
  const mine = generation;
  return (title, ...children) => {
    if (mine === generation) show(title, ...children);
  };
}

/** Replaces the page's content and moves focus to it (for keyboard and screen-reader users). */
function show(title, ...children) {
  const view = document.getElementById('view');
  view.replaceChildren();
  append(view, children);
  document.title = title ? `${title} · Fenix's Bookstore` : "Fenix's Bookstore";
  view.focus({ preventScroll: true });
  window.scrollTo(0, 0);
}

let noticeTimer = null;

/** A short message at the top of the page. */
export function notify(message, kind = 'info') {
  const notice = document.getElementById('notice');
  notice.className = `notice ${kind}`;
  notice.textContent = message;
  notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    notice.hidden = true;
  }, 6000);
}

/** An error box for a failed call; `retry` adds a "Try again" button. */
export function errorBox(error, retry) {
  return h(
    'div',
    { class: 'error', role: 'alert' },
    h('p', {}, error.message),
    error.fields && error.fields.length
      ? h('ul', {}, error.fields.map((f) => h('li', {}, `${f.field}: ${f.message}`)))
      : null,
    retry ? h('button', { type: 'button', onclick: retry }, 'Try again') : null,
  );
}

export function money(value) {
  return `¥${Number(value).toFixed(2)}`;
}

const ALLOWED = new Set(['P', 'BR', 'B', 'I', 'EM', 'STRONG', 'UL', 'OL', 'LI', 'A', 'CODE']);

/** A product description (HTML from the catalogue), keeping only harmless text markup. */
export function richText(html) {
  const parsed = new DOMParser().parseFromString(`<div>${html || ''}</div>`, 'text/html');
  const clean = (node) => {
    if (node.nodeType === Node.TEXT_NODE) return document.createTextNode(node.textContent);
    if (node.nodeType !== Node.ELEMENT_NODE) return null;
    const children = Array.from(node.childNodes, clean).filter(Boolean);
    if (!ALLOWED.has(node.tagName)) return children;
    const copy = document.createElement(node.tagName);
    const href = node.getAttribute('href');
    if (node.tagName === 'A' && href && /^https?:\/\//i.test(href)) {
      copy.setAttribute('href', href);
      copy.setAttribute('rel', 'noopener noreferrer');
      copy.setAttribute('target', '_blank');
    }
    copy.append(...children.flat());
    return copy;
  };
  const root = parsed.body.firstChild;
  return h('div', { class: 'description' }, Array.from(root ? root.childNodes : [], clean).filter(Boolean));
}

/** A product's cover, sized before it loads (no layout shift); a drawn placeholder if missing. */
export function cover(product, className = 'cover') {
  const image = h('img', {
    class: className,
    src: product.cover || `/static/cover/${slug(product.title)}.svg`,
    alt: `Cover of ${product.title}`,
    width: 300,
    height: 400,
    loading: 'lazy',
    decoding: 'async',
  });
  image.addEventListener('error', () => {
    const fallback = `/static/cover/${slug(product.title)}.svg`;
    if (!image.src.endsWith(fallback)) image.src = fallback;
  }, { once: true });
  return image;
}

export function slug(text) {
  return String(text || 'untitled').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60) || 'untitled';
}

/** A labelled form field. */
export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), input, hint ? h('small', {}, hint) : null);
}

export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
