// live.js — a page watching a session being recorded, or the sessions list, through the
// server's event streams (api.events): the "live" marker and the follow-the-end toggle, and the
// events handed to the page's callbacks. What to redraw is session.js's / sessions.js's.
import * as api from './api.js';
import { h } from './dom.js';

// Keeps a stream open only while the tab is visible: a browser gives one site six HTTP/1.1
// connections, so tabs in the background holding event streams would starve the tab in front.
// open() opens the stream and returns its close(); it runs again when the tab comes back (each
// stream starts with the whole state, so nothing is missed). Returns stop().
function whileVisible(open) {
  let close = document.hidden ? null : open();
  const onVis = () => {
    if (document.hidden && close) {
      close();
      close = null;
    } else if (!document.hidden && !close) {
      close = open();
    }
  };
  document.addEventListener('visibilitychange', onVis);
  return () => {
    document.removeEventListener('visibilitychange', onVis);
    if (close) close();
    close = null;
  };
}

const parse = (ev) => {
  try {
    return JSON.parse(ev.data);
  } catch {
    return null;
  }
};

// Watches session `id` while it records. onUpdate(summary) for each state/update event (the
// first one on every (re)connect is the whole state); onEnd(reason) once it has ended or was
// deleted, after which the stream is closed for good (EventSource would reconnect otherwise).
// Returns stop().
export function watchSession(id, { onUpdate, onEnd }) {
  let done = false, stop = null;
  const finish = (reason) => {
    if (done) return;
    done = true;
    stop();
    onEnd(reason);
  };
  stop = whileVisible(() => {
    const es = api.events(id);
    const update = (ev) => {
      const sum = parse(ev);
      if (sum && !done) onUpdate(sum);
    };
    es.addEventListener('state', update);
    es.addEventListener('update', update);
    es.addEventListener('end', () => finish('ended'));
    es.addEventListener('deleted', () => finish('deleted'));
    return () => es.close();
  });
  return () => {
    done = true;
    stop();
  };
}

// Watches the sessions list: onSession(summary) for a session stored or changed, onDeleted(id),
// onReset() when the stream is (re)connected (what was stored before it may have been missed:
// the list is to be asked again) and when the server says too much changed at once.
// Returns stop().
export function watchSessions({ onSession, onDeleted, onReset }) {
  return whileVisible(() => {
    const es = api.events(null);
    es.addEventListener('ready', () => onReset());
    es.addEventListener('session', (ev) => {
      const s = parse(ev);
      if (s && typeof s.id === 'string') onSession(s);
    });
    es.addEventListener('deleted', (ev) => {
      const d = parse(ev);
      if (d && typeof d.id === 'string') onDeleted(d.id);
    });
    es.addEventListener('reset', () => onReset());
    return () => es.close();
  });
}

// The "live" marker and the follow-the-end toggle, placed after `after`. follow() says whether
// the view should keep the session's end in sight; ended() turns the marker off.
export function controls(after, { follow = true } = {}) {
  const box = h('span', { id: 'live', class: 'live' });
  after.after(box);
  const marker = box.appendChild(h('span', { class: 'live-marker', title: 'the session is still being recorded' }, 'live'));
  const label = box.appendChild(h('label', { class: 'live-follow' }));
  const input = label.appendChild(h('input', { type: 'checkbox', id: 'live-follow' }));
  input.checked = follow;
  label.appendChild(document.createTextNode(' follow the end'));
  return {
    follow: () => input.checked,
    setFollow: (on) => { input.checked = on; },
    ended: () => {
      box.classList.add('ended');
      marker.textContent = 'ended';
      marker.title = 'the session has ended';
      label.remove();
    },
  };
}
