// timeline.js — draws the timeline as SVG from data it is given: lanes (run steps, awaits,
// end state), blocking bands, the loop-lag and concurrency charts, the minimap, and finds the
// item under the pointer. Layout of the tree is lanes.js's, ticks are axis.js's; no fetching.
// The lanes' shapes of one kind are one <path> for all lanes drawn, so the element count stays
// bounded by the number of lanes shown (a label each), however many items the answer holds.
import { s } from './dom.js';
import * as axis from './axis.js';
import { LANE_H } from './lanes.js';
import * as fmt from './format.js';

// px of the label column left of the plot: 240, less in a narrow embed (setGutter). A live
// binding: every module reading tl.GUTTER sees the width of the last layout.
export let GUTTER = 240;
export function setGutter(px) { GUTTER = px; }
export const AXIS_H = 26;
export const BLOCKS_H = 18;
export const LAG_H = 34;
export const CONC_H = 34;
export const HEAD_H = AXIS_H + BLOCKS_H + LAG_H + CONC_H;
export const MINIMAP_H = 30;
const CHAR_W = 6.6;              // average label glyph width at the page's 11px font
const SRC_KEPT = 24;              // a blocking band's label keeps this much of the source before the path

// Maps time <-> x for a plot `width` px wide whose first `gutter` px hold labels.
export function geometry(width, view, gutter = GUTTER) {
  const plotW = Math.max(1, width - gutter);
  const span = Math.max(1, view.to - view.from);
  const k = plotW / span;
  return {
    width,
    gutter,
    plotW,
    view,
    nsPerPx: span / plotW,
    x: (t) => gutter + (t - view.from) * k,
    t: (x) => view.from + (x - gutter) / k,
  };
}

const r1 = (v) => Math.round(v * 10) / 10;

// Cuts a label to what fits in `px` pixels, with an ellipsis.
export function fit(text, px) {
  const n = Math.floor(px / CHAR_W);
  if (n <= 1) return '';
  text = String(text);
  return text.length <= n ? text : `${text.slice(0, n - 1)}…`;
}

// The label of blocking band b in `px` pixels: the culprit's file:line, then its source, cut at
// the end. When the band cannot hold the whole path and the source's first SRC_KEPT characters,
// the path's directories give way first (to "…/"): a narrow band keeps
// "…/views.py:45 time.sleep(0.15)" rather than "/home/me/src/app/vi…".
export function blockLabel(b, px) {
  const pre = b.elsewhere ? 'from elsewhere: ' : '';
  const room = Math.floor(px / CHAR_W) - pre.length - (b.src ? Math.min(b.src.length, SRC_KEPT) + 1 : 0);
  const where = fmt.shortPlace(b.file, b.line, room);
  return fit(pre + (b.src ? `${where} ${b.src}` : where), px);
}

// Path data for items [t, t + d) drawn between y0 and y0 + h, at least 1 px wide, clipped to the plot.
function barsPath(items, g, y0, h) {
  const left = g.gutter;
  const right = g.width;
  const parts = [];
  for (const it of items) {
    let x0 = g.x(it.t);
    let x1 = g.x(it.t + (it.d || 0));
    if (x1 < left || x0 > right) continue;
    x0 = Math.max(left, x0);
    x1 = Math.min(right, x1);
    const w = Math.max(1, x1 - x0);
    parts.push(`M${r1(x0)} ${y0}h${r1(w)}v${h}h${r1(-w)}z`);
  }
  return parts.join('');
}

export function laneLabel(task) {
  const name = task.name || `Task ${task.id}`;
  return task.coro ? `${name} · ${task.coro}` : name;
}

// The kinds of shape a lane shows, each drawn as one <path> for all the lanes drawn (in this
// order: later ones on top). One element per kind, not ~8 per lane: a scroll step's draw built
// ~250 SVG elements at 1M tasks, and building them and the frame's style, layout and paint of
// them took ~5 ms of the step (bench/page/scroll.mjs). Each lane keeps a <g> of its own with its
// label and toggle (data-task, data-row): what the pointer and the tests find a lane by.
const SHAPES = {
  odd: 'lane-bg lane-odd', related: 'lane-bg lane-related', selected: 'lane-bg lane-selected',
  life: 'life', await: 'await', step: 'step',
  ok: 'end end-ok', cancelled: 'end end-cancelled', error: 'end end-error', unknown: 'end end-unknown', running: 'end end-running',
};

// Draws lanes first..last-1 of `shown` (tasks in tree order) into svg, each at y = index * LANE_H.
// data: Map task id -> timeline items; blocks: timeline blocks (bands across the lanes).
// Returns the number of SVG elements created.
export function drawLanes(svg, o) {
  const { shown, first, last, data, geom: g, duration, selected, related, collapsed, blocks } = o;
  const top = first * LANE_H;
  const bottom = last * LANE_H;
  let count = 0;
  const add = (parent, node) => {
    parent.appendChild(node);
    count++;
    return node;
  };

  // Background: grid lines at the axis ticks (under the lanes' fills, as before), blocking bands
  // (at the end) across the lanes.
  const bg = add(svg, s('g', { class: 'lanes-bg' }));
  const { ticks } = axis.ticks(g.view.from, g.view.to, g.plotW);
  const grid = ticks.map((t) => `M${Math.round(g.x(t)) + 0.5} ${top}V${bottom}`).join('');
  if (grid) add(bg, s('path', { class: 'grid', d: grid }));

  const paths = {};
  for (const k of Object.keys(SHAPES)) paths[k] = [];
  const fullRow = (y) => `M0 ${y}h${g.width}v${LANE_H}h${-g.width}z`;
  const labels = s('g', { class: 'lanes-fg' });
  for (let i = first; i < last; i++) {
    const task = shown[i];
    if (!task) continue; // a row not fetched yet (the server serves the rows in windows)
    const y = i * LANE_H;
    // the lane's fill: selected, else related, else every other lane's
    const fill = selected === task.id ? 'selected' : related && related.has(task.id) ? 'related' : i % 2 ? 'odd' : null;
    if (fill) paths[fill].push(fullRow(y));
    let cls = i % 2 ? 'lane odd' : 'lane';
    if (fill === 'selected' || fill === 'related') cls += ` ${fill}`;
    const lane = add(labels, s('g', { class: cls, 'data-task': String(Number(task.id)), 'data-depth': String(Number(task.depth)), 'data-row': String(i) }));

    // Label column: indentation by depth, a toggle for tasks with children, name · coro.
    const indent = 6 + Math.min(task.depth, 16) * 12;
    // children: ids in a /tasks entry, a count in a /rows one
    const hasKids = Array.isArray(task.children) ? task.children.length > 0 : task.children > 0;
    if (hasKids) {
      add(lane, s('text', { class: 'toggle', x: indent, y: y + 14, 'data-toggle': String(Number(task.id)) },
        collapsed.has(task.id) ? '▸' : '▾'));
    }
    add(lane, s('text', { class: 'lane-label', x: indent + 12, y: y + 14 }, fit(laneLabel(task), GUTTER - indent - 18)));

    // Lifetime [created, ended) as a thin line; steps (busy) solid; awaits (waiting) lighter.
    const end = task.ended ?? duration;
    paths.life.push(barsPath([{ t: task.created, d: Math.max(0, end - task.created) }], g, y + LANE_H / 2 - 0.5, 1));
    const items = data.get(task.id) || [];
    const awaits = [];
    const steps = [];
    for (const it of items) (it.k === 'await' ? awaits : steps).push(it);
    paths.await.push(barsPath(awaits, g, y + 6, LANE_H - 12));
    paths.step.push(barsPath(steps, g, y + 3, LANE_H - 6));

    // End state: a bar at `ended`, coloured by state. A task with no `done` was still running
    // when the session ended: an arrowhead at the session's end, pointing on past it.
    if (task.ended !== null && task.ended !== undefined) {
      const ex = g.x(task.ended);
      if (ex >= g.gutter - 1 && ex <= g.width + 1) {
        const state = ['ok', 'cancelled', 'error'].includes(task.state) ? task.state : 'unknown';
        paths[state].push(`M${r1(ex - 1.5)} ${y + 2}h3v${LANE_H - 4}h-3z`);
      }
    } else {
      const ex = g.x(duration);
      if (ex >= g.gutter + 6 && ex <= g.width + 1) {
        paths.running.push(`M${r1(ex - 7)} ${y + 3}L${r1(ex)} ${y + LANE_H / 2}L${r1(ex - 7)} ${y + LANE_H - 3}z`);
      }
    }
  }
  for (const [k, cls] of Object.entries(SHAPES)) {
    const d = paths[k].join('');
    if (d) add(bg, s('path', { class: cls, d }));
  }
  add(svg, labels);
  // Blocking bands go over the lanes (translucent, not hit by the pointer) so no lane hides them.
  if (blocks && blocks.length && last > first) {
    add(svg, s('path', { class: 'block-band', d: barsPath(blocks, g, top, bottom - top) }));
  }
  return count + 1; // and the labels' group
}

// The strip above the lanes: axis, blocking events labelled with their culprit line, loop lag
// bars and the concurrency step chart, with row labels in the gutter. Returns element count.
export function drawHead(svg, o) {
  const { geom: g, blocks, lag, lagMaxNs, conc, concMax } = o;
  let count = 0;
  const add = (parent, node) => {
    parent.appendChild(node);
    count++;
    return node;
  };
  const ax = add(svg, s('g', { class: 'axis' }));
  const info = axis.draw(ax, g.view, g.x, g.plotW, AXIS_H);
  count += ax.childNodes.length;
  add(svg, s('rect', { class: 'axis-hit', x: g.gutter, y: 0, width: g.plotW, height: AXIS_H }));

  // Blocking events.
  let y = AXIS_H;
  add(svg, s('text', { class: 'row-label', x: 6, y: y + 13 }, `blocking (${fmt.count(o.blockCount)})`));
  const bl = add(svg, s('g', { class: 'blocks' }));
  // The session's own blocks, and the stalls it suffered from elsewhere (another session's task, a
  // background task, a plain callback) drawn apart so a reader sees at once whose they were.
  const own = blocks.filter((b) => !b.elsewhere);
  const other = blocks.filter((b) => b.elsewhere);
  if (own.length) add(bl, s('path', { class: 'block', d: barsPath(own, g, y + 2, BLOCKS_H - 4) }));
  if (other.length) add(bl, s('path', { class: 'block block-elsewhere', d: barsPath(other, g, y + 2, BLOCKS_H - 4) }));
  let labels = 0;
  for (const b of blocks) {
    const x0 = Math.max(g.gutter, g.x(b.t));
    const x1 = Math.min(g.width, g.x(b.t + b.d));
    if (x1 - x0 < 60 || labels >= 100) continue;
    const cls = b.elsewhere ? 'block-label block-label-elsewhere' : 'block-label';
    add(bl, s('text', { class: cls, x: x0 + 3, y: y + 13 }, blockLabel(b, x1 - x0 - 6)));
    labels++;
  }

  // Loop lag: one bar per (reduced) sample, scaled to the session's largest lag.
  y += BLOCKS_H;
  add(svg, s('text', { class: 'row-label', x: 6, y: y + 14 }, 'loop lag'));
  add(svg, s('text', { class: 'row-sub', x: 6, y: y + 27 }, `max ${fmt.duration(lagMaxNs)}`));
  add(svg, s('line', { class: 'row-line', x1: g.gutter, x2: g.width, y1: y + LAG_H - 0.5, y2: y + LAG_H - 0.5 }));
  if (lag.length && lagMaxNs > 0) {
    const h = LAG_H - 4;
    const parts = [];
    for (const p of lag) {
      const x = g.x(p.t);
      if (x < g.gutter || x > g.width) continue;
      const bh = Math.max(1, (Math.min(p.d, lagMaxNs) / lagMaxNs) * h);
      parts.push(`M${r1(x)} ${r1(y + LAG_H - bh)}h1.5v${r1(bh)}h-1.5z`);
    }
    if (parts.length) add(svg, s('path', { class: 'lag', d: parts.join('') }));
  }

  // Concurrency: step function, the highest count of each pixel column.
  y += LAG_H;
  add(svg, s('text', { class: 'row-label', x: 6, y: y + 14 }, 'concurrency'));
  add(svg, s('text', { class: 'row-sub', x: 6, y: y + 27 }, `max ${fmt.count(concMax)}`));
  add(svg, s('line', { class: 'row-line', x1: g.gutter, x2: g.width, y1: y + CONC_H - 0.5, y2: y + CONC_H - 0.5 }));
  if (conc && conc.length && concMax > 0) {
    const d = stepPath(conc, g, y + 2, CONC_H - 3, concMax);
    if (d) add(svg, s('path', { class: 'conc', d }));
  }
  return { count, axis: info };
}

// Per-pixel-column maxima of a step series {t, n} over the view, as a closed area path.
function columnMax(series, g) {
  const cols = Math.max(1, Math.ceil(g.plotW));
  const max = new Float64Array(cols).fill(-1);
  // Index of the last point at or before view.from: its value holds at the left edge.
  let lo = 0;
  let hi = series.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (series[mid].t <= g.view.from) lo = mid;
    else hi = mid - 1;
  }
  for (let i = lo; i < series.length; i++) {
    const p = series[i];
    if (p.t >= g.view.to) break;
    const next = i + 1 < series.length ? series[i + 1].t : g.view.to;
    const c0 = Math.max(0, Math.floor(g.x(Math.max(p.t, g.view.from)) - g.gutter));
    const c1 = Math.min(cols - 1, Math.floor(g.x(Math.min(next, g.view.to)) - g.gutter));
    for (let c = c0; c <= Math.max(c0, c1) && c < cols; c++) if (p.n > max[c]) max[c] = p.n;
  }
  return max;
}

function stepPath(series, g, y0, h, top) {
  const max = columnMax(series, g);
  const base = y0 + h;
  let d = '';
  let prev = null;
  for (let c = 0; c < max.length; c++) {
    const v = max[c] < 0 ? 0 : max[c];
    const y = r1(base - (v / top) * h);
    if (prev === null) d = `M${g.gutter} ${base}V${y}`;
    else if (y !== prev) d += `H${g.gutter + c}V${y}`;
    prev = y;
  }
  if (prev === null) return '';
  return `${d}H${g.gutter + max.length}V${base}z`;
}

// The minimap: the whole session's concurrency and blocks, with the visible range as a brush.
export function drawMinimap(svg, o) {
  const { width, duration, conc, concMax, blocks, view } = o;
  const g = geometry(width, { from: 0, to: Math.max(1, duration) });
  const add = (node) => svg.appendChild(node);
  add(s('text', { class: 'row-label', x: 6, y: 19 }, 'overview'));
  add(s('rect', { class: 'minimap-bg', x: g.gutter, y: 0, width: g.plotW, height: MINIMAP_H }));
  if (conc && conc.length && concMax > 0) {
    const d = stepPath(conc, g, 2, MINIMAP_H - 4, concMax);
    if (d) add(s('path', { class: 'conc minimap-conc', d }));
  }
  if (blocks && blocks.length) add(s('path', { class: 'block', d: barsPath(blocks, g, 0, 4) }));
  add(s('rect', { class: 'brush', y: 0.5, height: MINIMAP_H - 1 }));
  moveBrush(svg, width, duration, view);
  return g;
}

// Moves the minimap's brush to the visible range (the rest of the minimap stays as drawn).
export function moveBrush(svg, width, duration, view) {
  const brush = svg.querySelector('.brush');
  if (!brush) return;
  const g = geometry(width, { from: 0, to: Math.max(1, duration) });
  const bx = g.x(view.from);
  brush.setAttribute('x', r1(bx));
  brush.setAttribute('width', r1(Math.max(2, g.x(view.to) - bx)));
}

// The item of a lane under time t, allowing `tol` ns either side (for 1 px wide items).
export function hit(items, t, tol) {
  let best = null;
  for (const it of items) {
    const end = it.t + (it.d || 0);
    if (t >= it.t - tol && t <= end + tol) {
      // Prefer the item actually containing t, then the longer one.
      const inside = t >= it.t && t <= end;
      if (!best || (inside && !best.inside) || (inside === best.inside && (it.d || 0) > (best.it.d || 0))) {
        best = { it, inside };
      }
    }
  }
  return best ? best.it : null;
}
