// The component page's "What the upstream says" section in a real browser, checked with
// axe-core (WCAG 2.2 A and AA) at every screenshot: before anyone has installed requests, a
// requester sees its versions, declared licence, project links, maintainers and dependencies
// (read by the gateway from its local upstream), and can open the dependency and version
// tables. Run by crates/formulary/tests/cli/browser.rs.
//
//   BASE_URL=… SCREENSHOT_DIR=… FORMULARY_TEST_PASSWORD=… node tests/browser/evidence.js

'use strict';

const { expect, excerpt, runCase, open, mainText, signIn } = require('./lib');

runCase('evidence', async ({ page, shot }) => {
  await signIn(page, 'ana', 'Ana Analyst');
  // The first visit may find the gateway still reading the upstream (it waits at most its
  // patience); the evidence is there on a later visit.
  let facts = '';
  for (let attempt = 0; attempt < 20; attempt += 1) {
    await open(page, '/components/pypi/requests');
    if (await page.locator('#upstream-evidence-facts').count() === 1) {
      facts = await page.locator('#upstream-evidence-facts').innerText();
      if (/packages? in all/.test(facts)) break;
    }
    await page.waitForTimeout(1000);
  }
  const heading = page.getByRole('heading', { name: 'What the upstream says' });
  expect(await heading.count() === 1, `the component page should have the upstream evidence section; it says "${excerpt(await mainText(page))}"`);
  expect(facts.includes('2.32.3'), `the newest version upstream should be 2.32.3; the section says "${excerpt(facts)}"`);
  expect(facts.includes('Apache'), `the declared licence should be shown; the section says "${excerpt(facts)}"`);
  expect(facts.includes('https://github.com/psf/requests'), `the source link should be shown; the section says "${excerpt(facts)}"`);
  expect(/\d+ packages? in all/.test(facts), `the closure size should be shown; the section says "${excerpt(facts)}"`);
  await shot('component-evidence');

  await page.locator('#upstream-dependencies summary').click();
  await shot('dependencies-open');
  const dependencies = await page.locator('#upstream-dependencies table').innerText();
  expect(dependencies.includes('urllib3') && dependencies.includes('idna'), `the dependency table should list urllib3 and idna; it says "${excerpt(dependencies)}"`);
  await page.locator('#upstream-versions summary').click();
  await shot('versions-open');
  const versions = await page.locator('#upstream-versions table').innerText();
  expect(versions.includes('2.19.1') && versions.includes('2.31.0'), `every version upstream should be listed; the table says "${excerpt(versions)}"`);
  

  // A dependency's own page is one click away.
  await page.locator('#upstream-dependencies a', { hasText: 'urllib3' }).first().click();
  await page.waitForLoadState('load');
  expect(await page.getByRole('heading', { name: 'urllib3', level: 1 }).count() === 1, `the dependency link should open urllib3's page; it says "${excerpt(await mainText(page))}"`);
  await shot('dependency-page');

  // The evidence JSON behind it (the API) says the same.
  const answer = await page.evaluate(async () => (await fetch('/api/v1/evidence?purl=pkg:pypi/requests')).json());
  expect(answer.state === 'fresh' && answer.evidence.newest === '2.32.3', `the API should give the same evidence; it said ${JSON.stringify(answer).slice(0, 300)}`);
  await open(page, '/components/pypi/requests');
  await shot('component-evidence-again');
});
