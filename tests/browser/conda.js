// conda components in a real browser: a requester asks for the conda package pytorch with a
// conda version specification through the request form; the request page names it as a conda
// component; the catalogue lists it when searching conda, and its component page opens with the
// "Request this" action. Every page is checked with axe-core. Run by
// crates/formulary/tests/cli/browser.rs.
//
//   BASE_URL=http://127.0.0.1:8080 SCREENSHOT_DIR=/tmp/shots FORMULARY_TEST_PASSWORD=… node tests/browser/conda.js

'use strict';

const { expect, excerpt, runCase, open, mainText, signIn } = require('./lib');

runCase('conda', async ({ page, shot }) => {
  // 1. The request form offers conda and takes a conda version specification.
  await signIn(page, 'ana', 'Ana Analyst');
  await open(page, '/requests/new');
  await page.getByLabel('What problem do you need to solve, and for whom?').fill('Training the sepsis early-warning model needs PyTorch from conda-forge, with its CUDA libraries, on the shared GPU server.');
  await page.getByLabel('Aggregate or published data only').check();
  await page.getByLabel('conda', { exact: true }).check();
  await page.getByLabel('Name of the tool or package').fill('pytorch');
  await page.getByLabel('Versions (optional)').fill('>=2.1,<3');
  await page.getByLabel('Where will it run?').fill('Linux GPU server, a pixi environment installing through the formulary gateway');
  await page.getByLabel('How many people will use it?').fill('4');
  await shot('conda-request-form-filled');
  await page.getByRole('button', { name: 'Submit request' }).click();
  await page.waitForLoadState('load');
  if (await page.getByRole('button', { name: 'Submit a new request anyway' }).count() > 0) {
    await page.getByRole('button', { name: 'Submit a new request anyway' }).click();
    await page.waitForLoadState('load');
  }
  const match = /\/requests\/(\d+)$/.exec(page.url());
  expect(match, `the form should create the request; the page says "${excerpt(await mainText(page))}"`);
  const asked = await mainText(page);
  expect(asked.includes('pytorch') && asked.includes('conda') && asked.includes('>=2.1,<3'), `the request page should name pytorch, conda and the range; it says "${excerpt(asked)}"`);
  await shot('conda-request-page');

  // 2. A conda range that is not a conda version specification is refused on the form.
  await open(page, '/requests/new');
  await page.getByLabel('What problem do you need to solve, and for whom?').fill('A second look at numpy for the same model.');
  await page.getByLabel('Aggregate or published data only').check();
  await page.getByLabel('conda', { exact: true }).check();
  await page.getByLabel('Name of the tool or package').fill('numpy');
  await page.getByLabel('Versions (optional)').fill('>=>1');
  await page.getByLabel('Where will it run?').fill('The same server');
  await page.getByLabel('How many people will use it?').fill('4');
  await page.getByRole('button', { name: 'Submit request' }).click();
  await page.waitForLoadState('load');
  const refused = await mainText(page);
  expect(refused.includes('conda version specification'), `a bad conda range should be explained; the page says "${excerpt(refused)}"`);
  await shot('conda-request-bad-range');

  // 3. The catalogue lists the conda component and opens its page.
  await open(page, '/components?q=pytorch&ecosystem=conda');
  const hit = page.locator('main table a', { hasText: /^pytorch$/ });
  expect(await hit.count() === 1, `searching conda for pytorch should list it once; the page says "${excerpt(await mainText(page))}"`);
  const row = await page.locator('main table tr', { hasText: 'pytorch' }).first().innerText();
  expect(row.includes('conda'), `the catalogue row should say the component comes from conda; it says "${excerpt(row)}"`);
  await shot('conda-catalogue-search');
  await hit.first().click();
  await page.waitForURL(/\/components\/conda\/pytorch$/);
  expect(await page.getByRole('button', { name: 'Request this' }).count() === 1, 'the conda component page should offer "Request this"');
  await shot('conda-component-page');
});
