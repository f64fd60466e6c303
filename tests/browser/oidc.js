// Signing in with NHS identities in a real browser, against real OpenID providers (the
// `oidc-provider` package, tests/oidc/provider.mjs) run by crates/formulary/tests/cli/oidc.rs:
//
//   1. a person with CIS2-shaped claims signs in and lands with the roles their NHS roles map to
//      (an organisation Formulary does not know is left out); another, who selected one of two
//      roles at sign-in (`selected_roleid`), gets that one only;
//   2. signing out ends the provider's session too (RP-initiated logout: the provider asks who
//      is signing in again); the provider takes a role away; at the next sign-in Formulary takes
//      it away too;
//   3. a person with Entra-shaped claims (app roles) signs in as approver (a national role the
//      provider asserts is refused); that provider has no end_session_endpoint, so signing out
//      ends Formulary's session only;
//   4. a tampered `state` is refused; consent denied at the provider gives a page saying so; the
//      same answer replayed is refused as used; a person whose only organisation is unknown is
//      told so; a provider that is down gives a clear page, and local sign-in still works.
//
// OIDC_CASE=disabled runs only: a disabled account is refused after the provider vouched for it.
//
// Environment (besides lib.js's): CIS2_ISSUER, ENTRA_ISSUER, ACCOUNTS_FILE (the CIS2 provider's
// accounts, rewritten here to take a role away).

'use strict';

const fs = require('node:fs');
const { BASE_URL, expect, excerpt, runCase, open, mainText, signIn, signOut } = require('./lib');
const { accountLine, signInWith, signOutEverywhere } = require('./oidc_lib');

const CIS2_ISSUER = process.env.CIS2_ISSUER || '';
const ACCOUNTS_FILE = process.env.ACCOUNTS_FILE || '';

/** Starts a sign-in and stops at the provider's login page; returns the authorisation request's URL. */
async function authorisationRequest(page, provider) {
  // A fresh browser session at the provider, so that it stops at its login page.
  await page.context().clearCookies();
  await open(page, '/sign-in');
  const [request] = await Promise.all([
    page.waitForRequest((sent) => sent.url().startsWith(`${CIS2_ISSUER}/auth`)),
    page.getByRole('button', { name: `Sign in with ${provider}` }).click(),
  ]);
  await page.waitForLoadState('load');
  expect(page.url().startsWith(CIS2_ISSUER), `the button should lead to the provider; the browser is at ${page.url()}`);
  return request.url();
}

function writeAccounts(accounts) {
  fs.writeFileSync(ACCOUNTS_FILE, JSON.stringify(accounts, null, 2));
}

const OIDC_CASE = process.env.OIDC_CASE || 'main';

runCase(`oidc-${OIDC_CASE}`, async ({ page, shot }) => {
  // The provider's own pages are not Formulary's: screenshot them without the axe check, and
  // keep the browser off the internet (the provider's page imports a web font).
  await page.context().route('**/*', (route) => {
    const url = route.request().url();
    return url.startsWith('http://127.0.0.1') ? route.continue() : route.abort();
  });
  let plain = 0;
  const snap = async (label) => {
    plain += 1;
    await page.screenshot({ path: `${process.env.SCREENSHOT_DIR}/provider-${String(plain).padStart(2, '0')}-${label}.png`, fullPage: true });
  };

  if (OIDC_CASE === 'disabled') {
    await signInWith(page, 'NHS Care Identity', 'cis2-nia', snap);
    const text = await mainText(page);
    expect(text.includes('Your Formulary account is disabled') && text.includes('administrator'), `a disabled account should be refused with a page saying so; the page says "${excerpt(text)}"`);
    expect(await accountLine(page) === '', 'a disabled account must not be signed in');
    await shot('disabled-refused');
    return;
  }

  // 1. CIS2: requester and reviewer of RJ1 from two NHS roles; the role in an unknown
  //    organisation (ZZZ9) gives nothing.
  await open(page, '/sign-in');
  expect(await page.getByRole('button', { name: 'Sign in with NHS Care Identity' }).count() === 1, 'the sign-in page should offer "Sign in with NHS Care Identity"');
  expect(await page.getByRole('button', { name: 'Sign in with Microsoft Entra ID' }).count() === 1, 'the sign-in page should offer "Sign in with Microsoft Entra ID"');
  await shot('sign-in-choices');
  await signInWith(page, 'NHS Care Identity', 'cis2-nia', snap);
  let line = await accountLine(page);
  expect(line.includes('Signed in as Nia Nurse') && line.includes('requester of RJ1') && line.includes('reviewer of RJ1'), `Nia should be signed in as requester and reviewer of RJ1; the header says "${excerpt(line)}"`);
  expect(!line.includes('ZZZ9'), `no role in an organisation Formulary does not know; the header says "${excerpt(line)}"`);
  await shot('cis2-signed-in');
  await open(page, '/requests');
  expect((await mainText(page)).includes('To review or decide'), 'as a reviewer, Nia should see the review queue');
  await shot('cis2-review-queue');
  // Single logout: Formulary's session ends, then the provider's (RP-initiated logout).
  await signOutEverywhere(page, 'NHS Care Identity', snap);
  await shot('signed-out-everywhere');

  // 2. The provider takes the reviewer role away; the next sign-in takes it away in Formulary.
  const accounts = JSON.parse(fs.readFileSync(ACCOUNTS_FILE, 'utf8'));
  accounts['cis2-nia'].nhsid_nrbac_roles = accounts['cis2-nia'].nhsid_nrbac_roles.filter((role) => !role.role_code.endsWith('R5080'));
  writeAccounts(accounts);
  const asked = await signInWith(page, 'NHS Care Identity', 'cis2-nia', snap);
  expect(asked, 'after signing out everywhere, the provider should ask who is signing in again (its session ended too)');
  line = await accountLine(page);
  expect(line.includes('Signed in as Nia Nurse') && line.includes('requester of RJ1') && !line.includes('reviewer'), `after the provider dropped the reviewer role, Nia should be requester of RJ1 only; the header says "${excerpt(line)}"`);
  await shot('cis2-role-removed');
  await signOutEverywhere(page, 'NHS Care Identity', snap);

  // 3. Entra: app role Formulary.Approver.RJ1; the national role it also asserts is refused.
  await signInWith(page, 'Microsoft Entra ID', 'entra-eve', snap);
  line = await accountLine(page);
  expect(line.includes('Signed in as Eve Entra') && line.includes('approver of RJ1') && !line.includes('NATIONAL'), `Eve should be approver of RJ1 and nothing national; the header says "${excerpt(line)}"`);
  await shot('entra-signed-in');
  // This provider names no end_session_endpoint: only Formulary's session ends.
  await signOut(page);
  expect(page.url().startsWith(`${BASE_URL}/signed-out`) && (await mainText(page)).includes('You have signed out of Formulary.'), `without the provider's logout, the browser should stay on Formulary, signed out; it is at ${page.url()}`);
  await shot('signed-out-of-formulary-only');

  // 3b. CIS2 with a selected role: of two NHS roles, only the one chosen at sign-in counts.
  //     (A fresh browser session at the provider, so it asks who is signing in.)
  await page.context().clearCookies();
  await signInWith(page, 'NHS Care Identity', 'cis2-sam', snap);
  line = await accountLine(page);
  expect(line.includes('Signed in as Sam Selected') && line.includes('reviewer of RJ1') && !line.includes('requester'), `Sam selected the reviewer role, so he should be reviewer of RJ1 only; the header says "${excerpt(line)}"`);
  await shot('cis2-selected-role');
  await signOutEverywhere(page, 'NHS Care Identity', snap);

  // 4a. A tampered state is refused, and changes nothing.
  const request = new URL(await authorisationRequest(page, 'NHS Care Identity'));
  const state = request.searchParams.get('state');
  expect(state && state.length >= 16, `the authorisation request should carry a state; it is ${request}`);
  expect(request.searchParams.get('code_challenge_method') === 'S256' && request.searchParams.get('code_challenge'), `the request should carry a PKCE S256 challenge; it is ${request}`);
  expect(request.searchParams.get('nonce'), `the request should carry a nonce; it is ${request}`);
  expect(request.searchParams.get('redirect_uri') === `${BASE_URL}/sign-in/oidc/cis2/callback`, `the redirect URI should be built from public_url; it is ${request.searchParams.get('redirect_uri')}`);
  const tampered = `${state.slice(0, -4)}AAAA`;
  await open(page, `/sign-in/oidc/cis2/callback?code=stolen-code&state=${encodeURIComponent(tampered)}`, 400);
  let text = await mainText(page);
  expect(text.includes('This sign-in link is not valid') && text.includes('Sign in with NHS Care Identity'), `a tampered state should be refused with a page saying what to do; it says "${excerpt(text)}"`);
  expect(await accountLine(page) === '', 'a tampered state must not sign anyone in');
  await shot('tampered-state-refused');

  // 4b. Consent denied at the provider: the provider sends the person back with access_denied.
  await open(page, `/sign-in/oidc/cis2/callback?error=access_denied&error_description=End-User+aborted+interaction&state=${encodeURIComponent(state)}`, 403);
  text = await mainText(page);
  expect(text.includes('You did not finish signing in') && text.includes('consent'), `denied consent should be explained; the page says "${excerpt(text)}"`);
  await shot('consent-denied');

  // 4c. The same answer again: the sign-in it belonged to is used up.
  await open(page, `/sign-in/oidc/cis2/callback?error=access_denied&state=${encodeURIComponent(state)}`, 400);
  text = await mainText(page);
  expect(text.includes('not valid') || text.includes('already used'), `a replayed answer should be refused; the page says "${excerpt(text)}"`);
  await shot('replay-refused');

  // 4d. Only an unknown organisation: no account, and a page that says which and what to do.
  await page.context().clearCookies();
  await signInWith(page, 'NHS Care Identity', 'cis2-uma', snap);
  text = await mainText(page);
  expect(text.includes('Formulary has no role for you yet') && text.includes('ZZZ9') && text.includes('administrator'), `a person of an unknown organisation should be told so; the page says "${excerpt(text)}"`);
  expect(await accountLine(page) === '', 'nobody is signed in');
  await shot('unknown-organisation');

  // 4e. A provider that is down: a clear page, and local accounts still sign in.
  await open(page, '/sign-in');
  await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Sign in with Offline Provider' }).click()]);
  text = await mainText(page);
  expect(text.includes('Offline Provider is not answering') && text.includes('username and password'), `a provider that is down should be explained; the page says "${excerpt(text)}"`);
  await shot('provider-down');
  await signIn(page, 'ana', 'Ana Analyst');
  await shot('local-sign-in-still-works');
  await signOut(page);
});
