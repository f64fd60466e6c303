// API tokens for people who sign in only through an identity provider, and single logout, in a
// real browser against a real OpenID provider (tests/oidc/provider.mjs), run by
// crates/formulary/tests/cli/oidc_account.rs in two steps:
//
//   OIDC_CASE=create  Kim signs in with NHS Care Identity (she has no Formulary password),
//                     creates an API token on /account (scope "Use the API with my roles",
//                     30 days), sees it once with the `formulary login --token-stdin` command,
//                     writes it to TOKEN_FILE for the test to use, and signs out everywhere.
//   OIDC_CASE=revoke  Kim signs in again — the provider asks who she is, as its session ended
//                     with Formulary's — revokes the token on /account, and signs out.

'use strict';

const fs = require('node:fs');
const { BASE_URL, expect, excerpt, runCase, open, mainText } = require('./lib');
const { accountLine, signInWith, signOutEverywhere } = require('./oidc_lib');

const OIDC_CASE = process.env.OIDC_CASE || 'create';
const TOKEN_FILE = process.env.TOKEN_FILE || '';
const TOKEN_NAME = 'analysis script';

runCase(`oidc-account-${OIDC_CASE}`, async ({ page, shot }) => {
  // The provider's pages are not Formulary's: plain screenshots, no axe check, no internet.
  await page.context().route('**/*', (route) => (route.request().url().startsWith('http://127.0.0.1') ? route.continue() : route.abort()));
  let plain = 0;
  const snap = async (label) => {
    plain += 1;
    await page.screenshot({ path: `${process.env.SCREENSHOT_DIR}/provider-${String(plain).padStart(2, '0')}-${label}.png`, fullPage: true });
  };

  const asked = await signInWith(page, 'NHS Care Identity', 'cis2-kim', snap);
  expect(asked, 'the provider should ask who is signing in (it has no session for this browser)');
  const line = await accountLine(page);
  expect(line.includes('Signed in as Kim Keyworker') && line.includes('requester of RJ1'), `Kim should be signed in as requester of RJ1; the header says "${excerpt(line)}"`);
  await open(page, '/account');
  let text = await mainText(page);
  expect(text.includes('change your password there'), `an account of an identity provider has no Formulary password to change; the page says "${excerpt(text)}"`);

  if (OIDC_CASE === 'create') {
    await shot('account');
    await page.getByLabel('What it is for').fill(TOKEN_NAME);
    await page.getByLabel('Use the API with my roles').check();
    await page.getByLabel('Expires after').selectOption('30');
    await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Create token' }).click()]);
    const fresh = page.locator('#new-gateway-token');
    expect(await fresh.count() === 1, `the new token should be shown; the page says "${excerpt(await mainText(page))}"`);
    const secret = (await fresh.locator('code').first().innerText()).trim();
    expect(/^frm_[0-9a-f]{64}$/.test(secret), `the token should look like frm_…; it is "${secret}"`);
    text = await fresh.innerText();
    expect(text.includes('shown only this once') && text.includes(`formulary login --server ${BASE_URL}/ --token-stdin`), `the page should say the token is shown once and how to use it with the formulary command; it says "${excerpt(text)}"`);
    const row = page.locator('#tokens tr', { hasText: TOKEN_NAME });
    expect((await row.innerText()).includes('API') && (await row.innerText()).includes('Valid until'), `the token list should show the API token and its expiry; the row says "${excerpt(await row.innerText())}"`);
    await shot('api-token-created');
    fs.writeFileSync(TOKEN_FILE, secret, { mode: 0o600 });
    await open(page, '/account');
    expect(!(await page.locator('body').innerText()).includes(secret), 'the secret must not be shown again');
  } else {
    const row = page.locator('#tokens tr', { hasText: TOKEN_NAME });
    expect(await row.count() === 1, `the token "${TOKEN_NAME}" should be listed; the page says "${excerpt(await mainText(page))}"`);
    await Promise.all([page.waitForLoadState('load'), row.getByRole('button', { name: /^Revoke/ }).click()]);
    text = await mainText(page);
    expect(text.includes('The token has been revoked'), `revoking should be confirmed; the page says "${excerpt(text)}"`);
    const after = await page.locator('#tokens tr', { hasText: TOKEN_NAME }).innerText();
    expect(after.includes('Revoked'), `the token should show as revoked; the row says "${excerpt(after)}"`);
    await shot('api-token-revoked');
  }
  await signOutEverywhere(page, 'NHS Care Identity', snap);
  await shot('signed-out');
});
