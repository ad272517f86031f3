// elsewhere.test.mjs — blocks from elsewhere on the session page (issue 12, part 1): a request that
// was stalled by another request's block and by a background task shows both in the blocking lane
// apart from its own ("from elsewhere", culprit file:line and source), the header splits own blocks
// and blocked by others as /api/v1/sessions/{id} says, the table links the causing session (and the
// link leads there), and culprit text made of HTML/SVG metacharacters stays text. Each run posts
// sessions of its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, pagesPerTest, waitDrawn, settle, screenshot } from './harness.mjs';
import { post } from './seed.mjs';
import { EVIL } from './seed-data.mjs';

const pages = pagesPerTest();
const MS = 1_000_000;
const RUN = Math.random().toString(16).slice(2, 10);
const CULPRIT = `s-else-${RUN}-a`;
const VICTIM = `s-else-${RUN}-b`;
const STACK = [{ file: 'demo_app.py', line: 56, func: 'user', src: 'time.sleep(0.15)' }];
const EVIL_STACK = [{ file: EVIL[1], line: 3, func: EVIL[0], src: EVIL[3] }];

function session(id, name, events) {
  return {
    v: 1, batch: `b-${id}`, session: id,
    meta: { name, pid: 4711, loop: 1, started_unix_ns: '1764089000000000000' },
    events: [...events, { k: 'end', t: 400 * MS }],
  };
}

async function seed() {
  await post(BASE, session(CULPRIT, `GET /report/${RUN}`, [
    { k: 'task', id: 3, parent: 0, name: 'Task-3', coro: 'demo_app.user', t: 0 },
    { k: 'block', id: 3, t: 50 * MS, d: 150 * MS, stack: STACK },
  ]));
  await post(BASE, session(VICTIM, `GET /profile/${RUN}`, [
    { k: 'task', id: 1, parent: 0, name: 'Task-1', coro: 'demo_app.user', t: 0 },
    { k: 'block', t: 50 * MS, d: 150 * MS, from_session: CULPRIT, from_task: 3, stack: STACK },
    { k: 'block', t: 250 * MS, d: 120 * MS, from_session: null, stack: EVIL_STACK },
    { k: 'lag', t: 200 * MS, d: 150 * MS }, // the tick due at 50 ms waited behind the culprit's block
  ]));
}

async function open(id) {
  const { page } = await pages.open();
  await page.goto(`${BASE}/sessions/${id}`);
  await waitDrawn(page);
  await page.waitForFunction(() => document.getElementById('timeline').dataset.complete === '1');
  await settle(page);
  return page;
}

test('blocks from elsewhere are marked, split in the header and linked to their session', async () => {
  await seed();
  const page = await open(VICTIM);
  const sum = await (await fetch(`${BASE}/api/v1/sessions/${VICTIM}`)).json();
  assert.equal(sum.blocks_elsewhere, 2);
  const stat = (k) => page.locator(`.stat[data-stat="${k}"] dd`).textContent();
  assert.equal(await stat('blocks'), '2');
  assert.equal(await stat('own blocks'), '0 (0 ns)');
  assert.equal(await stat('blocked by others'), '2 (270 ms)');

  // the lane draws them apart from own blocks (there are none), labelled as from elsewhere
  assert.equal(await page.locator('#head path.block-elsewhere').count(), 1);
  const labels = await page.$$eval('#head .block-label', (ls) => ls.map((l) => [l.getAttribute('class'), l.textContent]));
  assert.deepEqual(labels[0], ['block-label block-label-elsewhere', 'from elsewhere: demo_app.py:56 time.sleep(0.15)']);
  assert.ok(labels[1][1].startsWith('from elsewhere: '), labels[1][1]);

  // the table: marked rows, the culprit line, the causing session linked, or "no session"
  const rows = await page.$$eval('table.blocks tbody tr', (rs) => rs.map((r) => ({
    cls: r.getAttribute('class'), cause: r.querySelector('.cause').textContent,
    href: r.querySelector('.cause-link')?.getAttribute('href') ?? null,
    culprit: r.querySelector('.culprit').textContent,
  })));
  assert.deepEqual(rows[0], { cls: 'elsewhere', cause: `from elsewhere ${CULPRIT} task #3`,
    href: `/sessions/${CULPRIT}`, culprit: 'demo_app.py:56 time.sleep(0.15)' });
  assert.deepEqual(rows[1], { cls: 'elsewhere', cause: 'from elsewhere no session', href: null,
    culprit: `${EVIL[1]}:3 ${EVIL[3]}` });
  // hostile culprit text stayed text: no element made from it, nothing ran
  assert.equal(await page.evaluate(() => document.querySelectorAll('table.blocks img, table.blocks svg, #head svg svg').length), 0);
  await screenshot(page, 'session-elsewhere.png');

  // the lag sample says what it waited behind (lag row: below the 26 px axis and 18 px blocking row)
  const head = await page.locator('#head').boundingBox();
  const x = await page.evaluate((tt) => {
    const svg = document.getElementById('head').getBoundingClientRect();
    const d = document.getElementById('timeline').dataset;
    return svg.left + 240 + ((tt - Number(d.from)) * (svg.width - 240)) / (Number(d.to) - Number(d.from));
  }, 200 * MS);
  await page.mouse.move(x, head.y + 26 + 18 + 20);
  await page.waitForFunction(() => /loop lag/.test(document.getElementById('tooltip').textContent));
  const tip = await page.locator('#tooltip').textContent();
  assert.match(tip, new RegExp(`waited behindsession ${CULPRIT} at demo_app\\.py:56`));
  await page.mouse.move(0, 0);

  // the link leads to the session that blocked, where the block is its own
  await Promise.all([page.waitForURL(`**/sessions/${CULPRIT}`), page.click('table.blocks .cause-link')]);
  await waitDrawn(page);
  assert.equal(await page.textContent('#title'), `GET /report/${RUN}`);
  await page.waitForFunction(() => document.querySelectorAll('.stat[data-stat="own blocks"]').length === 1);
  assert.equal(await stat('own blocks'), '1 (150 ms)');
  assert.equal(await stat('blocked by others'), '0 (0 ns)');
  assert.equal(await page.locator('#head path.block-elsewhere').count(), 0);
  assert.equal(await page.locator('#head path.block').count(), 1);
});
