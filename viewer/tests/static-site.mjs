// The static site `chizu publish-site` writes, in Chromium, served by nginx
// (tests/static_site_e2e.rs starts it): the public map draws from the PMTiles
// archive alone, answers a click from the drawn features, and asks nothing of
// a chizu server. CHIZU_FACTS: { base, artifacts, parcel: {lon, lat, chiban} }.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const facts = JSON.parse(process.env.CHIZU_FACTS);
const { base, artifacts, parcel } = facts;
mkdirSync(artifacts, { recursive: true });

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
const log = { errors: [], requests: [], failed: [] };
page.on('console', (m) => { if (m.type() === 'error') log.errors.push(m.text()); });
page.on('pageerror', (e) => log.errors.push(`page error: ${e.message}`));
page.on('request', (r) => log.requests.push({ url: r.url(), range: r.headers().range ?? null }));
page.on('response', (r) => { if (r.status() >= 400) log.failed.push(`${r.url()} -> ${r.status()}`); });
const report = {};
try {
  await page.goto(`${base}/#18/${parcel.lat}/${parcel.lon}`);
  await page.waitForFunction(() => window.chizu?.map?.loaded() && document.getElementById('map').dataset.state === 'idle', null, { timeout: 60000 });
  await page.waitForTimeout(500);
  await page.waitForFunction(() => document.getElementById('map').dataset.state === 'idle', null, { timeout: 30000 });
  const drawn = await page.evaluate(() => {
    const map = window.chizu.map;
    const layers = {};
    for (const f of map.queryRenderedFeatures()) layers[f.sourceLayer] = (layers[f.sourceLayer] ?? 0) + 1;
    return { layers, zoom: map.getZoom(), search: document.getElementById('search').hidden };
  });
  report.drawn = drawn;
  check(drawn.layers.parcels > 10, `parcels drawn from the archive: ${JSON.stringify(drawn.layers)}`);
  check(drawn.search === true, 'the search form is hidden on a static site');
  check(!('water_pipes' in drawn.layers), 'no staff layer');
  // A click on the lot: the popup from the drawn features, with its lot number.
  const point = await page.evaluate(({ lon, lat }) => {
    const p = window.chizu.map.project([lon, lat]);
    const r = document.getElementById('map').getBoundingClientRect();
    return { x: r.left + p.x, y: r.top + p.y };
  }, parcel);
  await page.mouse.click(point.x, point.y);
  await page.waitForSelector('.what-is-here section[data-layer="parcels"]', { timeout: 15000 });
  const shown = await page.locator('.what-is-here section[data-layer="parcels"] td[data-field="chiban"]').first().getAttribute('data-value');
  report.popup_chiban = shown;
  check(shown === parcel.chiban, `popup shows ${shown}, expected ${parcel.chiban}`);
  await page.waitForFunction(() => document.getElementById('map').dataset.selection?.startsWith('parcels:'), null, { timeout: 10000 });
  await page.screenshot({ path: join(artifacts, 'static-site.png') });
  const archive = log.requests.filter((r) => r.url.endsWith('/public.pmtiles'));
  report.archive_requests = archive.length;
  check(archive.length > 0 && archive.every((r) => r.range?.startsWith('bytes=')), 'tiles are read from the archive with byte ranges');
  const foreign = log.requests.filter((r) => !r.url.startsWith(base) && !r.url.startsWith('data:') && !r.url.startsWith('blob:'));
  check(foreign.length === 0, `requests outside the site: ${foreign.map((r) => r.url).join(', ')}`);
  const server = log.requests.filter((r) => /^\/(tiles|catalog|search|query|ogc|auth|styles\/staff)(\/|$)/.test(new URL(r.url).pathname));
  check(server.length === 0, `requests a chizu server would answer: ${server.map((r) => r.url).join(', ')}`);
  check(log.failed.length === 0, `failed requests: ${log.failed.join(', ')}`);
  check(log.errors.length === 0, `console errors: ${log.errors.join(' | ')}`);
  report.requests = log.requests.length;
} catch (error) {
  await page.screenshot({ path: join(artifacts, 'static-site-failure.png') }).catch(() => {});
  console.error(JSON.stringify(log, null, 1).slice(0, 4000));
  throw error;
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
