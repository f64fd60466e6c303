// Shared helpers of the browser tests: headless Debian chromium driven by playwright-core,
// numbered screenshots of every step, and expectations that stop the run with a clear message.
//
// Environment: BASE_URL (the running `formulary serve`, no trailing slash needed),
// SCREENSHOT_DIR (where the PNGs go), FORMULARY_TEST_PASSWORD (every account's password),
// CHROMIUM (the browser, default /usr/bin/chromium).

'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');

/** axe-core, injected into each page to check it against WCAG 2.2 A and AA. */
const AXE = require.resolve('axe-core/axe.min.js');
const WCAG_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'];

const BASE_URL = (process.env.BASE_URL || '').replace(/\/+$/, '');
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || '';
const PASSWORD = process.env.FORMULARY_TEST_PASSWORD || '';

/** A failed expectation: the message says what was expected and what the page showed. */
class ExpectationFailed extends Error {}

function expect(condition, message) {
  if (!condition) {
    throw new ExpectationFailed(message);
  }
}

/** Shortens page text for a failure message. */
function excerpt(text, limit = 400) {
  const flat = String(text || '').replace(/\s+/g, ' ').trim();
  return flat.length > limit ? `${flat.slice(0, limit)}…` : flat;
}

/**
 * Runs one case: launches chromium, gives `body` a page and a `shot(name)` function, and exits
 * non-zero with the failure and the page's URL and title when anything goes wrong.
 */
async function runCase(name, body) {
  for (const [variable, value] of [['BASE_URL', BASE_URL], ['SCREENSHOT_DIR', SCREENSHOT_DIR], ['FORMULARY_TEST_PASSWORD', PASSWORD]]) {
    if (!value) {
      console.error(`${name}: set ${variable} (see crates/formulary/tests/cli/browser.rs)`);
      process.exit(2);
    }
  }
  fs.rmSync(SCREENSHOT_DIR, { recursive: true, force: true });
  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const started = Date.now();
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking'],
  });
  // bypassCSP lets the test inject axe-core; it also means the page's CSP cannot hide an escaping
  // bug from the dialog check: only the escaping itself keeps script from running.
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-GB', bypassCSP: true });
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(`script error on the page: ${error.message}`));
  page.on('dialog', async (dialog) => {
    problems.push(`a ${dialog.type()} dialog opened with "${dialog.message()}": page script ran`);
    await dialog.dismiss().catch(() => {});
  });
  let step = 0;
  const shot = async (label) => {
    step += 1;
    const file = path.join(SCREENSHOT_DIR, `${String(step).padStart(2, '0')}-${label}.png`);
    await page.screenshot({ path: file, fullPage: true });
    expect(problems.length === 0, problems.join('; '));
    await checkAccessibility(page, label);
    return file;
  };
  try {
    await body({ page, shot, problems });
    expect(problems.length === 0, problems.join('; '));
    console.log(`${name}: passed in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${SCREENSHOT_DIR}`);
  } catch (error) {
    let where = '';
    try {
      where = ` (at ${page.url()}, title "${await page.title()}")`;
      await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'failure.png'), fullPage: true });
    } catch (_) {
      // The page may be gone; the message still says what failed.
    }
    const message = error instanceof ExpectationFailed ? error.message : (error && error.stack) || String(error);
    console.error(`${name}: FAILED${where}: ${message}`);
    console.error(`screenshots so far (and failure.png) are in ${SCREENSHOT_DIR}`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

/**
 * Runs axe-core on the page and fails on any WCAG 2.2 A or AA violation, naming the rule and the
 * elements.
 */
async function checkAccessibility(page, what) {
  await page.addScriptTag({ path: AXE });
  const violations = await page.evaluate(async (tags) => {
    const result = await window.axe.run(document, { runOnly: { type: 'tag', values: tags } });
    return result.violations.map((violation) => `${violation.id} (${violation.impact}): ${violation.help}; at ${violation.nodes.slice(0, 3).map((node) => node.target.join(' ')).join(', ')}`);
  }, WCAG_TAGS);
  expect(violations.length === 0, `${what}: axe-core found WCAG 2.2 AA violations: ${violations.join(' | ')}`);
}

/** Opens a path of the site and insists on a successful page. */
async function open(page, route, status = 200) {
  const response = await page.goto(`${BASE_URL}${route}`);
  expect(response && response.status() === status, `GET ${route} answered ${response && response.status()}, expected ${status}`);
  return response;
}

/** The visible text of the main content. */
async function mainText(page) {
  return page.locator('main').innerText();
}

/** Signs in through the form and checks the header names the person. */
async function signIn(page, username, displayName, password = PASSWORD) {
  await open(page, '/sign-in');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Sign in', exact: true }).click()]);
  const account = await page.locator('.formulary-account').innerText().catch(() => '');
  expect(account.includes(`Signed in as ${displayName}`), `after signing in as ${username}, the header should say "Signed in as ${displayName}"; it says "${excerpt(account)}" and the page says "${excerpt(await mainText(page))}"`);
}

/** Signs out with the header's button and checks the session is gone. */
async function signOut(page) {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForLoadState('load');
  expect(await page.locator('.formulary-account').count() === 0, 'after signing out, the header still shows a signed-in account');
  expect(await page.getByRole('link', { name: 'Sign in' }).count() === 1, 'after signing out, the navigation should offer "Sign in"');
}

/**
 * Checks the accessible error summary: role=alert, one link per expected field, every link's
 * target exists, every field's form group is marked, the title starts with "Error:".
 */
async function checkErrorSummary(page, fields, what) {
  const title = await page.title();
  expect(title.startsWith('Error:'), `${what}: the title should start with "Error:" so screen readers announce it; it is "${title}"`);
  const summary = page.locator('div.nhsuk-error-summary');
  expect(await summary.count() === 1, `${what}: expected one div.nhsuk-error-summary; found ${await summary.count()}. Page: "${excerpt(await mainText(page))}"`);
  expect(await summary.getAttribute('role') === 'alert', `${what}: the error summary should have role="alert"`);
  const labelledBy = await summary.getAttribute('aria-labelledby');
  expect(labelledBy && await page.locator(`[id="${labelledBy}"]`).count() === 1, `${what}: the error summary's aria-labelledby="${labelledBy}" names no element`);
  const links = await summary.locator('a').evaluateAll((anchors) => anchors.map((a) => ({ href: a.getAttribute('href'), text: a.textContent.trim() })));
  const linked = links.map((link) => link.href);
  const wanted = fields.map((field) => `#${field}`);
  expect(JSON.stringify([...linked].sort()) === JSON.stringify([...wanted].sort()), `${what}: the summary should link ${wanted.join(', ')}; it links ${linked.join(', ')}`);
  for (const link of links) {
    expect(link.text.length > 0, `${what}: the summary link to ${link.href} has no text`);
    const id = link.href.slice(1);
    const found = await page.evaluate((target) => {
      const element = document.getElementById(target);
      if (!element) return null;
      const group = element.closest('.nhsuk-form-group');
      const message = document.getElementById(`${target}-error`);
      const fieldset = element.type === 'radio' || element.type === 'checkbox' ? element.closest('fieldset') : null;
      const describedBy = (fieldset || element).getAttribute('aria-describedby') || '';
      return {
        tag: element.tagName.toLowerCase(),
        groupMarked: Boolean(group && group.classList.contains('nhsuk-form-group--error')),
        message: message && message.classList.contains('nhsuk-error-message') ? message.textContent.trim() : null,
        describedBy,
      };
    }, id);
    expect(found, `${what}: the summary links #${id} but no element has id="${id}"`);
    expect(['input', 'textarea', 'select'].includes(found.tag), `${what}: #${id} should be a form field; it is a <${found.tag}>`);
    expect(found.groupMarked, `${what}: the form group of #${id} lacks nhsuk-form-group--error`);
    expect(found.message && found.message.includes(link.text), `${what}: #${id} should have span.nhsuk-error-message id="${id}-error" repeating "${link.text}"; found "${found.message}"`);
    expect(found.describedBy.split(/\s+/).includes(`${id}-error`), `${what}: #${id} (or its fieldset) should be aria-describedby its error message; aria-describedby="${found.describedBy}"`);
  }
  return links;
}

module.exports = {
  BASE_URL,
  PASSWORD,
  expect,
  excerpt,
  runCase,
  open,
  mainText,
  signIn,
  signOut,
  checkErrorSummary,
  checkAccessibility,
};
