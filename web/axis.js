// axis.js — the time axis: nice 1-2-5 tick steps for any span from nanoseconds to seconds,
// their labels (via format.js) and the SVG that shows them. Pure drawing, no fetching.
import { s } from './dom.js';
import * as fmt from './format.js';

// A 1-2-5 step (in ns, >= 1) giving about `target` ticks over `span` ns.
export function niceStep(span, target) {
  const raw = Math.max(1, span / Math.max(1, target));
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return Math.max(1, m * p);
  return 10 * p;
}

// Ticks of the view [from, to): {step, ticks: [t...], base} where base is non-null when labels
// are relative to it (deep zoom far from 0, where absolute labels would be long).
export function ticks(from, to, widthPx) {
  const span = Math.max(1, to - from);
  const step = niceStep(span, Math.max(2, Math.floor(widthPx / 90)));
  const first = Math.ceil(from / step) * step;
  const out = [];
  for (let t = first; t < to && out.length < 200; t += step) out.push(t);
  // Relative labels when the absolute ones would need more than ~6 significant digits.
  const base = to / step >= 1e5 ? Math.floor(from / (step * 10)) * step * 10 : null;
  return { step, ticks: out, base };
}

// Draws the axis into group g (cleared by the caller): tick lines, labels, and the base offset
// when labels are relative. x(t) maps time to pixels; height is the axis strip's height.
export function draw(g, view, x, widthPx, height) {
  const { step, ticks: ts, base } = ticks(view.from, view.to, widthPx);
  g.appendChild(s('line', { class: 'axis-base', x1: x(view.from), x2: x(view.to), y1: height - 0.5, y2: height - 0.5 }));
  for (const t of ts) {
    const px = Math.round(x(t)) + 0.5;
    g.appendChild(s('line', { class: 'axis-tick', x1: px, x2: px, y1: height - 6, y2: height }));
    const label = base === null ? fmt.tick(t, step) : fmt.tick(t - base, step, true);
    g.appendChild(s('text', { class: 'axis-label', x: px + 3, y: height - 8 }, label));
  }
  if (base !== null) {
    g.appendChild(s('text', { class: 'axis-offset', x: x(view.from) + 3, y: 11 }, `${fmt.precise(base)} +`));
  }
  return { step, count: ts.length, base };
}
