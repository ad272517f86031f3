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
    // the draw is seen at once, in the microtask checkpoint of the task that drew (a timer poll
    // could run only after the frame showing the draw, and its requestAnimationFrame then timed
    // the frame after that one, up to ~20 ms more)
    const seen = new MutationObserver(() => {
      if (Number(tl.dataset.drawn) <= n) return;
      seen.disconnect();
      const drawnAt = performance.getEntriesByName('ls:drawn').pop().startTime;
      const asked = performance.getEntriesByType('resource').filter((e) => e.startTime >= t0 && /\/(rows|timeline)\?/.test(e.name));
      const last = asked[asked.length - 1];
      requestAnimationFrame(() => setTimeout(() => resolve({
        frac, ms: drawnAt - t0, painted: performance.now() - t0,
        sent: last ? last.startTime - t0 : NaN, answered: last ? last.responseEnd - t0 : NaN,
        bytes: last ? last.decodedBodySize : 0,
      }), 0));
    });
    seen.observe(tl, { attributes: true, attributeFilter: ['data-drawn'] });
    performance.mark('bench:scroll'); // where the step starts in a Chromium trace (scroll.mjs --trace)
    s.scrollTop = Math.floor((s.scrollHeight - s.clientHeight) * frac);
  }), f);
}
