// What a resident's first visit to the public map costs: bytes over the wire
// (CDP's encodedDataLength: compressed, headers included), requests, and the
// time from navigation to the first fully drawn map (#map[data-state=idle]),
// in a fresh browser context each time (nothing cached). Median of RUNS.
//   node tests/page-weight.mjs http://127.0.0.1:8080/#15/33.1036/130.0991 [URL...]
// scripts/page-weight.sh serves today's viewer and an earlier one side by side.
import { chromium } from 'playwright-core';

const RUNS = Number(process.env.RUNS || 5);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

async function visit(url) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'ja-JP' });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  let bytes = 0;
  let requests = 0;
  cdp.on('Network.loadingFinished', (e) => { bytes += e.encodedDataLength; requests += 1; });
  const started = performance.now();
  await page.goto(url);
  await page.waitForSelector('#map[data-state=idle]', { timeout: 60_000 });
  const ms = performance.now() - started;
  await context.close();
  return { bytes, requests, ms };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = [];
for (const url of process.argv.slice(2)) {
  const runs = [];
  // Interleaving would mix the servers' warm caches; each URL warms once first.
  await visit(url);
  for (let i = 0; i < RUNS; i++) runs.push(await visit(url));
  rows.push({
    url,
    kB: Math.round(median(runs.map((r) => r.bytes)) / 1000),
    requests: median(runs.map((r) => r.requests)),
    ms: Math.round(median(runs.map((r) => r.ms))),
    msRange: [Math.round(Math.min(...runs.map((r) => r.ms))), Math.round(Math.max(...runs.map((r) => r.ms)))],
  });
}
await browser.close();
for (const r of rows) console.log(`${r.url}\t${r.kB} kB\t${r.requests} requests\t${r.ms} ms (${r.msRange[0]}-${r.msRange[1]})`);
