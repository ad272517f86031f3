// seed.mjs — posts seed sessions (seed-data.mjs) to a running loopscope server's ingest
// endpoint. Usage: node seed.mjs http://127.0.0.1:PORT small hostile running listed [large[=TASKS]]
// Also imported by the benchmark (postAll). Only loopback URLs are accepted.
import * as data from './seed-data.mjs';

export async function post(base, batch) {
  const res = await fetch(`${base}/api/v1/ingest`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(batch),
  });
  const text = await res.text();
  if (res.status !== 202 && res.status !== 200) {
    throw new Error(`ingest ${batch.batch}: HTTP ${res.status} ${text.slice(0, 300)}`);
  }
  return res.status;
}

export async function postAll(base, batches) {
  let n = 0;
  for (const b of batches) {
    await post(base, b);
    n++;
  }
  return n;
}

function checkLoopback(base) {
  const u = new URL(base);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) throw new Error(`seed: refusing non-loopback ${base}`);
}

async function cli(argv) {
  const [base, ...what] = argv;
  if (!base) throw new Error('usage: node seed.mjs http://127.0.0.1:PORT small hostile running listed [large[=TASKS]]');
  checkLoopback(base);
  for (const w of what.length ? what : ['small', 'hostile']) {
    const t0 = Date.now();
    let n;
    if (w === 'small') n = await postAll(base, data.smallBatches());
    else if (w === 'hostile') n = await postAll(base, data.hostileBatches());
    else if (w === 'running') n = await postAll(base, data.runningBatches());
    else if (w === 'listed') n = await postAll(base, data.listedBatches());
    else if (w.startsWith('large')) {
      const tasks = Number(w.split('=')[1] || 100000);
      n = await postAll(base, data.largeBatches({ id: `s-large-${tasks}`, tasks }));
    } else throw new Error(`seed: unknown session kind ${w}`);
    console.log(`seed: ${w}: ${n} batches in ${Date.now() - t0} ms`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  cli(process.argv.slice(2)).catch((e) => {
    console.error(e.message);
    process.exit(1);
  });
}
