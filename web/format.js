// format.js — every number the page shows goes through here: nanoseconds to ns/µs/ms/s with
// sensible precision, axis labels for a given tick step, counts. No DOM, no fetching.

const UNITS = [
  { ns: 1e9, name: 's' },
  { ns: 1e6, name: 'ms' },
  { ns: 1e3, name: 'µs' },
  { ns: 1, name: 'ns' },
];

// The largest unit not bigger than ns (ns for values under 1 µs, also for 0).
function unitFor(ns) {
  const a = Math.abs(ns);
  for (const u of UNITS) if (a >= u.ns) return u;
  return UNITS[UNITS.length - 1];
}

// A duration with three significant digits: 0 ns, 850 ns, 1.25 µs, 45.0 ms, 150 ms, 2.50 s.
// Durations of a minute and more stay in seconds (sessions are short).
export function duration(ns) {
  if (ns === null || ns === undefined || !Number.isFinite(Number(ns))) return '–';
  ns = Number(ns);
  const u = unitFor(ns);
  if (u.ns === 1) return `${Math.round(ns)} ns`;
  const v = ns / u.ns;
  const digits = Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2;
  return `${v.toFixed(digits)} ${u.name}`;
}

// Floating milliseconds (as the API's *_ms fields) shown like a duration.
export function ms(v) {
  if (v === null || v === undefined || !Number.isFinite(Number(v))) return '–';
  return duration(Number(v) * 1e6);
}

// A point in time on the session's clock, as an offset from its start.
export function time(ns) {
  return duration(ns);
}

// Integer counts with thousands separators: 100000 -> "100,000". Not toLocaleString: its first
// call loads the locale's ICU data, ~25 ms on the first render's critical path (bench/page/trace.mjs).
export function count(n) {
  if (n === null || n === undefined || !Number.isFinite(Number(n))) return '–';
  return String(Math.round(Number(n))).replace(/\B(?=(\d{3})+(?!\d))/g, ','); // String(-0) is "0"
}

// The unit and decimals that make ticks `step` ns apart distinct and short.
// step is a 1-2-5 multiple of a power of ten, so in its own unit it needs no decimals, and one
// unit up (see below) at most one: e.g. step 500 µs labelled in ms gets 1 decimal.
// A share of requests (a session's `fraction`): "1 in 10 requests" when it is one in a whole
// number (0.25: "1 in 4 requests"), else "30% of requests".
export function share(f) {
  const inv = 1 / f;
  const whole = Math.round(inv);
  if (whole >= 2 && Math.abs(inv - whole) <= 1e-6 * inv) return `1 in ${count(whole)} requests`;
  return `${Number((f * 100).toPrecision(3))}% of requests`;
}

export function tickUnit(step) {
  let u = unitFor(step);
  // Steps of 100 units and more read better one unit up: 500 µs steps as 0.5, 1.0, 1.5 ms.
  const up = UNITS.indexOf(u) - 1;
  if (step / u.ns >= 100 && up >= 0) u = UNITS[up];
  let decimals = 0;
  let v = step / u.ns;
  while (decimals < 9 && Math.abs(v - Math.round(v)) > 1e-9 * Math.max(1, v)) {
    v *= 10;
    decimals++;
  }
  return { unit: u, decimals };
}

// An axis label for time t with ticks `step` ns apart: "12.5 ms", "+350 ns" (relative form).
export function tick(t, step, relative = false) {
  const { unit, decimals } = tickUnit(step);
  const s = `${(t / unit.ns).toFixed(decimals)} ${unit.name}`;
  return relative ? `+${s}` : s;
}

// Full precision offset, for the base of a deep-zoomed axis: "1.234567890 s".
export function precise(ns) {
  ns = Math.round(Number(ns));
  if (Math.abs(ns) < 1000) return `${ns} ns`;
  const s = Math.floor(ns / 1e9);
  const rest = String(ns - s * 1e9).padStart(9, '0');
  return `${s}.${rest} s`;
}

// Wall-clock time, in the browser's time zone, from the API's decimal-string Unix nanoseconds:
// "2026-11-25 17:30:00". Unreadable input gives "–".
export function wallClock(ns) {
  if (typeof ns !== 'string' || !/^\d{1,20}$/.test(ns)) return '–';
  const d = new Date(Number(BigInt(ns) / 1000000n));
  if (Number.isNaN(d.getTime())) return '–';
  const p = (v) => String(v).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

// "file.py:45" from an item that may lack either part.
export function place(file, line) {
  if (!file) return '';
  return line ? `${file}:${line}` : String(file);
}

// place(file, line) in at most `max` characters where it can be: leading directories give way to
// "…/" one by one, never the file's own name or the line (a narrow blocking band keeps
// "…/shop_app.py:85" rather than "/home/me/src/sh…"). Longer than `max` when the name alone is.
export function shortPlace(file, line, max) {
  const full = place(file, line);
  if (full.length <= max) return full;
  const parts = String(file).split('/');
  const tail = line ? `:${line}` : '';
  let best = full;
  for (let i = 1; i < parts.length; i++) {
    if (!parts[i]) continue;
    const cut = `…/${parts.slice(i).join('/')}${tail}`;
    if (cut.length < best.length) best = cut;
    if (best.length <= max) break;
  }
  return best;
}

// How a task ended, in words: "responded 200" for a request's task that sent an HTTP response
// (`status`), followed by its state when that is not ok ("responded 500, error"); otherwise its
// state, "running" without a `done`, "?" for a state this page does not know.
export function ending(t) {
  if (t.ended === null || t.ended === undefined) return 'running';
  const state = ['ok', 'cancelled', 'error'].includes(t.state) ? t.state : '?';
  const status = Number(t.status);
  if (t.status === null || t.status === undefined || !Number.isInteger(status)) return state;
  return state === 'ok' ? `responded ${status}` : `responded ${status}, ${state}`;
}
