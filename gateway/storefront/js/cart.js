// The shopping cart: product ids and amounts, kept in localStorage so it survives reloads.
// Prices and titles are read from the catalogue when shown, never trusted from storage.

const KEY = 'bookstore.cart';
const MAX_AMOUNT = 99;
const listeners = new Set();

function read() {
  try {
    const lines = JSON.parse(localStorage.getItem(KEY) || '[]');
    return Array.isArray(lines)
      ? lines.filter((l) => Number.isInteger(l.id) && Number.isInteger(l.amount) && l.amount > 0)
      : [];
  } catch {
    return [];
  }
}

function write(lines) {
  localStorage.setItem(KEY, JSON.stringify(lines));
  listeners.forEach((listener) => listener(lines));
}

export const cart = {
  lines: read,
  count: () => read().reduce((sum, line) => sum + line.amount, 0),
  onChange(listener) {
    listeners.add(listener);
  },
  add(id, amount = 1) {
    const lines = read();
    const line = lines.find((l) => l.id === id);
    if (line) line.amount = Math.min(line.amount + amount, MAX_AMOUNT);
    else lines.push({ id, amount: Math.min(amount, MAX_AMOUNT) });
    write(lines);
  },
  set(id, amount) {
    const lines = read();
    const line = lines.find((l) => l.id === id);
    if (!line) return;
    line.amount = Math.max(1, Math.min(amount, MAX_AMOUNT));
    write(lines);
  },
  remove(id) {
    write(read().filter((l) => l.id !== id));
  },
  clear() {
    write([]);
  },
};

// Another tab changed the cart.
window.addEventListener('storage', (event) => {
  if (event.key === KEY) listeners.forEach((listener) => listener(read()));
});
