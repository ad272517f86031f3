// tables.js — the HTML tables under the timeline: the summary header, await points over the
// threshold with hot spots by file:line, blocking events with their stacks, and the tasks
// (sorted and paged by the server through the page-loading function it is given, so 100k tasks
// stay light). Takes data, builds elements; never fetches itself.
import { h, clear } from './dom.js';
import * as fmt from './format.js';

// Summary header: a definition list of the session's headline numbers.
export function fillSummary(dl, sum) {
  clear(dl);
  const lag = sum.lag || {};
  const rows = [
    ['duration', fmt.duration(sum.duration_ns)],
    ['tasks', fmt.count(sum.tasks)],
    ['max concurrency', fmt.count(sum.max_concurrency)],
    ['lag avg / p95 / max', lag.samples ? `${fmt.ms(lag.avg_ms)} / ${fmt.ms(lag.p95_ms)} / ${fmt.ms(lag.max_ms)}` : 'no samples'],
    ['blocks', fmt.count(sum.blocks)],
  ];
  // lost time split (servers since schema 6): the session's own blocks and those others caused
  if (sum.blocks_elsewhere !== undefined) {
    rows.push(['own blocks', `${fmt.count(sum.blocks_own)} (${fmt.ms(sum.blocked_ms_own)})`]);
    rows.push(['blocked by others', `${fmt.count(sum.blocks_elsewhere)} (${fmt.ms(sum.blocked_ms_elsewhere)})`]);
  }
  rows.push(
    ['awaits', fmt.count(sum.awaits)],
    ['dropped', fmt.count(sum.dropped)],
  );
  for (const [k, v] of rows) {
    const div = h('div', { class: 'stat', 'data-stat': k });
    div.appendChild(h('dt', null, k));
    div.appendChild(h('dd', null, v));
    dl.appendChild(div);
  }
}

function table(headers) {
  const t = h('table');
  const tr = h('tr');
  for (const col of headers) tr.appendChild(h('th', col.num ? { class: 'num' } : null, col.label ?? col));
  t.appendChild(h('thead')).appendChild(tr);
  return { table: t, body: t.appendChild(h('tbody')) };
}

function cell(tr, text, cls) {
  return tr.appendChild(h('td', cls ? { class: cls } : null, text));
}

// A task reference that selects the task when clicked.
function taskLink(tr, id, byId, onTask) {
  const td = tr.appendChild(h('td'));
  const t = byId.get(id);
  const a = td.appendChild(h('a', { href: '#', class: 'task-link', 'data-task': String(Number(id)) }, t ? t.name : `#${id}`));
  a.addEventListener('click', (ev) => {
    ev.preventDefault();
    onTask(id);
  });
  return td;
}

// Await points over the threshold and their hot spots.
export function fillAwaits(section, resp, byId, onTask) {
  clear(section);
  section.appendChild(h('h2', null, `Await points ≥ ${fmt.ms(resp.min_ms)} (${fmt.count(resp.total)})`));
  if (!resp.awaits.length) {
    section.appendChild(h('p', { class: 'empty' }, 'No await point over the threshold.'));
    return;
  }
  section.appendChild(h('h3', null, 'Hot spots by file:line'));
  const hs = table(['file:line', 'function', 'awaiting', { label: 'count', num: true }, { label: 'total', num: true }, { label: 'max', num: true }]);
  hs.table.classList.add('hotspots');
  for (const x of resp.hotspots) {
    const tr = hs.body.appendChild(h('tr'));
    cell(tr, fmt.place(x.file, x.line), 'code');
    cell(tr, x.func || '', 'code');
    cell(tr, x.what || '', 'code');
    cell(tr, fmt.count(x.count), 'num');
    cell(tr, fmt.duration(x.total_ns), 'num');
    cell(tr, fmt.duration(x.max_ns), 'num');
  }
  section.appendChild(hs.table);

  section.appendChild(h('h3', null, 'Longest awaits'));
  const aw = table(['task', 'file:line', 'awaiting', { label: 'at', num: true }, { label: 'waited', num: true }]);
  aw.table.classList.add('awaits');
  for (const a of resp.awaits) {
    const tr = aw.body.appendChild(h('tr'));
    taskLink(tr, a.task, byId, onTask);
    cell(tr, fmt.place(a.file, a.line), 'code');
    cell(tr, a.what || '', 'code');
    cell(tr, fmt.time(a.t), 'num');
    cell(tr, fmt.duration(a.d), 'num');
  }
  section.appendChild(aw.table);
  if (resp.total > resp.awaits.length) {
    section.appendChild(h('p', { class: 'more' }, `… and ${fmt.count(resp.total - resp.awaits.length)} more`));
  }
}

const BLOCKS_SHOWN = 200;

// A block from elsewhere: marked, with the session that caused it linked (and its task), or "no
// session" for a background task or a plain callback. The id goes into the URL encoded.
function causeCell(tr, b) {
  const td = tr.appendChild(h('td', { class: 'cause' }));
  td.appendChild(h('span', { class: 'from-elsewhere' }, 'from elsewhere'));
  td.appendChild(document.createTextNode(' '));
  if (b.from_session) {
    td.appendChild(h('a', { href: `/sessions/${encodeURIComponent(b.from_session)}`, class: 'cause-link' }, b.from_session));
    if (b.from_task != null) td.appendChild(document.createTextNode(` task #${Number(b.from_task)}`));
  } else {
    td.appendChild(h('span', { class: 'no-session' }, 'no session'));
  }
  return td;
}

// Blocking events, each with its stack (outermost first, culprit line last and marked).
export function fillBlocks(section, resp, byId, onTask) {
  clear(section);
  const list = resp.blocks || [];
  section.appendChild(h('h2', null, `Blocking events (${fmt.count(list.length)})`));
  if (!list.length) {
    section.appendChild(h('p', { class: 'empty' }, 'The loop was never blocked over the threshold.'));
    return;
  }
  const t = table(['task', { label: 'at', num: true }, { label: 'blocked', num: true }, 'culprit', 'stack']);
  t.table.classList.add('blocks');
  for (const b of list.slice(0, BLOCKS_SHOWN)) {
    const tr = t.body.appendChild(h('tr', b.elsewhere ? { class: 'elsewhere' } : null));
    if (b.elsewhere) causeCell(tr, b);
    else taskLink(tr, b.task, byId, onTask);
    cell(tr, fmt.time(b.t), 'num');
    cell(tr, fmt.duration(b.d), 'num');
    const stack = b.stack || [];
    const top = stack.length ? stack[stack.length - 1] : null;
    cell(tr, top ? `${fmt.place(top.file, top.line)} ${top.src || ''}`.trim() : '', 'code culprit');
    const td = tr.appendChild(h('td', { class: 'stack' }));
    const det = td.appendChild(h('details'));
    const when = b.stack_t != null ? `, taken ${fmt.duration(b.stack_t)} in` : ''; // how late: docs/api.md
    det.appendChild(h('summary', null, `${stack.length} frame${stack.length === 1 ? '' : 's'}${when}`));
    const ol = det.appendChild(h('ol', { class: 'frames' }));
    stack.forEach((f, i) => {
      const li = ol.appendChild(h('li', i === stack.length - 1 ? { class: 'culprit' } : null));
      li.appendChild(h('span', { class: 'code' }, `${fmt.place(f.file, f.line)} in ${f.func || '?'}`));
      if (f.src) li.appendChild(h('code', null, f.src));
    });
  }
  section.appendChild(t.table);
  if (list.length > BLOCKS_SHOWN) {
    section.appendChild(h('p', { class: 'more' }, `… and ${fmt.count(list.length - BLOCKS_SHOWN)} more`));
  }
}

// The sorts the table offers: the server's column (api.tasksPage) and its order.
const SORTS = {
  created: { label: 'created', col: 'created', order: 'asc' },
  busy: { label: 'busy', col: 'busy_ns', order: 'desc' },
  waiting: { label: 'waiting', col: 'wait_ns', order: 'desc' },
  duration: { label: 'duration', col: 'duration', order: 'desc' },
};
const PAGE = 100;

// The tasks table: sorted and paged by the server (loadPage({ sort, order, offset, limit })
// answers { tasks, total }), so a session of any size costs one page; sortable by created,
// busy, waiting, duration; 100 rows a page. select(id) marks the task's row, turning to its page
// (the server finds it: `at`) when it is on another. `ready` settles once the first page is drawn; section.dataset.shown says which
// sort and page are drawn (tests wait on it).
export class TasksTable {
  constructor(section, loadPage, duration, onTask) {
    this.section = section;
    this.loadPage = loadPage;
    this.duration = duration;
    this.onTask = onTask;
    this.sort = 'created';
    this.page = 0;
    this.total = 0;
    this.selected = null;
    this.seq = 0;
    this.build();
    this.ready = this.fill();
  }

  build() {
    const sec = clear(this.section);
    this.heading = sec.appendChild(h('h2', null, 'Tasks'));
    const bar = sec.appendChild(h('div', { class: 'table-bar' }));
    bar.appendChild(h('span', null, 'sort by '));
    this.buttons = new Map();
    for (const [name, s] of Object.entries(SORTS)) {
      const b = bar.appendChild(h('button', { type: 'button', class: name === this.sort ? 'on' : '', 'data-sort': name }, s.label));
      b.addEventListener('click', () => this.setSort(name));
      this.buttons.set(name, b);
    }
    this.pager = bar.appendChild(h('span', { class: 'pager' }));
    const t = table(['task', 'coroutine', 'state', { label: 'created', num: true }, { label: 'busy', num: true },
      { label: 'waiting', num: true }, { label: 'duration', num: true }, 'exception']);
    t.table.classList.add('tasks');
    this.body = t.body;
    this.wrap = sec.appendChild(h('div', { class: 'table-scroll' }));
    this.wrap.appendChild(t.table);
  }

  setSort(name) {
    if (!SORTS[name]) return;
    this.sort = name;
    this.page = 0;
    for (const [n, b] of this.buttons) b.className = n === name ? 'on' : '';
    return this.fill();
  }

  // Asks the server for the current page (or the one holding task `at`) and draws it (a newer
  // request wins over an older one).
  async fill(at = null) {
    const mine = ++this.seq;
    const { col, order } = SORTS[this.sort];
    const resp = await this.loadPage({ sort: col, order, offset: this.page * PAGE, limit: PAGE, at });
    if (mine !== this.seq) return;
    this.total = Number(resp.total) || 0;
    if (at != null) this.page = Math.floor((Number(resp.offset) || 0) / PAGE);
    const pages = Math.max(1, Math.ceil(this.total / PAGE));
    if (this.page > pages - 1) {
      this.page = pages - 1;
      return this.fill();
    }
    this.rows = new Map();
    this.draw(resp.tasks || []);
    this.drawPager(pages);
    this.section.dataset.shown = `${this.sort}:${this.page}:${mine}`;
  }

  draw(tasks) {
    this.heading.textContent = `Tasks (${fmt.count(this.total)})`;
    clear(this.body);
    for (const t of tasks) {
      const tr = this.body.appendChild(h('tr', { 'data-task': String(Number(t.id)), class: t.id === this.selected ? 'selected' : '' }));
      this.rows.set(t.id, tr);
      const td = tr.appendChild(h('td'));
      const a = td.appendChild(h('a', { href: '#', class: 'task-link' }, t.name || `#${t.id}`));
      a.addEventListener('click', (ev) => {
        ev.preventDefault();
        this.onTask(t.id);
      });
      cell(tr, t.coro || '', 'code');
      // A task with no `done` was still running when the session ended: its duration so far is
      // a lower bound.
      const running = t.ended === null || t.ended === undefined;
      const state = running ? 'running' : t.state;
      // "responded 200" for a request's task (fmt.ending), coloured by its state
      cell(tr, fmt.ending(t), `state state-${['ok', 'cancelled', 'error', 'running'].includes(state) ? state : 'none'}`);
      cell(tr, fmt.time(t.created), 'num');
      cell(tr, fmt.duration(t.busy_ns), 'num');
      cell(tr, fmt.duration(t.wait_ns), 'num');
      cell(tr, running ? `≥ ${fmt.duration(Math.max(0, this.duration - t.created))}` : fmt.duration(t.ended - t.created), 'num');
      cell(tr, t.exc || '', 'code exc');
    }
  }

  drawPager(pages) {
    clear(this.pager);
    if (pages <= 1) return;
    const prev = this.pager.appendChild(h('button', { type: 'button', 'data-page': 'prev' }, '‹'));
    this.pager.appendChild(h('span', null, ` page ${this.page + 1} of ${fmt.count(pages)} `));
    const next = this.pager.appendChild(h('button', { type: 'button', 'data-page': 'next' }, '›'));
    prev.disabled = this.page === 0;
    next.disabled = this.page >= pages - 1;
    prev.addEventListener('click', () => { this.page--; this.fill(); });
    next.addEventListener('click', () => { this.page++; this.fill(); });
  }

  // The session grew (live): the same sort and page, asked again.
  refresh(duration) {
    this.duration = duration;
    return this.fill();
  }

  select(id, scroll = true) {
    for (const tr of this.body.querySelectorAll('tr.selected')) tr.classList.remove('selected');
    this.selected = id;
    // Scroll the table's own box, not the page, so the timeline stays where the user looks.
    const tr = this.rows?.get(id);
    if (!tr) {
      if (this.rows) this.fill(id).then(() => this.rows.has(id) && this.select(id, scroll));
      return;
    }
    tr.classList.add('selected');
    if (scroll) {
      const dy = tr.getBoundingClientRect().top - this.wrap.getBoundingClientRect().top;
      this.wrap.scrollTop = Math.max(0, this.wrap.scrollTop + dy - this.wrap.clientHeight / 2);
    }
  }
}
