// Desktop tools in a real browser (issue 13): a requester is refused the page with the reason; a
// national curator finds it from Administration, sees an empty form answered with an accessible
// error summary, a wrong SHA-256 and an install recipe on an archive each explained, then adds
// ruff's archive for x86_64-linux and sees it listed. Every page axe-clean and no wider than the
// 1280 px window. Run by crates/formulary/tests/cli/tools_web.rs, which then installs the tool
// with `formulary tools install`.
//
//   BASE_URL=… SCREENSHOT_DIR=… FORMULARY_TEST_PASSWORD=… TOOL_URL=… TOOL_SHA256=… TOOL_SIZE=… TOOL_BINARY=… node tests/browser/tools.js

'use strict';

const { expect, excerpt, runCase, open, mainText, signIn, signOut, checkErrorSummary } = require('./lib');

const TOOL = {
  url: process.env.TOOL_URL || '',
  sha256: process.env.TOOL_SHA256 || '',
  size: process.env.TOOL_SIZE || '',
  binary: process.env.TOOL_BINARY || '',
};

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

runCase('tools', async ({ page, shot }) => {
  for (const [name, value] of Object.entries(TOOL)) {
    expect(value, `set TOOL_${name.toUpperCase()} (see crates/formulary/tests/cli/tools_web.rs)`);
  }

  // 1. A requester may not add tools, and is told whose page it is.
  await signIn(page, 'ana', 'Ana Analyst');
  await open(page, '/admin/tools', 403);
  const refusal = await mainText(page);
  expect(refusal.includes('desktop tools are added by national curators'), `a requester should be told the page is for national curators; it says "${excerpt(refusal)}"`);
  await shot('requester-refused');
  await signOut(page);

  // 2. The national curator finds the page from Administration.
  await signIn(page, 'nico', 'Nico Curator');
  await page.getByRole('link', { name: 'Administration' }).click();
  await page.waitForURL(/\/admin$/);
  await page.getByRole('link', { name: 'Add and list desktop tools' }).click();
  await page.waitForURL(/\/admin\/tools$/);
  expect((await mainText(page)).includes('No desktop tools yet.'), `the list should start empty; it says "${excerpt(await mainText(page))}"`);
  await shot('tools-empty');
  await checkWidth(page, 'tools');

  // 3. An empty form: every required field explained.
  await submit(page, 'Add tool file');
  await checkErrorSummary(page, ['name', 'version', 'platform', 'url', 'sha256', 'size', 'kind'], 'an empty tool form');
  await shot('empty-form-errors');

  // 4. A wrong SHA-256 and an install recipe on an archive: each says what to fix; what was
  //    typed is kept.
  await page.getByLabel('Tool', { exact: true }).fill('ruff');
  await page.getByLabel('Version', { exact: true }).fill('0.6.9');
  await page.getByLabel('Platform').selectOption('x86_64-linux');
  await page.getByLabel('Download address').fill(TOOL.url);
  await page.getByLabel('SHA-256').fill('abc123');
  await page.getByLabel('Size in bytes').fill(TOOL.size);
  await page.getByLabel(/^Archive/).check();
  await page.getByLabel('Programs to put on the PATH (optional)').fill(TOOL.binary);
  await page.getByLabel('Per-user install recipe (installers only)').fill('-b\n-p\n{prefix}');
  await submit(page, 'Add tool file');
  const links = await checkErrorSummary(page, ['sha256', 'install_args'], 'a wrong SHA-256 and a recipe on an archive');
  const said = links.map((link) => link.text).join(' | ');
  expect(said.includes('64 characters 0-9 and a-f') && said.includes('Only an installer takes install arguments'), `the errors should say what to fix; they say "${said}"`);
  expect(await page.getByLabel('Download address').inputValue() === TOOL.url, 'the download address typed should be kept');
  await shot('wrong-fields');
  await checkWidth(page, 'tools with errors');

  // 5. Put right, added, listed.
  await page.getByLabel('SHA-256').fill(TOOL.sha256);
  await page.getByLabel('Per-user install recipe (installers only)').fill('');
  await submit(page, 'Add tool file');
  const done = await page.locator('#done').innerText().catch(() => '');
  expect(done.includes("The tool's file has been added"), `adding should be confirmed; the page says "${excerpt(await mainText(page))}"`);
  const listed = await page.locator('#tools').innerText();
  expect(listed.includes('ruff 0.6.9') && listed.includes('x86_64-linux') && listed.includes('Archive, unpacked') && listed.includes(TOOL.binary), `the list should show ruff 0.6.9 for x86_64-linux; it shows "${excerpt(listed)}"`);
  await shot('tool-added');
  await checkWidth(page, 'tools listed');
});
