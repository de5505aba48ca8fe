// The storefront in a real headless Chromium, as a shopper and an administrator use it, against
// the running bookstore at BOOKSTORE_URL. Any console error, uncaught exception or unexpected
// 4xx/5xx answer fails the run. Writes a screenshot of the shop to SCREENSHOT when set.
// With CONFIG_FILE (the launcher's --config file), a payment is left to expire after the
// payment window was shortened there, live (CONFIG_KEPT: the file's other lines, kept). With
// DEGRADED_URL (a gateway whose warehouse is down), the catalogue's 503 is shown as such.
//
//   BOOKSTORE_URL=http://127.0.0.1:8080 CHROMIUM=/usr/bin/chromium node storefront.mjs

import { renameSync, writeFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const BASE = process.env.BOOKSTORE_URL || 'http://127.0.0.1:8080';
const ADMIN = { username: 'icyfenix', password: process.env.ADMIN_PASSWORD || '123456' };
const STEP_TIMEOUT = 15_000;
const user = { username: `shopper${Date.now() % 1_000_000}`, password: 'shopper-password' };

const problems = [];
/** Answers a step expects to be refused; anything else 4xx/5xx is a problem. */
const expectedRefusals = [];

function fail(message) {
  throw new Error(message);
}

async function step(name, body) {
  const started = Date.now();
  try {
    await body();
  } catch (error) {
    console.error(`✗ ${name}: ${error.message}`);
    throw error;
  }
  if (problems.length) fail(`${name}: ${problems.join('; ')}`);
  console.log(`✓ ${name} (${Date.now() - started} ms)`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
context.setDefaultTimeout(STEP_TIMEOUT);
const page = await context.newPage();
page.on('console', (message) => {
  if (message.type() === 'error') {
    const text = message.text();
    // Chromium logs every refused fetch as a console error; those the test expects are fine.
    const expected = text.startsWith('Failed to load resource') && expectedRefusals.length;
    if (!expected) problems.push(`console error: ${text}`);
  }
});
page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
/** Bytes of every answer's body while `firstPage` is counting (the first visit's transfer). */
const firstPage = { counting: false, requests: 0, bodies: [] };
page.on('response', (response) => {
  if (firstPage.counting) {
    firstPage.requests += 1;
    firstPage.bodies.push(response.body().then((body) => body.length, () => 0));
  }
  const status = response.status();
  if (status < 400) return;
  const path = new URL(response.url()).pathname;
  const expected = expectedRefusals.find((e) => e.status === status && path.startsWith(e.path));
  if (!expected) problems.push(`unexpected ${status} from ${response.request().method()} ${path}`);
});

async function expectRefusal(status, path, body) {
  const entry = { status, path };
  expectedRefusals.push(entry);
  try {
    await body();
  } finally {
    expectedRefusals.splice(expectedRefusals.indexOf(entry), 1);
  }
}

async function visit(hash) {
  await page.goto(`${BASE}/${hash}`);
}

/** Every image on the page has loaded with a real size. */
async function imagesLoaded(selector) {
  await page.waitForFunction(
    (s) => Array.from(document.querySelectorAll(s)).every((img) => img.complete && img.naturalWidth > 0),
    selector,
  );
  const missingAlt = await page.$$eval(selector, (imgs) => imgs.filter((img) => !img.alt).length);
  if (missingAlt) fail(`${missingAlt} images without alt text`);
}

async function logIn({ username, password }) {
  await visit('#/login');
  await page.getByLabel('Username', { exact: true }).fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('#session-links').getByText(username).waitFor();
}

async function logOut() {
  await page.locator('#session-links').getByRole('button', { name: 'Log out' }).click();
  await page.locator('#session-links').getByText('Log in').waitFor();
}

async function addToCart(title) {
  await visit('#/');
  await page.locator('.card', { hasText: title }).getByRole('button', { name: 'Add to cart' }).click();
}

async function settle() {
  await visit('#/settle');
  await page.getByLabel('Name', { exact: true }).fill('Ada Shopper');
  await page.getByLabel('Telephone', { exact: true }).fill('13912345678');
  await page.getByLabel('Address', { exact: true }).fill('1 Loopback Road');
  await page.getByRole('button', { name: 'Settle and go to payment' }).click();
}

async function setStock(title, amount) {
  await visit('#/admin');
  const input = page.getByLabel(`Stock of ${title}`, { exact: true });
  await page.waitForFunction((label) => {
    const field = document.querySelector(`input[aria-label="${label}"]`);
    return field && field.value !== '';
  }, `Stock of ${title}`);
  await input.fill(String(amount));
  await page.getByRole('button', { name: `Set stock of ${title}` }).click();
  await page.locator('#notice').getByText(`set to ${amount}`).waitFor();
}

let failed = false;
try {
  await step('the catalogue shows every book with its cover, and the carousel', async () => {
    firstPage.counting = true;
    await visit('');
    await page.locator('.card').first().waitFor();
    const cards = await page.locator('.card').count();
    if (cards < 9) fail(`only ${cards} books shown`);
    await page.locator('.carousel img').first().waitFor();
    await imagesLoaded('.carousel .slide:not([hidden]) img');
    await page.locator('.card img').last().scrollIntoViewIfNeeded();
    await imagesLoaded('.card img');
    firstPage.counting = false;
    // Images have their size before they load: nothing moves when they arrive.
    const shift = await page.evaluate(() => new Promise((resolve) => {
      new PerformanceObserver((list) => {
        resolve(list.getEntries().filter((e) => !e.hadRecentInput).reduce((sum, e) => sum + e.value, 0));
      }).observe({ type: 'layout-shift', buffered: true });
      setTimeout(() => resolve(0), 500);
    }));
    if (shift > 0.01) fail(`the page shifted while loading (cumulative layout shift ${shift.toFixed(3)})`);
    const bytes = (await Promise.all(firstPage.bodies)).reduce((sum, n) => sum + n, 0);
    console.log(`  first visit: ${firstPage.requests} requests, ${(bytes / 1024).toFixed(1)} KiB of bodies (uncompressed), layout shift ${shift.toFixed(3)}`);
    if (process.env.SCREENSHOT) {
      await page.setViewportSize({ width: 820, height: 560 });
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: process.env.SCREENSHOT });
      await page.setViewportSize({ width: 1280, height: 900 });
    }
  });

  await step('search narrows the catalogue', async () => {
    await page.getByLabel('Search', { exact: true }).fill('rust');
    await page.getByText(/books match/).waitFor();
    const titles = await page.locator('.card h2').allTextContents();
    if (titles.length < 2 || titles.length >= 9) fail(`search for rust shows ${titles.length} books`);
    await page.getByLabel('Search', { exact: true }).fill('');
  });

  await step('a book has its page with specifications and pictures', async () => {
    await page.locator('.card', { hasText: 'Database Internals' }).getByRole('link').click();
    await page.getByRole('heading', { name: 'Database Internals' }).waitFor();
    await page.getByRole('table').getByText('Alex Petrov').waitFor();
    await imagesLoaded('main img');
  });

  await step('a new shopper registers and is logged in', async () => {
    await visit('#/register');
    await page.getByLabel('Username', { exact: true }).fill(user.username);
    await page.getByLabel('Password', { exact: true }).fill(user.password);
    await page.getByLabel('Name', { exact: true }).fill('Ada Shopper');
    await page.getByLabel('E-mail', { exact: true }).fill(`${user.username}@example.com`);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.locator('#session-links').getByText(user.username).waitFor();
  });

  await step('two books in the cart, kept across a reload, quantity changed', async () => {
    await addToCart('Database Internals');
    await addToCart('Release It!');
    await page.reload();
    await page.locator('#cart-count').getByText('2').waitFor();
    await visit('#/cart');
    await page.getByLabel('Amount of Release It!, 2nd Edition', { exact: true }).fill('2');
    await page.getByLabel('Amount of Release It!, 2nd Edition', { exact: true }).press('Tab');
    await page.locator('#cart-count').getByText('3').waitFor();
  });

  await step('settle, see the amount and the countdown, pay: PAYED', async () => {
    await settle();
    await page.locator('#countdown').getByText(/Time left to pay: \d+:\d\d/).waitFor();
    // 2 × 47.50 + 54.99 + 12 shipping
    await page.locator('#pay-amount').getByText('¥161.99').waitFor();
    await page.getByRole('button', { name: /^Pay / }).click();
    await page.locator('#pay-state').getByText('Paid').waitFor();
    if ((await page.locator('#cart-count').textContent()) !== '0') fail('the cart was not emptied');
  });

  await step('settle and cancel: CANCEL', async () => {
    await addToCart('Rust for Rustaceans');
    await settle();
    await page.getByRole('button', { name: 'Cancel the order' }).click();
    await page.locator('#pay-state').getByText('Cancelled').waitFor();
  });

  await step('the access token is refreshed before it expires', async () => {
    const tokenNow = () => page.evaluate(() => JSON.parse(localStorage.getItem('bookstore.session')).accessToken);
    const first = await tokenNow();
    await page.waitForFunction(
      (before) => JSON.parse(localStorage.getItem('bookstore.session')).accessToken !== before,
      first,
      { timeout: 20_000 },
    );
    await visit('#/profile');
    await page.getByRole('heading', { name: 'Your profile' }).waitFor();
  });

  await step('the profile can be changed', async () => {
    await visit('#/profile');
    await page.getByLabel('Address', { exact: true }).fill('2 Loopback Road');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved.').waitFor();
  });

  await step('a shopper is not let into the warehouse', async () => {
    await visit('#/admin');
    await page.getByText('not allowed').waitFor();
  });

  await step('the administrator logs in with the password typed in both front-ends, and empties a shelf', async () => {
    await logOut();
    await logIn(ADMIN);
    await page.locator('#admin-link').waitFor({ state: 'visible' });
    await setStock('Site Reliability Engineering', 0);
  });

  await step('out of stock: settling says which book is missing', async () => {
    await logOut();
    await logIn(user);
    await addToCart('Site Reliability Engineering');
    await expectRefusal(422, '/restful/settlements', async () => {
      await settle();
      await page.getByRole('alert').getByText('Site Reliability Engineering').waitFor();
    });
  });

  await step('the administrator restocks, and the shopper can buy it', async () => {
    await logOut();
    await logIn(ADMIN);
    await setStock('Site Reliability Engineering', 5);
    await logOut();
    await logIn(user);
    await settle();
    await page.getByRole('button', { name: /^Pay / }).click();
    await page.locator('#pay-state').getByText('Paid').waitFor();
  });

  await step('the administrator creates, edits and deletes a product; shoppers see it', async () => {
    await logOut();
    await logIn(ADMIN);
    await visit('#/admin/product/new');
    await page.getByLabel('Title', { exact: true }).fill('A Storefront Test Book');
    await page.getByLabel('Price', { exact: true }).fill('12.5');
    await page.getByLabel('Rating (0–10)', { exact: true }).fill('7');
    await page.getByLabel('Description (HTML)', { exact: true }).fill('<p>Written by the browser test.</p>');
    await page.getByRole('button', { name: 'Add a specification' }).click();
    await page.getByLabel('Specification', { exact: true }).fill('Author');
    await page.getByLabel('Value', { exact: true }).fill('The Test');
    await page.getByRole('button', { name: 'Create product' }).click();
    await page.getByRole('link', { name: 'A Storefront Test Book' }).click();
    await page.getByLabel('Price', { exact: true }).fill('13');
    await page.getByRole('button', { name: 'Save product' }).click();
    await page.getByRole('heading', { name: 'Warehouse' }).waitFor();
    await visit('#/');
    const card = page.locator('.card', { hasText: 'A Storefront Test Book' });
    await card.getByText('¥13.00').waitFor();
    await imagesLoaded('.card img');
    await visit('#/admin');
    page.once('dialog', (dialog) => dialog.accept());
    await page.getByRole('button', { name: 'Delete A Storefront Test Book' }).click();
    await page.locator('#notice').getByText('deleted').waitFor();
  });

  await step('at a phone width nothing overflows, and the keyboard alone can fill the cart', async () => {
    await page.setViewportSize({ width: 375, height: 740 });
    await visit('#/cart');
    await visit('');
    await page.locator('.card').first().waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 0) fail(`the page is ${overflow}px wider than the screen`);
    const before = Number(await page.locator('#cart-count').textContent());
    let reached = false;
    for (let i = 0; i < 40 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate(() => document.activeElement && document.activeElement.textContent === 'Add to cart');
    }
    if (!reached) fail('Tab never reached an "Add to cart" button');
    await page.keyboard.press('Enter');
    await page.locator('#cart-count').getByText(String(before + 1)).waitFor();
  });
  if (process.env.CONFIG_FILE) {
    await step('a payment left to expire ends as TIMEOUT (the window shortened in the config file, live)', async () => {
      await page.setViewportSize({ width: 1280, height: 900 });
      const file = process.env.CONFIG_FILE;
      writeFileSync(`${file}.new`, `${process.env.CONFIG_KEPT || ''}[payment.payment]\npayment_window_ms = 4000\n`);
      renameSync(`${file}.new`, file);
      // The launcher re-reads the file within a second; until then a settlement gets the old
      // window, and is cancelled.
      const until = Date.now() + 20_000;
      for (;;) {
        await addToCart('Database Internals');
        await settle();
        await page.locator('#countdown').getByText(/\d+:\d\d/).waitFor();
        const left = await page.locator('#countdown').textContent();
        const [, minutes, seconds] = left.match(/(\d+):(\d\d)/) || [];
        if (Number(minutes) === 0 && Number(seconds) <= 5) break;
        if (Date.now() > until) fail(`the shortened window never applied (${left})`);
        await page.getByRole('button', { name: 'Cancel the order' }).click();
        await page.locator('#pay-state').getByText('Cancelled').waitFor();
        await page.waitForTimeout(500);
      }
      await page.locator('#pay-state').getByText('Expired').waitFor({ timeout: 20_000 });
    });
  }

  if (process.env.DEGRADED_URL) {
    await step('with the warehouse down the catalogue says so and offers a retry; logging in still works', async () => {
      await expectRefusal(503, '/restful/', async () => {
        await page.goto(`${process.env.DEGRADED_URL}/`);
        const alert = page.getByRole('alert');
        await alert.getByText('The catalogue is unavailable right now').waitFor();
        await alert.getByRole('button', { name: 'Try again' }).click();
        await alert.getByText('The catalogue is unavailable right now').waitFor();
      });
      await page.goto(`${process.env.DEGRADED_URL}/#/login?next=${encodeURIComponent('#/profile')}`);
      await page.getByLabel('Username', { exact: true }).fill(user.username);
      await page.getByLabel('Password', { exact: true }).fill(user.password);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByRole('heading', { name: 'Your profile' }).waitFor();
    });
  }
} catch {
  failed = true;
} finally {
  await browser.close();
}
if (failed) process.exit(1);
console.log('storefront: every step passed');
