// Helpers shared by the browser cases that sign in through a real OpenID provider
// (tests/oidc/provider.mjs, the `oidc-provider` package): signing in at the provider, reading
// the header's account line, and signing out of Formulary and, through RP-initiated logout,
// of the provider too.

'use strict';

const { BASE_URL, expect, excerpt, open, mainText } = require('./lib');

/** The header's account line ("Signed in as … (roles) · …"), or '' when signed out. */
async function accountLine(page) {
  return page.locator('.formulary-account').innerText().catch(() => '');
}

/**
 * Clicks "Sign in with <provider>" on Formulary's sign-in page, then goes through whatever the
 * provider asks (its login form, its consent page) until the browser is back at Formulary.
 * Returns true when the provider asked who is signing in (it had no session of its own).
 */
async function signInWith(page, provider, login, shoot) {
  let asked = false;
  await open(page, '/sign-in');
  await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: `Sign in with ${provider}` }).click()]);
  for (let step = 0; step < 4 && !page.url().startsWith(BASE_URL); step += 1) {
    if (await page.locator('input[name="login"]').count() > 0) {
      asked = true;
      await page.locator('input[name="login"]').fill(login);
      await page.locator('input[name="password"]').fill('any password: the test provider checks none');
      if (shoot) await shoot('provider-login');
      await Promise.all([page.waitForLoadState('load'), page.locator('button[type="submit"]').click()]);
    } else if (await page.getByRole('button', { name: 'Continue' }).count() > 0) {
      if (shoot) await shoot('provider-consent');
      await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Continue' }).click()]);
    } else {
      await page.waitForLoadState('load');
    }
  }
  expect(page.url().startsWith(BASE_URL), `after signing in at ${provider} the browser should be back at Formulary; it is at ${page.url()}: "${excerpt(await page.locator('body').innerText())}"`);
  return asked;
}

/**
 * Signs out with the header's button, confirms at the provider ("Yes, sign me out"), and checks
 * that the browser is back on Formulary's "signed out" page, signed out of both.
 */
async function signOutEverywhere(page, provider, shoot) {
  await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Sign out' }).click()]);
  expect(!page.url().startsWith(BASE_URL), `signing out of a session from ${provider} should lead to the provider's sign-out; the browser is at ${page.url()}`);
  const confirm = page.getByRole('button', { name: 'Yes, sign me out' });
  expect(await confirm.count() === 1, `the provider should ask to confirm signing out; it says "${excerpt(await page.locator('body').innerText())}"`);
  if (shoot) await shoot('provider-sign-out');
  await Promise.all([page.waitForURL(`${BASE_URL}/signed-out**`), confirm.click()]);
  const text = await mainText(page);
  expect(text.includes(`You have signed out of Formulary and of ${provider}`), `after signing out at ${provider} the browser should land on Formulary saying so; it is at ${page.url()}: "${excerpt(text)}"`);
  expect(await accountLine(page) === '', 'after signing out, nobody is signed in');
}

module.exports = { accountLine, signInWith, signOutEverywhere };
