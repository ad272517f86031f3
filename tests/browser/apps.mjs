// apps.mjs — what the tests of the toolbar panels share: a Python of a venv list that has what an
// example app needs, and that example app started on a free loopback port (recording into the
// suite's server) for a test file, with a browser and a checked page per test, and stopped again.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BASE, pagesPerTest } from './harness.mjs';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

// The first of `extra` (explicit interpreters), then of the venvs in ROOT/`list` newest first (the
// lists are written oldest first), whose python can `import <imports>`; null when none can.
export function findPython(list, imports, extra = []) {
  const candidates = [...extra];
  const file = path.join(ROOT, list);
  if (fs.existsSync(file)) {
    const venvs = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).reverse();
    candidates.push(...venvs.map((v) => path.join(v, 'bin', 'python')));
  }
  for (const py of candidates) {
    const r = spawnSync(py, ['-c', `import ${imports}`], { timeout: 60000 });
    if (r.status === 0) return py;
  }
  return null;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

// Starts examples/`script` with `python` (`--server BASE --port <free>`) and waits, up to
// `deadlineMs`, until it answers GET `readyPath` (a path the toolbar does not record).
// Returns { proc, port, log }: `log` collects the app's output.
export async function startApp(python, script, readyPath, deadlineMs = 60000) {
  const port = await freePort();
  const proc = spawn(python, [path.join(ROOT, 'examples', script), '--server', BASE, '--port', String(port)],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const app = { proc, port, log: '' };
  proc.stdout.on('data', (d) => { app.log += d; });
  proc.stderr.on('data', (d) => { app.log += d; });
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    assert.ok(running(app), `${script} exited (${proc.exitCode ?? proc.signalCode}):\n${app.log}`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}${readyPath}`);
      if (r.ok) break;
    } catch { /* not listening yet */ }
    assert.ok(Date.now() < deadline, `${script} did not answer within ${deadlineMs / 1000} s:\n${app.log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return app;
}

// SIGTERM (uvicorn shuts down and loopscope delivers what it holds), SIGKILL after 10 s.
export async function stopApp(app) {
  if (!app || !running(app)) return;
  const exited = new Promise((r) => app.proc.once('exit', r));
  app.proc.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 10000))]);
  if (running(app)) app.proc.kill('SIGKILL');
}

const running = (app) => app.proc.exitCode === null && app.proc.signalCode === null;

// The ids of the sessions the suite's server lists (at most 1000, newest first).
export async function sessionIds() {
  const res = await fetch(`${BASE}/api/v1/sessions?limit=1000`);
  assert.equal(res.status, 200, 'GET /api/v1/sessions');
  return new Set((await res.json()).sessions.map((s) => s.id));
}

// Deletes every session but those of `known`: what an app recorded during a test file, which the
// tests of the seeded sessions (sessions.test.mjs: the newest leads) must not find. Call it after
// stopApp, with what sessionIds() gave before startApp.
export async function forgetSessions(known) {
  for (const id of await sessionIds()) {
    if (known.has(id)) continue;
    const res = await fetch(`${BASE}/api/v1/sessions/${encodeURIComponent(id)}`, { method: 'DELETE' });
    assert.ok(res.status === 200 || res.status === 404, `DELETE session ${id}: ${res.status}`);
  }
}

// One example app for a test file, beside harness.pagesPerTest's browser and checked page per
// test: call at the top of the file with the Python findPython gave (null: no app, the tests
// skip). The sessions the app recorded are deleted after the file. `app.pages.open(opts)` opens
// a test's page, `app.port` is the app's port.
export function appPerFile(python, script, readyPath, deadlineMs) {
  const pages = pagesPerTest();
  let app = null, known = null;
  before(async () => {
    if (!python) return;
    known = await sessionIds();
    app = await startApp(python, script, readyPath, deadlineMs);
  });
  after(async () => {
    await stopApp(app);
    if (known) await forgetSessions(known);  // the suite's server as this file found it
  });
  return { pages, get port() { return app.port; } };
}
