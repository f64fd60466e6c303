// Channel notices in a real browser (issue 15): a requester is refused the page with the reason;
// a national curator finds it from Administration, sees an empty message and a past last day
// each explained in an accessible error summary (what was typed kept), then publishes a critical
// notice for every channel whose message holds markup: the page shows it as text (no script
// runs) and lists it as shown. Every page axe-clean and no wider than the 1280 px window. Run by
// crates/formulary/tests/cli/channel_notices.rs, which then reads notices.json as conda does.
//
//   BASE_URL=… SCREENSHOT_DIR=… FORMULARY_TEST_PASSWORD=… NOTICE_MESSAGE=… node tests/browser/channel_notices.js

'use strict';

const { expect, excerpt, runCase, open, mainText, signIn, signOut, checkErrorSummary } = require('./lib');

const MESSAGE = process.env.NOTICE_MESSAGE || '';

/** Fails when the page scrolls sideways in the 1280 px window. */
async function checkWidth(page, what) {
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  expect(width <= 1280, `${what}: the page is ${width} px wide in a 1280 px window`);
}

/** Clicks a button and waits for the page it leads to. */
async function submit(page, name) {
  await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name, exact: true }).click()]);
  await page.waitForLoadState('load');
}

runCase('channel_notices', async ({ page, shot }) => {
  expect(MESSAGE, 'set NOTICE_MESSAGE (see crates/formulary/tests/cli/channel_notices.rs)');

  // 1. A requester may not write notices, and is told whose page it is.
  await signIn(page, 'ana', 'Ana Analyst');
  await open(page, '/admin/RJ1/channel-notices', 403);
  const refusal = await mainText(page);
  expect(refusal.includes('does not administer RJ1'), `a requester should be told they do not administer RJ1; the page says "${excerpt(refusal)}"`);
  await shot('requester-refused');
  await signOut(page);

  // 2. The national curator finds the national notices from Administration.
  await signIn(page, 'cora', 'Cora Curator');
  await page.getByRole('link', { name: 'Administration' }).click();
  await page.waitForURL(/\/admin$/);
  await page.getByRole('link', { name: 'Channel notices of NATIONAL' }).click();
  await page.waitForURL(/\/admin\/NATIONAL\/channel-notices$/);
  const empty = await mainText(page);
  expect(empty.includes('No channel notices yet.') && empty.includes("every organisation's conda users"), `the national page should start empty and say whose views it reaches; it says "${excerpt(empty)}"`);
  await shot('notices-empty');
  await checkWidth(page, 'channel notices');

  // 3. No message and a last day in the past: both explained, the day typed is kept.
  await page.getByLabel('Last day shown (optional)').fill('2020-01-31');
  await submit(page, 'Publish notice');
  const links = await checkErrorSummary(page, ['message', 'expires'], 'an empty message and a past day');
  const said = links.map((link) => link.text).join(' | ');
  expect(said.includes('Enter the message') && said.includes('today or a later day'), `the errors should say what to fix; they say "${said}"`);
  expect(await page.getByLabel('Last day shown (optional)').inputValue() === '2020-01-31', 'the day typed should be kept');
  await shot('form-errors');

  // 4. A critical notice for every channel, its markup shown as text.
  await page.getByLabel('Message').fill(MESSAGE);
  await page.getByLabel(/^Critical/).check();
  await page.getByLabel('Channel').selectOption('');
  await page.getByLabel('Last day shown (optional)').fill('');
  await submit(page, 'Publish notice');
  const done = await page.locator('#done').innerText().catch(() => '');
  expect(done.includes('The notice has been published'), `publishing should be confirmed; the page says "${excerpt(await mainText(page))}"`);
  const listed = await page.locator('#notices').innerText();
  expect(listed.includes(MESSAGE) && listed.includes('critical') && listed.includes('Every channel') && listed.includes('Until withdrawn') && listed.includes('Shown') && listed.includes('Written by user:cora'), `the list should show the notice as typed, critical, shown; it shows "${excerpt(listed)}"`);
  expect(await page.locator('#notices img').count() === 0, 'the markup in the message must not become elements');
  await shot('notice-published');
  await checkWidth(page, 'channel notices listed');
});
