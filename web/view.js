// view.js — the visible time range and how input moves it: zoom around a point, pan, select,
// clamp to the session, and its round trip through the URL (?from=&to=). Pure functions.

export const MIN_SPAN = 50; // ns: the deepest zoom still shows a few distinct nanosecond ticks

// The view [from, to) kept inside [0, duration] and at least MIN_SPAN wide (whole numbers).
export function clamp(v, duration) {
  const D = Math.max(MIN_SPAN, duration);
  let span = Math.min(D, Math.max(MIN_SPAN, v.to - v.from));
  let from = Math.min(Math.max(0, v.from), D - span);
  from = Math.round(from);
  span = Math.round(span);
  return { from, to: Math.min(D, from + span) };
}

// Zoom by `factor` (< 1 zooms in) keeping time `at` under the same pixel.
export function zoomAt(v, at, factor, duration) {
  const span = v.to - v.from;
  const ns = Math.max(MIN_SPAN, span * factor);
  const frac = span > 0 ? (at - v.from) / span : 0.5;
  const from = at - frac * ns;
  return clamp({ from, to: from + ns }, duration);
}

export function pan(v, delta, duration) {
  return clamp({ from: v.from + delta, to: v.to + delta }, duration);
}

// The view a selection between two times gives (either order).
export function select(a, b, duration) {
  const from = Math.min(a, b);
  const to = Math.max(a, b);
  return clamp({ from, to }, duration);
}

export function whole(duration) {
  return { from: 0, to: Math.max(MIN_SPAN, duration) };
}

// The view named in a query string, or the whole session when absent or unreadable.
export function fromQuery(search, duration) {
  const q = new URLSearchParams(search);
  const from = Number(q.get('from'));
  const to = Number(q.get('to'));
  if (!q.has('from') || !q.has('to') || !Number.isFinite(from) || !Number.isFinite(to) || to <= from) {
    return whole(duration);
  }
  return clamp({ from, to }, duration);
}

// The query string for a view, keeping the other parameters (embed=1 and so on).
export function toQuery(search, v) {
  const q = new URLSearchParams(search);
  q.set('from', String(Math.round(v.from)));
  q.set('to', String(Math.round(v.to)));
  return `?${q}`;
}
