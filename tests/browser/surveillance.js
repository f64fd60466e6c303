// Surveillance pages in a real browser, each checked with axe-core (WCAG 2.2 A and AA) at every
// screenshot: the metrics page shows the recall figures to an auditor (share closed within 14
// days, open exposure by severity and age, patch latency) and not to a requester; "who has
// version X?" answers from the form; the recall page shows progress and the people. Run by
// crates/formulary/tests/cli/browser.rs, which opens the recall (RECALL_ID) first.
//
//   BASE_URL=… SCREENSHOT_DIR=… FORMULARY_TEST_PASSWORD=… RECALL_ID=rc-… node tests/browser/surveillance.js

'use strict';

const { expect, excerpt, runCase, open, mainText, signIn, signOut } = require('./lib');

const RECALL_ID = process.env.RECALL_ID || '';

runCase('surveillance', async ({ page, shot }) => {
  expect(RECALL_ID, 'set RECALL_ID to the recall the test opened');

  // 1. A requester sees the request metrics, not who is exposed.
  await signIn(page, 'ana', 'Ana Analyst');
  await open(page, '/metrics');
  expect(await page.locator('#surveillance').count() === 0, 'a requester should not see the surveillance figures (they name exposure across the estate)');
  await shot('metrics-as-requester');
  await signOut(page);

  // 2. The auditor sees them.
  await signIn(page, 'audrey', 'Audrey Auditor');
  await open(page, '/metrics');
  const heading = page.getByRole('heading', { name: 'Surveillance and recalls' });
  expect(await heading.count() === 1, `the auditor should see the surveillance section; the page says "${excerpt(await mainText(page))}"`);
  const exposure = await page.locator('#open-exposure').innerText();
  expect(/manual|unrated|prohibited|high|critical|medium|low/.test(exposure) && exposure.includes('1'), `open exposure should list the one exposed environment by severity; it says "${excerpt(exposure)}"`);
  const closed = await page.locator('#closed-within-14-days').innerText();
  expect(closed.length > 0, 'the share closed within 14 days should be shown');
  const latency = page.locator('#patch-latency a');
  expect(await latency.count() === 1, `patch latency should list the recall; found ${await latency.count()} rows`);
  await shot('metrics-as-auditor');

  // 3. Who has requests 2.19.1? The form answers.
  await open(page, '/who-has');
  await page.getByLabel('Component, with or without a version').fill('pkg:pypi/requests@2.19.1');
  await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Search' }).click()]);
  const answer = await mainText(page);
  expect(answer.includes('reported: analysis-laptop') && answer.includes('RJ1'), `who-has should name the reported environment; the page says "${excerpt(answer)}"`);
  await shot('who-has-answer');

  // 4. The recall page, reached from the metrics page.
  await open(page, '/metrics');
  await Promise.all([page.waitForLoadState('load'), latency.first().click()]);
  expect(page.url().endsWith(`/recalls/${RECALL_ID}`), `the latency table should link to the recall; the address is ${page.url()}`);
  const recall = await mainText(page);
  expect(recall.includes('Recall of pkg:pypi/requests') && recall.includes('1 still exposed') && recall.includes('analysis-laptop'), `the recall page should show progress and the people; it says "${excerpt(recall)}"`);
  expect(recall.includes('2.32.3'), `the recall page should say what to move to; it says "${excerpt(recall)}"`);
  await shot('recall-page');
});
