// A person on a recall says, in the browser, why they stay on the recalled version and until
// when; each page is checked with axe-core (WCAG 2.2 A and AA) at every screenshot. The form
// refuses a reason that is too short and a day in the past with an accessible error summary;
// once recorded, the person no longer counts as exposed, and an auditor following the recall
// sees the reason and the day. Run by crates/formulary/tests/cli/recall_explain.rs, which opens
// the recall (RECALL_ID) over an environment Ana reported.
//
//   BASE_URL=… SCREENSHOT_DIR=… FORMULARY_TEST_PASSWORD=… RECALL_ID=rc-… UNTIL=YYYY-MM-DD node tests/browser/recall_explain.js

'use strict';

const { expect, excerpt, runCase, open, mainText, signIn, signOut, checkErrorSummary } = require('./lib');

const RECALL_ID = process.env.RECALL_ID || '';
const UNTIL = process.env.UNTIL || '';
const REASON = 'Risk owner exception RA-77: the lab instrument driver needs requests 2.19.1 until the vendor ships a fix';

runCase('recall_explain', async ({ page, shot }) => {
  expect(RECALL_ID && UNTIL, 'set RECALL_ID to the recall the test opened and UNTIL to a day within the coming year');

  // 1. Ana, who has the recalled version, follows her notice's link to the recall page.
  await signIn(page, 'ana', 'Ana Analyst');
  await open(page, `/recalls/${RECALL_ID}`);
  expect(await page.getByRole('heading', { name: 'If you must stay on this version' }).count() === 1, `the recall page should offer Ana the form to say why she stays; it says "${excerpt(await mainText(page))}"`);
  expect((await mainText(page)).includes('1 still exposed'), 'Ana is exposed before she explains');
  await shot('recall-as-holder');

  // 2. Too short a reason and a day in the past: an accessible error summary, values kept.
  await page.getByLabel('Why you stay on this version').fill('vendor');
  await page.getByLabel('The day you stay until (optional)').fill('2020-01-01');
  await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Record why I stay' }).click()]);
  await checkErrorSummary(page, ['explanation', 'until'], 'a short reason and a past day');
  expect(await page.getByLabel('Why you stay on this version').inputValue() === 'vendor', 'the reason typed should be kept after an error');
  await shot('explain-errors');

  // 3. A real reason and a day within the year: recorded, and Ana is no longer exposed.
  await page.getByLabel('Why you stay on this version').fill(REASON);
  await page.getByLabel('The day you stay until (optional)').fill(UNTIL);
  await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Record why I stay' }).click()]);
  expect(page.url().endsWith(`/recalls/${RECALL_ID}?done=explained`), `after recording, the page should be the recall's again; it is ${page.url()}`);
  const recorded = await mainText(page);
  expect(recorded.includes('Your reason is recorded') && recorded.includes('0 still exposed'), `the page should confirm and count Ana out of the exposed; it says "${excerpt(recorded)}"`);
  expect(await page.getByRole('heading', { name: 'If you must stay on this version' }).count() === 0, 'the form should go once Ana has explained');
  expect(recorded.includes(REASON) && recorded.includes(`until ${UNTIL}`), `Ana's row should show her reason and day; the page says "${excerpt(recorded)}"`);
  await shot('explained');
  await signOut(page);

  // 4. The auditor following the recall sees Ana's reason and the day.
  await signIn(page, 'audrey', 'Audrey Auditor');
  await open(page, `/recalls/${RECALL_ID}`);
  const row = page.getByRole('row').filter({ hasText: 'ana-laptop' });
  const cells = await row.innerText();
  expect(cells.includes('explained') && cells.includes(REASON) && cells.includes(`until ${UNTIL}`), `the auditor should see Ana's reason and day on her row; it says "${excerpt(cells)}"`);
  expect(await page.getByRole('heading', { name: 'If you must stay on this version' }).count() === 0, 'the auditor has nothing recalled, so no form');
  await shot('recall-as-auditor');
});
