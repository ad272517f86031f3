// login.test.mjs — the page with a server started with --token (its own server: the shared one of
// scripts/test-web.sh has none). Opening a session sends the browser to /login (the API answered
// 401); a wrong token is said so on the page; the right one sets an HttpOnly, SameSite=Strict
// cookie no script can read, and the page comes back and draws the timeline; logging out clears it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pagesPerTest, waitDrawn, screenshot } from './harness.mjs';
import { smallBatches, small, SMALL_ID } from './seed-data.mjs';

const BIN = path.resolve(process.env.LOOPSCOPE_SERVER_BIN || 'build/server/loopscope-server');
const TOKEN = 'browser-test-token-3f9a';
const pages = pagesPerTest();
let proc = null, base = '', dir = '';

// Starts the binary on a free port (--listen 127.0.0.1:0, the port read from its log line).
before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ls-login-'));
  proc = spawn(BIN, ['--listen', '127.0.0.1:0', '--db', path.join(dir, 'login.db'), '--token', TOKEN],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${log}`)), 30000);
    const onData = (d) => {
      log += d;
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)\//.exec(log);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited ${code}:\n${log}`)); });
  });
  for (const b of smallBatches()) {
    const res = await fetch(`${base}/api/v1/ingest`, {
      method: 'POST', body: JSON.stringify(b),
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TOKEN}` },
    });
    assert.ok(res.status === 202 || res.status === 200, `seed: ${res.status}`);
  }
});

after(async () => {
  if (proc && proc.exitCode === null) {
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a token server: login form, HttpOnly cookie, the timeline drawn', async () => {
  const { page, context } = await pages.open();
  pages.allowConsole(/401 \(Unauthorized\)/); // the API's first answer, before the login
  await page.goto(`${base}/sessions/${SMALL_ID}?embed=0`);
  await page.waitForURL(/\/login\?next=/);
  assert.equal(new URL(page.url()).searchParams.get('next'), `/sessions/${SMALL_ID}?embed=0`);
  await page.waitForFunction(() => document.body.dataset.ready === '1');
  await page.fill('#token', 'not-the-token');
  await page.click('#submit');
  await page.waitForFunction(() => document.getElementById('status').textContent === 'wrong token');
  assert.deepEqual(await context.cookies(), []);
  await screenshot(page, 'login.png');

  await page.fill('#token', TOKEN);
  await page.click('#submit');
  await page.waitForURL(`${base}/sessions/${SMALL_ID}?embed=0`);
  await waitDrawn(page);
  assert.equal(await page.textContent('#title'), small.name);
  const [cookie] = await context.cookies();
  assert.equal(cookie.name, 'loopscope_auth');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.match(cookie.value, /^[0-9a-f]{64}$/);
  assert.notEqual(cookie.value, TOKEN);
  assert.equal(await page.evaluate(() => document.cookie), '', 'no script can read it');
  assert.equal(await page.evaluate(() => JSON.stringify(sessionStorage) + JSON.stringify(localStorage)), '{}{}');
  // the sessions list and an export work with the cookie alone
  await page.goto(`${base}/`);
  await page.waitForFunction(() => document.body.dataset.loaded);
  assert.ok(await page.$(`#sessions tbody tr[data-session="${SMALL_ID}"]`));
  const exp = await page.evaluate(async (id) => (await fetch(`/api/v1/sessions/${id}/export?format=json`)).status, SMALL_ID);
  assert.equal(exp, 200);

  // logout: the cookie is gone and the API answers 401 again
  const out = await page.evaluate(async () => (await fetch('/login', { method: 'POST', headers: { 'X-Loopscope-Logout': '1' } })).status);
  assert.equal(out, 204);
  assert.deepEqual(await context.cookies(), []);
  const after401 = await page.evaluate(async () => (await fetch('/api/v1/sessions')).status);
  assert.equal(after401, 401);
});

test('next= only ever leads to a page of this server', async () => {
  const { page } = await pages.open();
  for (const next of ['//evil.example/x', 'https://evil.example/', '/\\evil.example', 'javascript:alert(1)']) {
    await page.goto(`${base}/login?next=${encodeURIComponent(next)}`);
    await page.waitForFunction(() => document.body.dataset.ready === '1');
    await page.fill('#token', TOKEN);
    await page.click('#submit');
    await page.waitForURL(`${base}/`);
  }
});
