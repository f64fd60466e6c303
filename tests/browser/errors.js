// Forms on bad input, in a real browser: the request form submitted empty shows an accessible
// error summary (role=alert, "Error:" in the title, one link per missing field to an element
// that exists, fields marked); markup typed into a text field comes back as text and never runs;
// the reviewer's sign-off and the approver's decision forms do the same; a wrong password shows
// an error summary on the sign-in page. Run by crates/formulary/tests/cli/browser.rs.
//
//   BASE_URL=http://127.0.0.1:8080 SCREENSHOT_DIR=/tmp/shots FORMULARY_TEST_PASSWORD=… node tests/browser/errors.js

'use strict';

const { expect, excerpt, runCase, open, mainText, signIn, signOut, checkErrorSummary } = require('./lib');

const HOSTILE = '<script>alert(1)</script> and "><img src=x onerror=alert(2)>';

/** Fails if anything the user typed turned into live markup on the page. */
async function checkInert(page, what) {
  const live = await page.evaluate(() => ({
    scripts: Array.from(document.querySelectorAll('script')).map((script) => script.outerHTML),
    images: Array.from(document.querySelectorAll('img[src="x"], [onerror]')).map((element) => element.outerHTML),
  }));
  expect(live.scripts.length === 0, `${what}: the page contains script elements: ${live.scripts.join(' ')}`);
  expect(live.images.length === 0, `${what}: typed markup became elements: ${live.images.join(' ')}`);
}

runCase('errors', async ({ page, shot }) => {
  // 1. The request form, submitted empty.
  await signIn(page, 'ana', 'Ana Analyst');
  await open(page, '/requests/new');
  await shot('request-form-empty');
  const [response] = await Promise.all([
    page.waitForResponse((answer) => answer.url().endsWith('/requests') && answer.request().method() === 'POST'),
    page.getByRole('button', { name: 'Submit request' }).click(),
  ]);
  await page.waitForLoadState('load');
  expect(response.status() === 422, `an empty request form should answer 422; it answered ${response.status()}`);
  const links = await checkErrorSummary(page, ['problem', 'data_class', 'ecosystem', 'name', 'environment', 'users'], 'empty request form');
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.classList.contains('nhsuk-error-summary'));
  expect(focused, 'the error summary should take focus when the page loads, so keyboard and screen-reader users land on it');
  await shot('request-form-errors');
  // Each link leads to its field.
  await page.locator('div.nhsuk-error-summary a[href="#users"]').click();
  expect(page.url().endsWith('#users'), `following the summary's link to "How many people" should go to #users; the address is ${page.url()}`);
  expect(links.every((link) => !/undefined|null/.test(link.text)), `the summary's messages should be readable: ${JSON.stringify(links)}`);

  // 2. Markup typed into a text field is shown as text, in the form and on the request page.
  await page.getByLabel('What problem do you need to solve, and for whom?').fill(HOSTILE);
  await page.getByRole('button', { name: 'Submit request' }).click();
  await page.waitForLoadState('load');
  await checkErrorSummary(page, ['data_class', 'ecosystem', 'name', 'environment', 'users'], 'request form with only the problem');
  const kept = await page.getByLabel('What problem do you need to solve, and for whom?').inputValue();
  expect(kept === HOSTILE, `the problem text should come back exactly as typed; it came back as "${kept}"`);
  await checkInert(page, 'request form shown again');
  await shot('request-form-markup-kept-as-text');
  await page.getByLabel('Personal data').check();
  await page.getByLabel('PyPI', { exact: true }).check();
  await page.getByLabel('Name of the tool or package').fill('attrs');
  await page.getByLabel('Versions (optional)').fill('not a range (');
  await page.getByLabel('Where will it run?').fill('<b>bold?</b> a laptop');
  await page.getByLabel('How many people will use it?').fill('a dozen');
  await page.getByRole('button', { name: 'Submit request' }).click();
  await page.waitForLoadState('load');
  await checkErrorSummary(page, ['version_range', 'users'], 'request form with a bad range and a bad number');
  await shot('request-form-bad-values');
  await page.getByLabel('Versions (optional)').fill('');
  await page.getByLabel('How many people will use it?').fill('3');
  await page.getByRole('button', { name: 'Submit request' }).click();
  await page.waitForLoadState('load');
  if (await page.getByRole('button', { name: 'Submit a new request anyway' }).count() > 0) {
    // Earlier work on the same component is shown once before a new review starts.
    await page.getByRole('button', { name: 'Submit a new request anyway' }).click();
    await page.waitForLoadState('load');
  }
  const match = /\/requests\/(\d+)$/.exec(page.url());
  expect(match, `the corrected form should create the request; the page says "${excerpt(await mainText(page))}"`);
  const asked = await page.locator('dl.nhsuk-summary-list').first().innerText();
  expect(asked.includes(HOSTILE) && asked.includes('<b>bold?</b> a laptop'), `the request page should show the typed markup as text; it shows "${excerpt(asked)}"`);
  await checkInert(page, 'request page');
  await shot('request-page-markup-as-text');
  const requestPath = `/requests/${match[1]}`;
  await signOut(page);

  // 3. The reviewer's sign-off form and the approver's decision form, submitted empty.
  await signIn(page, 'rob', 'Rob Reviewer');
  await open(page, requestPath);
  await page.getByRole('button', { name: 'Sign off stage' }).click();
  await page.waitForLoadState('load');
  const signOffLinks = await checkErrorSummary(page, await summaryFields(page), 'empty sign-off form');
  expect(signOffLinks.length > 0, 'an empty sign-off should name at least one problem');
  await checkInert(page, 'request page with sign-off errors');
  await shot('sign-off-errors');
  await signOut(page);
  await signIn(page, 'aisha', 'Aisha Approver');
  await open(page, requestPath);
  await page.getByRole('button', { name: 'Record decision' }).click();
  await page.waitForLoadState('load');
  const decisionLinks = await checkErrorSummary(page, await summaryFields(page), 'empty decision form');
  expect(decisionLinks.length > 0, 'an empty decision should name at least one problem');
  await shot('decision-errors');
  await signOut(page);

  // 4. Sign-in: empty, then a wrong password.
  await open(page, '/sign-in');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForLoadState('load');
  await checkErrorSummary(page, ['username', 'password'], 'empty sign-in');
  await shot('sign-in-empty');
  await page.getByLabel('Username').fill('ana');
  await page.getByLabel('Password').fill('not the password at all');
  const [refused] = await Promise.all([
    page.waitForResponse((answer) => answer.url().endsWith('/sign-in') && answer.request().method() === 'POST'),
    page.getByRole('button', { name: 'Sign in', exact: true }).click(),
  ]);
  await page.waitForLoadState('load');
  expect(refused.status() === 401, `a wrong password should answer 401; it answered ${refused.status()}`);
  await checkErrorSummary(page, ['username'], 'wrong password');
  expect(await page.getByLabel('Username').inputValue() === 'ana', 'the username should be kept after a failed sign-in');
  expect(await page.getByLabel('Password').inputValue() === '', 'the password must not be echoed back');
  expect(await page.locator('.formulary-account').count() === 0, 'a wrong password must not sign anyone in');
  await shot('sign-in-wrong-password');
});

/** The fields the page's error summary links to (the per-form checks then insist they exist). */
async function summaryFields(page) {
  const hrefs = await page.locator('div.nhsuk-error-summary a').evaluateAll((anchors) => anchors.map((a) => a.getAttribute('href')));
  expect(hrefs.length > 0, `expected an error summary; the page says "${excerpt(await mainText(page))}"`);
  return hrefs.map((href) => (href || '').replace(/^#/, ''));
}
