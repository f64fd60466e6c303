// The whole journey in a real browser: a requester searches and requests pkg:pypi/six, sees it
// pending; a reviewer signs off the basic, technical and security stages; an approver approves
// it with a reason; the requester sees the decision; the public decision log and the metrics
// page count it. Run by crates/formulary/tests/cli/browser.rs, which then installs six with pip.
//
//   BASE_URL=http://127.0.0.1:8080 SCREENSHOT_DIR=/tmp/shots FORMULARY_TEST_PASSWORD=… node tests/browser/journey.js

'use strict';

const { expect, excerpt, runCase, open, mainText, signIn, signOut } = require('./lib');

const REASON = 'Pure-Python compatibility library, MIT licence, no known advisories; approved for analysts in RJ1';

/** The text of the stage row in the review-stages table. */
async function stageRow(page, label) {
  return page.locator('#stages tbody tr', { hasText: label }).innerText();
}

runCase('journey', async ({ page, shot }) => {
  // 1. The requester signs in and searches the catalogue.
  await signIn(page, 'ana', 'Ana Analyst');
  await shot('ana-signed-in');
  await page.getByLabel('Search for a tool or package').fill('six');
  await Promise.all([page.waitForURL(/\/components\?/), page.getByRole('button', { name: 'Search' }).click()]);
  const results = await mainText(page);
  expect(/results? for “six”/.test(results), `the search page should say how many results there are for “six”; it says "${excerpt(results)}"`);
  await shot('ana-searched-six');

  // 2. She requests it: from the component page's "Request this", or the "request it" link
  //    when nothing by that name is known yet.
  const hit = page.locator('main table a', { hasText: /^six$/ });
  if (await hit.count() > 0) {
    await hit.first().click();
    await page.waitForURL(/\/components\/pypi\/six$/);
    await shot('ana-component-page');
    await page.getByRole('button', { name: 'Request this' }).click();
  } else {
    await page.getByRole('link', { name: 'request it' }).click();
  }
  await page.waitForURL(/\/requests\/new/);
  expect(await page.locator('h1').innerText() === 'Request a tool', 'the request form should be headed "Request a tool"');
  expect(await page.getByLabel('Name of the tool or package').inputValue() === 'six', 'the request form should be prefilled with the name searched for');
  await page.getByLabel('What problem do you need to solve, and for whom?').fill('Our Python 2/3 compatible ETL scripts for the monthly A&E returns import six; we need it to move them to the new analytics server.');
  await page.getByLabel('Aggregate or published data only').check();
  await page.getByLabel('PyPI', { exact: true }).check();
  await page.getByLabel('Name of the tool or package').fill('six');
  await page.getByLabel('Versions (optional)').fill('>=1.16');
  await page.getByLabel('Where will it run?').fill('Linux analytics server, Python 3.11 in a virtual environment, installing through the formulary gateway');
  await page.getByLabel('What else did you consider? (optional)').fill('Rewriting the scripts for Python 3 only: weeks of work for no change in output.');
  await page.getByLabel('How many people will use it?').fill('12');
  await page.getByLabel('Credentials or APIs it needs (optional)').fill('None');
  expect(await page.locator('input[type="hidden"][name="organisation"]').inputValue() === 'RJ1', 'with one organisation, the form should carry it as a hidden field (RJ1)');
  await shot('ana-request-form-filled');
  await page.getByRole('button', { name: 'Submit request' }).click();
  await page.waitForLoadState('load');
  if (await page.getByRole('button', { name: 'Submit a new request anyway' }).count() > 0) {
    // Earlier work on six is shown once before a new review starts.
    await shot('ana-earlier-work');
    await page.getByRole('button', { name: 'Submit a new request anyway' }).click();
    await page.waitForLoadState('load');
  }
  const match = /\/requests\/(\d+)$/.exec(page.url());
  expect(match, `submitting should lead to the new request's page; the page says "${excerpt(await mainText(page))}"`);
  const requestPath = `/requests/${match[1]}`;
  expect(await page.locator('main .nhsuk-tag').first().innerText() === 'Submitted', 'the new request should show the "Submitted" state tag');
  expect((await page.locator('h1').innerText()).includes('six for RJ1'), 'the request page should be headed "six for RJ1"');
  expect((await page.locator('#timeline').innerText()).includes('Ana Analyst submitted the request'), 'the timeline should show the submission');
  await shot('ana-request-pending');
  await open(page, '/requests');
  const mine = await page.locator('main table', { hasText: 'Your requests' }).innerText();
  expect(mine.includes('six') && mine.includes('Submitted'), `/requests should list six as Submitted under "Your requests"; it shows "${excerpt(mine)}"`);
  await shot('ana-requests-list');
  await signOut(page);

  // 3. The reviewer finds it in the queue and signs off three stages, one submit each.
  await signIn(page, 'rob', 'Rob Reviewer');
  await open(page, '/requests');
  const queue = page.locator('main table', { hasText: 'Open requests for your organisations' });
  expect(await queue.count() === 1, `the reviewer's /requests should show the open-requests queue; it shows "${excerpt(await mainText(page))}"`);
  await shot('rob-review-queue');
  await queue.getByRole('link', { name: `Request ${match[1]}` }).click();
  await page.waitForURL(new RegExp(`${requestPath}$`));
  for (const [value, label, note] of [
    ['basic', 'Basic review', 'Clear problem statement; aggregate data only; 12 users in RJ1.'],
    ['technical', 'Technical review', 'Single pure-Python module, no compiled code, no dependencies; works on Python 3.11.'],
    ['security', 'Security review', 'No OSV advisories for six; MIT licence; maintained for over ten years.'],
  ]) {
    const form = page.locator('form[action$="/sign-offs"]');
    expect(await form.count() === 1, `the reviewer should see the sign-off form before the ${label}`);
    await form.locator(`input[name="stage"][value="${value}"]`).check();
    await form.getByLabel('Passed').check();
    await form.getByLabel('What you checked and found').fill(note);
    await shot(`rob-${value}-filled`);
    await form.getByRole('button', { name: 'Sign off stage' }).click();
    await page.waitForURL(new RegExp(`${requestPath}$`));
    expect(await page.locator('div.nhsuk-error-summary').count() === 0, `signing off the ${label} showed errors: "${excerpt(await mainText(page))}"`);
    const row = await stageRow(page, label);
    expect(row.includes('passed by Rob Reviewer') && row.includes(note), `the ${label} row should say "passed by Rob Reviewer" with the note; it says "${excerpt(row)}"`);
    await shot(`rob-${value}-signed-off`);
  }
  const state = await page.locator('main .nhsuk-tag').first().innerText();
  expect(state === 'In review', `after the sign-offs the request should be "In review"; it is "${state}"`);
  expect(await page.locator('form[action$="/decision"]').count() === 0, 'a reviewer must not be offered the decision form');
  await signOut(page);

  // 4. The approver approves it with a reason.
  await signIn(page, 'aisha', 'Aisha Approver');
  await open(page, requestPath);
  const decision = page.locator('form[action$="/decision"]');
  expect(await decision.count() === 1, `the approver should see the decision form; the page says "${excerpt(await mainText(page))}"`);
  expect(!(await mainText(page)).includes('Approval needs these stages signed off first'), 'with the three stages signed off, approval should not wait for more stages');
  await decision.locator('input[name="outcome"][value="approved"]').check();
  await decision.getByLabel('Reason').fill(REASON);
  await decision.getByLabel('Mentor (optional)').fill('Rob Reviewer');
  await shot('aisha-decision-filled');
  await decision.getByRole('button', { name: 'Record decision' }).click();
  await page.waitForURL(new RegExp(`${requestPath}$`));
  const decided = await page.locator('#decision').innerText().catch(() => '');
  expect(decided.includes('Decision: Approved') && decided.includes(REASON), `the request page should show "Decision: Approved" with the reason; it shows "${excerpt(decided || await mainText(page))}"`);
  await shot('aisha-approved');
  await signOut(page);

  // 5. The requester sees the decision on her request and in her list.
  await signIn(page, 'ana', 'Ana Analyst');
  await open(page, requestPath);
  const seen = await page.locator('#decision').innerText().catch(() => '');
  expect(seen.includes('Decision: Approved') && seen.includes(REASON) && seen.includes('Decided by Aisha Approver'), `ana should see "Decision: Approved", the reason and who decided; she sees "${excerpt(seen || await mainText(page))}"`);
  expect(await page.locator('main .nhsuk-tag').first().innerText() === 'Approved', 'ana should see the "Approved" state tag');
  await shot('ana-sees-decision');
  await open(page, '/requests');
  const listed = await page.locator('main table', { hasText: 'Your requests' }).locator('tr', { hasText: 'six' }).innerText();
  expect(listed.includes('Approved'), `ana's /requests should show six as Approved; it shows "${excerpt(listed)}"`);
  await shot('ana-requests-approved');

  // 5b. She makes a token for her package clients, shown once with the setup command, and the
  //     home page offers that command.
  await open(page, '/account');
  await page.getByLabel('What it is for').fill('my laptop');
  await page.getByRole('button', { name: 'Create token' }).click();
  await page.waitForLoadState('load');
  const fresh = await page.locator('#new-gateway-token').innerText().catch(() => '');
  expect(/frm_[0-9a-f]{64}/.test(fresh) && fresh.includes('formulary setup --server'), `/account should show the new token once with the setup command; it shows "${excerpt(fresh || await mainText(page))}"`);
  await shot('ana-gateway-token');
  await open(page, '/');
  const home = await mainText(page);
  expect(home.includes('/setup.sh | sh') && home.includes('/setup.ps1 | iex'), `the home page should offer the bootstrap (curl … /setup.sh | sh, irm … /setup.ps1 | iex); it shows "${excerpt(home)}"`);
  await shot('home-setup-command');
  await signOut(page);

  // 6. The public decision log lists it with the reason (no sign-in needed), and the metrics
  //    page counts it.
  await open(page, '/decisions?q=six');
  const logged = await page.locator('#decision-log tbody tr', { hasText: 'six' }).allInnerTexts();
  expect(logged.some((row) => row.includes(REASON) && row.includes('approved') && row.includes('RJ1')), `/decisions should list six, approved for RJ1 with the reason; it lists ${JSON.stringify(logged.map((row) => excerpt(row, 200)))}`);
  await shot('public-decision-log');
  await open(page, '/metrics');
  const approvedRow = await page.locator('#requests-by-state tbody tr').evaluateAll((rows) => rows.map((row) => Array.from(row.cells, (cell) => cell.textContent.trim())));
  const approved = approvedRow.find((cells) => cells[0] === 'approved');
  expect(approved && approved[1] === '1', `/metrics should count 1 approved request under "Requests by state"; it shows ${JSON.stringify(approvedRow)}`);
  const decidedRow = await page.locator('#time-to-decision tbody tr', { hasText: 'All' }).innerText();
  expect(/All\s+1\b/.test(decidedRow), `/metrics should count 1 decided request in "Time to decision"; it shows "${excerpt(decidedRow)}"`);
  await shot('public-metrics');
});
