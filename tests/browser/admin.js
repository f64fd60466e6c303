// Administration in a real browser, as RJ1's organisation admin: add a person (and get the link
// with which they choose a password), grant a role, change a setting, see a loosening of the
// national baseline refused with the reason, add an exception with an expiry, revoke a
// requester's token, add and remove a prohibition, turn on distinct reviewers, read upstream
// health; every page axe-clean and no wider than the 1280 px window. Run by crates/formulary/tests/cli/browser.rs.
//
//   BASE_URL=http://127.0.0.1:8080 SCREENSHOT_DIR=/tmp/shots FORMULARY_TEST_PASSWORD=… node tests/browser/admin.js

'use strict';

const { expect, excerpt, runCase, open, mainText, signIn, signOut, checkErrorSummary } = require('./lib');

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

runCase('admin', async ({ page, shot }) => {
  // 0. A requester makes herself an API token, which the admin will revoke.
  await signIn(page, 'ana', 'Ana Analyst');
  await open(page, '/account');
  await page.getByLabel('What it is for').fill('weekly report script');
  await page.getByLabel('Use the API with my roles').check();
  await page.getByLabel('Expires after').selectOption('30');
  await submit(page, 'Create token');
  const fresh = await page.locator('#new-gateway-token').innerText();
  expect(/frm_[0-9a-f]{64}/.test(fresh) && fresh.includes('Authorization: Bearer'), `the new API token should be shown once with how to use it; it shows "${excerpt(fresh)}"`);
  await shot('ana-api-token');
  await checkWidth(page, 'account');
  await signOut(page);

  // 1. The admin finds administration in the navigation.
  await signIn(page, 'olu', 'Olu Admin');
  await page.getByRole('link', { name: 'Administration' }).click();
  await page.waitForURL(/\/admin$/);
  const hub = await mainText(page);
  expect(hub.includes('Browser Test Trust') && !hub.includes('RQM'), `/admin should list RJ1 only; it shows "${excerpt(hub)}"`);
  await shot('admin-hub');
  await checkWidth(page, 'hub');

  // 2. People: add a local account.
  await page.getByRole('link', { name: 'People of RJ1' }).click();
  await page.waitForURL(/\/admin\/RJ1\/people$/);
  await shot('people');
  await page.getByLabel('Username').fill('nina.k');
  await page.getByLabel('Full name').fill('Nina Newcomer');
  await page.getByLabel('Email address (optional)').fill('nina@example.nhs.uk');
  await page.getByLabel('First role').selectOption('requester');
  await submit(page, 'Add person');
  const created = await page.locator('#password-link').innerText().catch(() => '');
  expect(created.includes('nina.k') && created.includes('/reset-password/'), `adding a person should show the link to choose a password; it shows "${excerpt(created || await mainText(page))}"`);
  await shot('person-added');
  await checkWidth(page, 'people');

  // 2b. The link works for Nina: a weak password is refused, a strong one saved, once.
  const link = /(https?:\/\/\S+\/reset-password\/[0-9a-f]+)/.exec(created)[1];
  await page.goto(link);
  await shot('choose-password');
  await page.getByLabel('New password', { exact: true }).fill('password1234');
  await page.getByLabel('New password again').fill('password1234');
  await submit(page, 'Save password');
  await checkErrorSummary(page, ['new_password'], 'a weak password');
  await shot('weak-password-refused');
  await page.getByLabel('New password', { exact: true }).fill('lantern orchard copper meadow');
  await page.getByLabel('New password again').fill('lantern orchard copper meadow');
  await submit(page, 'Save password');
  expect((await page.locator('h1').innerText()) === 'Your password has been saved', `a strong password should be saved; the page says "${excerpt(await mainText(page))}"`);
  await shot('password-saved');
  const again = await page.goto(link);
  expect(again.status() === 404, `the link should work once; opening it again answered ${again.status()}`);
  await open(page, '/admin/RJ1/people');

  // 3. Grant her a second role.
  await page.getByRole('link', { name: 'Nina Newcomer' }).click();
  await page.waitForURL(/\/admin\/RJ1\/people\/u-/);
  await page.getByLabel('Grant a role').selectOption('reviewer');
  await submit(page, 'Grant role');
  const roles = await page.locator('#roles').innerText();
  expect(roles.includes('Requester') && roles.includes('Reviewer'), `Nina should hold requester and reviewer in RJ1; the roles table says "${excerpt(roles)}"`);
  expect((await page.locator('#done').innerText()).includes('granted'), 'the page should confirm the grant');
  await shot('role-granted');

  // 4. Revoke ana's API token from her page.
  await open(page, '/admin/RJ1/people');
  await page.getByRole('link', { name: 'Ana Analyst' }).click();
  await page.waitForURL(/\/admin\/RJ1\/people\/u-/);
  await shot('ana-tokens');
  const row = page.locator('#tokens tbody tr', { hasText: 'weekly report script' });
  await Promise.all([page.waitForLoadState('load'), row.getByRole('button', { name: /Revoke/ }).click()]);
  await page.waitForLoadState('load');
  const revoked = await page.locator('#tokens tbody tr', { hasText: 'weekly report script' }).innerText();
  expect(revoked.includes('Revoked'), `ana's token should show as revoked; its row says "${excerpt(revoked)}"`);
  await shot('ana-token-revoked');
  await checkWidth(page, 'person');

  // 5. Settings: a loosening is refused with the reason, a tightening is saved.
  await open(page, '/admin/RJ1/settings');
  await shot('settings');
  await checkWidth(page, 'settings');
  await page.getByRole('link', { name: 'Change PyPI settings' }).click();
  await page.waitForURL(/\/admin\/RJ1\/settings\/pypi$/);
  await page.getByLabel('Advisories that block a version').selectOption('critical');
  await page.getByLabel('Cooldown in days').fill('0');
  await submit(page, 'Save settings');
  const links = await checkErrorSummary(page, ['severity_threshold', 'cooldown_days'], 'a loosening of the baseline');
  expect(links.every((link) => link.text.includes('may only tighten the national baseline')), `each refusal should say why: ${JSON.stringify(links)}`);
  await shot('loosening-refused');
  await page.getByLabel('Advisories that block a version').selectOption('medium');
  await page.getByLabel('Cooldown in days').fill('14');
  await submit(page, 'Save settings');
  await page.waitForURL(/\/admin\/RJ1\/settings\?done=saved$/);
  const settings = await page.locator('#settings tbody tr', { hasText: 'PyPI' }).innerText();
  expect(settings.includes('medium') && settings.includes('14 days'), `RJ1's PyPI settings should now block medium advisories with 14 days' cooldown; the row says "${excerpt(settings)}"`);
  await shot('settings-saved');

  // 6. An exception with an expiry.
  await open(page, '/admin/RJ1/entries');
  await page.getByLabel('Component').fill('pkg:pypi/requests');
  await page.getByLabel('Versions (optional)').fill('==2.19.1');
  await page.getByLabel('Decision').selectOption('approved');
  await page.getByLabel('Reason', { exact: true }).fill('Legacy ETL until it moves to the new server; risk accepted by the CIO');
  await page.getByLabel('Waives (for an exception)').fill('PYSEC-2018-28');
  await submit(page, 'Add entry');
  await checkErrorSummary(page, ['expires'], 'an exception without an expiry');
  await shot('exception-needs-expiry');
  await page.getByLabel('Expires (needed for pilots and exceptions)').fill('2099-06-30');
  await submit(page, 'Add entry');
  await page.waitForURL(/\/admin\/RJ1\/entries\?done=added$/);
  const entry = await page.locator('#entries tbody tr', { hasText: 'pkg:pypi/requests' }).innerText();
  expect(entry.includes('Exception') && entry.includes('PYSEC-2018-28') && entry.includes('30 June 2099'), `the exception should be listed with what it waives and its expiry; the row says "${excerpt(entry)}"`);
  await shot('exception-added');
  await checkWidth(page, 'entries');

  // 6b. A prohibition, then its removal with a reason (asked for on its own page).
  await page.getByLabel('Component').fill('pkg:pypi/insecure-package');
  await page.getByLabel('Decision').selectOption('prohibited');
  await page.getByLabel('Reason', { exact: true }).fill('Typosquat of a popular package; never to be installed');
  await submit(page, 'Add entry');
  await page.waitForURL(/\/admin\/RJ1\/entries\?done=added$/);
  const prohibited = await page.locator('#entries tbody tr', { hasText: 'insecure-package' }).innerText();
  expect(prohibited.includes('prohibited'), `the prohibition should be listed; the row says "${excerpt(prohibited)}"`);
  await page.getByRole('link', { name: /Remove the entry for pkg:pypi\/insecure-package/ }).click();
  await page.waitForURL(/\/remove$/);
  await shot('removal-asks-why');
  await submit(page, 'Remove entry');
  await checkErrorSummary(page, ['removal_reason'], 'a removal without a reason');
  await page.getByLabel('Why is it removed?').fill('Added to the wrong trust by mistake');
  await submit(page, 'Remove entry');
  await page.waitForURL(/\/admin\/RJ1\/entries\?done=removed$/);
  expect(await page.locator('#entries tbody tr', { hasText: 'insecure-package' }).count() === 0, 'the removed prohibition should no longer be listed');
  await shot('prohibition-removed');

  // 7. The review policy.
  await page.getByRole('link', { name: 'Review policy' }).click();
  await page.waitForURL(/\/admin\/RJ1\/review$/);
  await page.getByLabel('Each stage needs a different reviewer').check();
  await submit(page, 'Save review policy');
  expect((await mainText(page)).includes('each stage is signed off by a different person'), 'the review policy should now ask for distinct reviewers');
  await shot('review-policy');

  // 8. Upstream health (read-only) and an unknown address.
  await open(page, '/admin/upstreams');
  await shot('upstreams');
  await open(page, '/admin/RJ1/no-such-page', 404);
  expect((await page.locator('h1').innerText()) === 'Page not found', 'an unknown address should show the "Page not found" page');
  await shot('not-found');
  await open(page, '/admin/RQM/people', 403);
  const refusal = await mainText(page);
  expect(refusal.includes('does not administer RQM') && refusal.includes('You administer RJ1'), `another trust's page should say whose it is and what Olu administers; it says "${excerpt(refusal)}"`);
  expect((await page.locator('.formulary-account').innerText()).includes('Olu Admin'), 'the refusal page should still show who is signed in');
  await shot('another-trust-refused');
});
