// details.js — what the tooltip says about a task, a lane item (run step or await) or a blocking
// event: a list of [label, value] lines (the first is the title), formatted through format.js.
// Pure: session.js shows the lines, as text nodes.
import * as fmt from './format.js';
import { laneLabel } from './timeline.js';

// `duration` is the session's (ns): a task with no `done` was still running at its end.
export function task(t, duration) {
  const lines = [[null, laneLabel(t)]];
  lines.push(['task', `#${t.id}${t.parent ? ` (parent #${t.parent})` : ''}`]);
  lines.push(['created', fmt.time(t.created)]);
  if (t.ended !== null && t.ended !== undefined) lines.push(['ended', `${fmt.time(t.ended)} (${fmt.ending(t)})`]);
  else {
    lines.push(['state', 'running: not done when the session ended']);
    if (Number.isFinite(duration)) lines.push(['alive', `≥ ${fmt.duration(Math.max(0, duration - t.created))}`]);
  }
  lines.push(['busy / waiting', `${fmt.duration(t.busy_ns)} / ${fmt.duration(t.wait_ns)}`]);
  if (t.exc) lines.push(['exception', t.exc]);
  return lines;
}

// A timeline item of task t; `n` > 1 means the item stands for n narrower ones (level of detail).
export function item(t, it) {
  const lines = [[null, laneLabel(t)]];
  lines.push([it.k === 'await' ? 'await' : 'run step', `${fmt.duration(it.d)} at ${fmt.time(it.t)}`]);
  if (it.n > 1) lines.push(['stands for', `${fmt.count(it.n)} items (longest shown)`]);
  if (it.k === 'await') {
    if (it.what) lines.push(['awaiting', it.what]);
    if (it.file) lines.push(['at', fmt.place(it.file, it.line)]);
    if (it.func) lines.push(['in', it.func]);
  }
  return lines;
}

// A blocking event (timeline form: innermost frame's file, line, func, src) and its task if known.
export function block(b, t) {
  const lines = [[null, `loop blocked ${fmt.duration(b.d)}${b.elsewhere ? ' from elsewhere' : ''}`]];
  lines.push(['at', fmt.time(b.t)]);
  if (b.elsewhere) {
    lines.push(['caused by', b.from_session ? `session ${b.from_session}` : 'no session (a background task or callback)']);
    if (b.from_task != null) lines.push(['its task', `#${b.from_task}`]);
  }
  if (b.file) lines.push(['culprit', fmt.place(b.file, b.line)]);
  if (b.src) lines.push(['source', b.src]);
  if (b.func) lines.push(['in', b.func]);
  // when the watchdog took the stack: half the threshold in, or later when its thread got no CPU,
  // and a stack taken late may name code that ran after the blocking call (docs/api.md)
  if (b.stack_t != null) lines.push(['stack taken', `${fmt.duration(b.stack_t)} into the block`]);
  if (t) lines.push(['task', t.name]);
  if (b.n > 1) lines.push(['stands for', `${fmt.count(b.n)} blocks (longest shown)`]);
  return lines;
}

// A lag sample, and when a block explains it, what it waited behind: the session's own block, or
// one from elsewhere (the causing session, or none), at the culprit line. The server matches them
// (the sample's `cause`, docs/api.md: the block overlapping [t - d, t + d) most).
export function lag(p) {
  const lines = [[null, `loop lag ${fmt.duration(p.d)}`], ['at', fmt.time(p.t)]];
  const b = p.cause;
  if (b) {
    const who = !b.elsewhere ? 'its own block' : b.from_session ? `session ${b.from_session}` : 'no session';
    lines.push(['waited behind', `${who}${b.file ? ` at ${fmt.place(b.file, b.line)}` : ''}`]);
    if (b.src) lines.push(['source', b.src]);
  }
  return lines;
}
