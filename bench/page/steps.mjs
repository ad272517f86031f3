// steps.mjs — the timed scroll step both page benchmarks share (run.mjs, scroll.mjs).

// One scroll step to fraction f of the lanes, measured in the page: from the scroll to the next
// fresh draw (which needs a /rows window with its lanes' items, or /timeline for rows in hand;
// `ms`, the page's own 'ls:drawn' mark) and to the end of the frame that shows it (`painted`: the
// frame's style, layout and paint on the main thread, after a requestAnimationFrame), with when
// the step's last request left and was answered (ms after the scroll) and its bytes.
export async function scrollStep(page, f) {
  return page.evaluate((frac) => new Promise((resolve) => {
    const tl = document.getElementById('timeline');
    const n = Number(tl.dataset.drawn);
    const s = document.getElementById('lanes-scroll');
    const t0 = performance.now();
    performance.mark('bench:scroll'); // where the step starts in a Chromium trace (scroll.mjs --trace)
    s.scrollTop = Math.floor((s.scrollHeight - s.clientHeight) * frac);
    const poll = () => {
      if (Number(tl.dataset.drawn) <= n) return setTimeout(poll, 1);
      const drawnAt = performance.getEntriesByName('ls:drawn').pop().startTime;
      const asked = performance.getEntriesByType('resource').filter((e) => e.startTime >= t0 && /\/(rows|timeline)\?/.test(e.name));
      const last = asked[asked.length - 1];
      requestAnimationFrame(() => setTimeout(() => resolve({
        frac, ms: drawnAt - t0, painted: performance.now() - t0,
        sent: last ? last.startTime - t0 : NaN, answered: last ? last.responseEnd - t0 : NaN,
        bytes: last ? last.decodedBodySize : 0,
      }), 0));
    };
    poll();
  }), f);
}
