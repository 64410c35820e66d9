// The web maps in a real browser: Debian's Chromium, driven by playwright-core.
// Run by tests/browser_e2e.rs, which starts chizu on a free port with a fresh
// sample city and passes what it knows of the data in CHIZU_FACTS:
//   { base, artifacts, staff: {user, password},
//     parcel: {id, chiban, youto, lon, lat}, search: {q, id, lon, lat, bbox},
//     pipe: {id, diameter_mm, material, install_year, lon, lat} }
// Every check throws with a message; the process exits non-zero on the first
// failure. The last line of stdout is a JSON report the Rust test cross-checks
// with GDAL (the query the page ran, the file it downloaded).
import { chromium } from 'playwright-core';
import { PNG } from 'pngjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const facts = JSON.parse(process.env.CHIZU_FACTS);
const { base, artifacts } = facts;
mkdirSync(artifacts, { recursive: true });
const report = {};

// The flags shared/notes/dependencies.md gives for a closed network; playwright
// launches with a fresh profile directory of its own.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

/** Records everything a page does that a check may need. */
let currentPage = null; // saved as failure.png when a check fails
let currentLog = null;
let watchLog = null;

function watch(page) {
  currentPage = page;
  const log = { errors: [], failed: [], requests: [], bodies: [] };
  currentLog = log;
  page.on('console', (m) => { if (m.type() === 'error') log.errors.push(m.text()); });
  page.on('pageerror', (e) => log.errors.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => {
    // MapLibre cancels tiles it no longer needs while the map moves: the
    // browser reports those as aborted, which is not a failure of the server.
    if (r.failure()?.errorText === 'net::ERR_ABORTED') return;
    log.failed.push(`${r.url()} (${r.failure()?.errorText})`);
  });
  page.on('request', (r) => log.requests.push(r.url()));
  page.on('response', async (r) => {
    if (r.status() >= 400) log.failed.push(`${r.url()} -> ${r.status()}`);
    const type = r.headers()['content-type'] || '';
    if (type.includes('json')) {
      try { log.bodies.push({ url: r.url(), text: await r.text() }); } catch { /* navigated away */ }
    }
  });
  return log;
}

function assertClean(log, where) {
  check(log.errors.length === 0, `${where}: console errors: ${log.errors.join(' | ')}`);
  check(log.failed.length === 0, `${where}: failed requests: ${log.failed.join(' | ')}`);
}

/** Runs `action`, then waits until the map has drawn everything it needs. */
async function settle(page, action = async () => {}) {
  await page.$eval('#map', (el) => { el.dataset.state = 'waiting'; });
  await action();
  await page.waitForSelector('#map[data-state=idle]', { timeout: 30_000 });
}

async function mapShot(page, path) {
  const png = await page.locator('#map').screenshot(path ? { path } : {});
  return PNG.sync.read(png);
}

/** Share of pixels that differ clearly between two screenshots. */
function changedShare(a, b) {
  check(a.width === b.width && a.height === b.height, 'screenshots of the same size');
  let changed = 0;
  for (let i = 0; i < a.data.length; i += 4) {
    const d = Math.max(Math.abs(a.data[i] - b.data[i]), Math.abs(a.data[i + 1] - b.data[i + 1]), Math.abs(a.data[i + 2] - b.data[i + 2]));
    if (d > 24) changed++;
  }
  return changed / (a.width * a.height);
}

async function setLayer(page, id, visible) {
  await settle(page, () => page.locator(`#layer-list input[data-layer="${id}"]`).setChecked(visible));
}

function hashCenter(url) {
  const [zoom, lat, lon] = new URL(url).hash.slice(1).split('/').map(Number);
  return { zoom, lat, lon };
}

function metres(a, b) {
  const k = Math.PI / 180;
  const x = (b.lon - a.lon) * k * Math.cos(((a.lat + b.lat) / 2) * k);
  const y = (b.lat - a.lat) * k;
  return Math.hypot(x, y) * 6_371_000;
}

const STAFF_WORDS = ['water_pipes', 'owner_name', 'pressure_class', 'diameter_mm', '上下水道', '所有者'];

/** Moves the map and waits until it has drawn everything. */
async function jump(page, view) {
  await settle(page, () => page.evaluate((v) => window.chizu.map.jumpTo(v), view));
}

/** Label texts drawn by a symbol layer now, with where they are. */
async function renderedLabels(page, layer) {
  return page.evaluate((id) => window.chizu.map.queryRenderedFeatures({ layers: [id] })
    .map((f) => ({ text: f.properties.chiban ?? f.properties.route_name, at: f.geometry.coordinates })), layer);
}

/** Clicks the map at a longitude/latitude (fractional pixels: the measuring checks are tight). */
async function clickAt(page, lonLat) {
  const box = await page.locator('#map').boundingBox();
  const p = await page.evaluate((ll) => window.chizu.map.project(ll), lonLat);
  await page.mouse.click(box.x + p.x, box.y + p.y);
}

/** One label per lot and per road name: no text twice in view, over several views. */
async function labelsOnce(page) {
  const { parcel } = facts;
  const views = [[0, 0], [0.0015, 0.0008], [-0.0015, -0.0008], [0.0016, -0.0009], [-0.0012, 0.001]];
  let seen = 0;
  for (const [dx, dy] of views) {
    await jump(page, { center: [parcel.lon + dx, parcel.lat + dy], zoom: 18 });
    const labels = await renderedLabels(page, 'parcels-chiban');
    seen += labels.length;
    const byText = new Map();
    for (const l of labels) {
      const other = byText.get(l.text);
      // The same number in another district is another lot: it is far away.
      check(!other || metres({ lon: other[0], lat: other[1] }, { lon: l.at[0], lat: l.at[1] }) > 80,
        `lot ${l.text} is labelled twice in view at ${dx},${dy}`);
      byText.set(l.text, l.at);
    }
  }
  check(seen > 40, `lot labels were drawn (${seen})`);
  report.lotLabelsChecked = seen;
  // Road names: a name is labelled once in the whole city, so look where
  // the loaded tiles put some, and around them.
  await jump(page, { center: [parcel.lon, parcel.lat], zoom: 15 });
  const anchors = await page.evaluate(() => window.chizu.map.querySourceFeatures('chizu',
    { sourceLayer: 'roads', filter: ['==', ['geometry-type'], 'Point'] }).slice(0, 4)
    .map((f) => window.chizu.map.unproject(window.chizu.map.project(f.geometry.coordinates)).toArray()));
  check(anchors.length > 0, 'road name points in the tiles');
  let roads = 0;
  for (const anchor of anchors) {
    await jump(page, { center: anchor, zoom: 16 });
    const labels = await renderedLabels(page, 'roads-name');
    roads += labels.length;
    const texts = labels.map((l) => l.text);
    check(new Set(texts).size === texts.length, `a road name twice in view: ${texts.join(', ')}`);
  }
  check(roads > 0, 'road names were drawn');
  report.roadLabelsChecked = roads;
}

/** Runs a search from the box and returns the listed results. */
async function searchFor(page, q) {
  await page.fill('#search-input', q);
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().includes('/search?')),
    page.press('#search-input', 'Enter'),
  ]);
  const body = await response.json();
  await page.waitForSelector('#search-results li[data-kind]', { state: 'attached' });
  const groups = await page.locator('#search-results li.group').allTextContents();
  return { body, groups };
}

async function searchForms(page) {
  const { lot, road } = facts;
  const [a, b] = lot.chiban.split('-');
  for (const q of [`${a}番${b}`, `${a}番地${b}`, `${a}の${b}`, `${lot.oaza}${lot.chiban}`, `大字${lot.oaza}${a}番地${b}`]) {
    const { body } = await searchFor(page, q);
    check(body.results.some((r) => r.id === lot.id), `"${q}" finds lot ${lot.oaza} ${lot.chiban}`);
  }
  // A district: one result, the district itself, first.
  const district = await searchFor(page, lot.oaza);
  const first = district.body.results[0];
  check(first.place && first.label === lot.oaza, `"${lot.oaza}" finds the district first: ${JSON.stringify(first)}`);
  check(district.body.results.filter((r) => r.place && r.label === lot.oaza).length === 1, 'the district once');
  check(district.groups[0] === '大字', `results grouped by kind: ${district.groups}`);

  await page.waitForFunction((bbox) => {
    const b = window.chizu.map.getBounds();
    const c = window.chizu.map.getCenter();
    return c.lng > bbox[0] && c.lng < bbox[2] && c.lat > bbox[1] && c.lat < bbox[3] && b.getEast() - b.getWest() > (bbox[2] - bbox[0]) * 0.5;
  }, first.bbox, { timeout: 15_000 });
  // A road: one result for all its segments.
  const found = await searchFor(page, road.name);
  const roads = found.body.results.filter((r) => r.layer === 'roads');
  check(roads.length === 1 && roads[0].place && roads[0].features === road.segments,
    `"${road.name}" is one road of ${road.segments} segments: ${JSON.stringify(roads)}`);
  // For the docs: a query many roads and districts answer, grouped.
  const many = await searchFor(page, road.name.slice(0, 2));
  check(many.body.results.length > 1, `several results for ${road.name.slice(0, 2)}`);
  await page.waitForTimeout(900); // the flight to the first
  await page.screenshot({ path: join(artifacts, 'search.png') });
  report.searchForms = 'ok';
  await page.keyboard.press('Escape');
}

/** Measures a parcel's first edge and its area, clicking its corners at z20. */
async function measuring(page) {
  const { parcel } = facts;
  const ring = parcel.ring.slice(0, -1);
  await jump(page, { center: [parcel.lon, parcel.lat], zoom: 20 });
  await page.click('#tool-measure');
  await page.waitForSelector('#measure-panel');
  await clickAt(page, parcel.ring[parcel.edgeStart]);
  await clickAt(page, parcel.ring[parcel.edgeStart + 1]);
  const edge = Number(await page.locator('#measure-readout').getAttribute('data-metres'));
  const edgeError = Math.abs(edge - parcel.edge6670) / parcel.edge6670;
  check(edgeError < 0.005, `edge ${edge.toFixed(3)} m vs ${parcel.edge6670.toFixed(3)} m in EPSG:6670`);
  await page.click('#measure-panel menu button:first-child');
  await page.click('#measure-panel button[data-mode=area]');
  for (const corner of ring) await clickAt(page, corner);
  const area = Number(await page.locator('#measure-readout').getAttribute('data-square-metres'));
  const areaError = Math.abs(area - parcel.area6670) / parcel.area6670;
  check(areaError < 0.005, `area ${area.toFixed(2)} m² vs ${parcel.area6670.toFixed(2)} m² in EPSG:6670`);
  check((await page.locator('#measure-readout').innerText()).includes('ha'), 'area also in hectares');
  report.measure = { edge, edge6670: parcel.edge6670, area, area6670: parcel.area6670 };
  await page.locator('#map').screenshot({ path: join(artifacts, 'measure.png') });
  await page.click('#measure-panel menu button:last-child');
}

/**
 * Measures a horizontal line at z18, then prints at 1:1000 on A4: the Rust
 * side renders the PDF with pdftoppm and checks the line's printed length.
 */
async function printing(page) {
  const { parcel } = facts;
  await jump(page, { center: [parcel.lon, parcel.lat], zoom: 18 });
  await page.click('#tool-measure');
  const box = await page.locator('#map').boundingBox();
  const y = box.y + box.height / 2;
  await page.mouse.click(box.x + box.width / 2 - 200, y);
  await page.mouse.click(box.x + box.width / 2 + 200, y);
  const metresDrawn = Number(await page.locator('#measure-readout').getAttribute('data-metres'));
  check(metresDrawn > 50, `a line to print (${metresDrawn} m)`);
  const requestsBefore = currentLog.requests.length;
  await page.click('#tool-print');
  await page.waitForSelector('#print-dialog[open]');
  await page.selectOption('#print-form select[name=scale]', '1000');
  await page.selectOption('#print-form select[name=paper]', 'A4');
  await page.selectOption('#print-form select[name=orientation]', 'portrait');
  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: 180_000 }),
    page.click('#print-make'),
  ]);
  const file = join(artifacts, 'print.pdf');
  await download.saveAs(file);
  check(currentLog.requests.slice(requestsBefore).some((u) => u.includes('jspdf')), 'jsPDF is loaded when printing');
  report.print = { file, metres: metresDrawn, scale: 1000 };
  await page.keyboard.press('Escape');
  await page.click('#measure-panel menu button:last-child');
}

/** The share link restores layers, selection and language in a fresh page. */
async function sharing(page) {
  const { parcel } = facts;
  await jump(page, { center: [parcel.lon, parcel.lat], zoom: 18 });
  await setLayer(page, 'hazard', true);
  await setLayer(page, 'zoning', false);
  const box = await page.locator('#map').boundingBox();
  await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
  await page.waitForSelector(`#map[data-selection="parcels:${parcel.id}"]`);
  await page.keyboard.press('Escape');
  await page.click('#tool-share');
  const url = await page.locator('#share-url').inputValue();
  await page.keyboard.press('Escape');
  const layers = async (p) => p.locator('#layer-list input[data-layer]').evaluateAll((inputs) =>
    Object.fromEntries(inputs.map((i) => [i.dataset.layer, i.checked])));
  const before = await layers(page);
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US' });
  const fresh = await context.newPage();
  const log = watch(fresh);
  await fresh.goto(url);
  await fresh.waitForSelector('#map[data-state=idle]', { timeout: 60_000 });
  await fresh.waitForSelector(`#map[data-selection="parcels:${parcel.id}"]`, { timeout: 15_000 });
  const after = await layers(fresh);
  check(JSON.stringify(after) === JSON.stringify(before), `same layers: ${JSON.stringify(before)} vs ${JSON.stringify(after)}`);
  check(before.hazard === true && before.zoning === false, 'the changed layers are in the link');
  check((await fresh.locator('h1').innerText()) === '鹿島市 公開地図', 'the link keeps the language');
  const centre = await fresh.evaluate(() => window.chizu.map.getCenter());
  check(metres({ lon: centre.lng, lat: centre.lat }, parcel) < 5, 'the link keeps the view');
  const highlighted = await fresh.evaluate(() => window.chizu.map.queryRenderedFeatures({ layers: ['chizu-highlight-line'] }).length);
  check(highlighted > 0, 'the selected lot is outlined');
  assertClean(log, 'shared link');
  await context.close();
  currentPage = page;
  currentLog = watchLog;
  await setLayer(page, 'hazard', false);
  await setLayer(page, 'zoning', true);
}

// ------------------------------------------------------------ public map --

async function publicMap() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'ja-JP' });
  const page = await context.newPage();
  const log = watch(page);
  watchLog = log;
  const { parcel } = facts;
  // Page weight and time to the first drawn map, as a resident's first visit.
  const started = Date.now();
  let bytes = 0;
  page.on('response', async (r) => {
    const length = Number(r.headers()['content-length']);
    if (Number.isFinite(length) && length > 0) bytes += length;
    else bytes += (await r.body().catch(() => Buffer.alloc(0))).length;
  });
  await page.goto(`${base}/#18/${parcel.lat}/${parcel.lon}`);
  await page.waitForSelector('#map[data-state=idle]', { timeout: 60_000 });
  report.firstMap = { ms: Date.now() - started, bytes, requests: log.requests.length };
  check(!log.requests.some((u) => u.includes('tools.js') || u.includes('jspdf')), 'the tools load only when used');
  await page.waitForSelector('#layer-list input[data-layer="parcels"]');
  check(!(await page.locator('#layer-list input[data-layer="hazard"]').isChecked()), 'hazard areas start hidden (the style says so)');

  // Parcels are drawn: the map differs from the same view without them.
  const withParcels = await mapShot(page, join(artifacts, 'public.png'));
  await setLayer(page, 'parcels', false);
  const withoutParcels = await mapShot(page);
  await setLayer(page, 'parcels', true);
  const share = changedShare(withParcels, withoutParcels);
  report.parcelPixelShare = share;
  check(share > 0.01, `parcels change ${(share * 100).toFixed(2)}% of the map's pixels (want > 1%)`);

  // Clicking the parcel shows its chiban and its zoning.
  const box = await page.locator('#map').boundingBox();
  await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
  const popup = page.locator('.what-is-here');
  await popup.locator('section[data-layer="parcels"]').first().waitFor();
  await popup.locator('section[data-layer="zoning"]').first().waitFor();
  const popupText = await popup.innerText();
  check(popupText.includes(parcel.chiban), `popup shows chiban ${parcel.chiban}: ${popupText}`);
  check(popupText.includes(parcel.youto), `popup shows zoning ${parcel.youto}: ${popupText}`);
  check(popupText.includes('地番'), 'popup labels fields in Japanese');
  for (const word of ['所有者', 'owner_name']) check(!popupText.includes(word), `popup hides ${word}`);
  await page.screenshot({ path: join(artifacts, 'public-page.png') });
  await page.keyboard.press('Escape');

  // Searching a lot number flies the map to it.
  const { search } = facts;
  await settle(page, async () => {
    await page.fill('#search-input', search.q);
    await page.press('#search-input', 'Enter');
    await page.waitForFunction((want) => {
      const [, lat, lon] = window.location.hash.slice(1).split('/').map(Number);
      return Math.abs(lat - want.lat) < 0.001 && Math.abs(lon - want.lon) < 0.001;
    }, search, { timeout: 15_000 });
  });
  await page.waitForTimeout(400); // the hash follows the last frame of the flight
  const after = hashCenter(page.url());
  const off = metres(after, search);
  report.searchOffsetMetres = off;
  check(off < 25, `search centred the map ${off.toFixed(1)} m from lot ${search.q}`);
  check(after.zoom >= 16, `search zoomed in to z${after.zoom}`);
  check((await page.locator('#search-results li').count()) >= 0, 'search results listed');

  // English.
  await page.click('#lang-toggle');
  check((await page.locator('h1').innerText()) === 'Kashima City public map', 'English title');
  check((await page.locator('#layer-list li[data-layer="parcels"] label.layer').innerText()).includes('Parcels'), 'English layer names');
  await page.click('#lang-toggle');
  check((await page.locator('h1').innerText()) === '鹿島市 公開地図', 'back to Japanese');

  // Attribution of the data sources is on the page.
  const sources = await page.locator('#source-list').innerText();
  check(sources.includes('気象庁'), `data sources attributed: ${sources}`);

  // Nothing staff-only was requested, loaded or shown.
  for (const url of log.requests) {
    check(!url.includes('/assets/staff.js'), 'the public page never loads the staff code');
    for (const word of STAFF_WORDS) check(!decodeURIComponent(url).includes(word), `public request mentions ${word}: ${url}`);
  }
  for (const { url, text } of log.bodies) {
    for (const word of STAFF_WORDS) check(!text.includes(word), `public response ${url} mentions ${word}`);
  }
  const pageText = await page.locator('body').innerText();
  for (const word of STAFF_WORDS) check(!pageText.includes(word), `public page shows ${word}`);
  check(log.requests.some((u) => /\/tiles\/[^/]*parcels[^/]*\/\d+\/\d+\/\d+\.mvt$/.test(u)), 'parcel tiles were requested');
  check(log.requests.some((u) => u.includes('/fonts/')), 'label glyphs were requested');
  report.publicRequests = log.requests.length;
  assertClean(log, 'public map');

  await labelsOnce(page);
  await searchForms(page);
  await measuring(page);
  await printing(page);
  await sharing(page);
  assertClean(log, 'public map tools');
  const dataPage = await context.newPage();
  await dataPage.goto(`${base}/data`);
  await dataPage.screenshot({ path: join(artifacts, 'data.png'), fullPage: false });
  await dataPage.close();
  currentPage = page;

  // Security headers on the page.
  const response = await page.request.get(`${base}/`);
  const csp = response.headers()['content-security-policy'] || '';
  check(csp.includes("script-src 'self'") && !csp.includes('unsafe-inline') && csp.includes("frame-ancestors 'none'"), `CSP: ${csp}`);
  check(response.headers()['x-content-type-options'] === 'nosniff', 'nosniff');
  await context.close();
}

async function phone() {
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale: 'ja-JP',
  });
  const page = await context.newPage();
  const log = watch(page);
  const { parcel } = facts;
  await page.goto(`${base}/#17/${parcel.lat}/${parcel.lon}`);
  await page.waitForSelector('#map[data-state=idle]', { timeout: 60_000 });
  const map = await page.locator('#map').boundingBox();
  check(map.width >= 389, `the map is as wide as the phone (${map.width})`);
  check(map.height > 600, `the map fills most of the phone's height (${map.height})`);
  const scroll = await page.evaluate(() => document.documentElement.scrollWidth);
  check(scroll <= 390, `no sideways scrolling (${scroll})`);
  check(!(await page.locator('#panel').isVisible()), 'the layer panel is tucked away until asked for');
  await page.screenshot({ path: join(artifacts, 'public-phone.png') });
  await settle(page, () => page.click('#panel-toggle'));
  const panel = await page.locator('#panel').boundingBox();
  const shrunk = await page.locator('#map').boundingBox();
  check(panel.y > 300 && panel.y < 844 && shrunk.height < map.height, `the layer list opens below a smaller map (${panel.y})`);
  const phoneMap = await mapShot(page);
  let drawn = 0;
  for (let i = 0; i < phoneMap.data.length; i += 4) if (phoneMap.data[i] + phoneMap.data[i + 1] + phoneMap.data[i + 2] < 720) drawn++;
  check(drawn / (phoneMap.width * phoneMap.height) > 0.5, 'the map is still drawn with the layer list open');
  await page.screenshot({ path: join(artifacts, 'public-phone-layers.png') });
  assertClean(log, 'phone');
  await context.close();
}

// ------------------------------------------------------------- staff map --

async function staffMap() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'ja-JP', acceptDownloads: true });
  const page = await context.newPage();
  const log = watch(page);
  const { pipe } = facts;
  await page.goto(`${base}/staff#17/${pipe.lat}/${pipe.lon}`);
  await page.waitForSelector('#map[data-state=idle]', { timeout: 60_000 });
  await page.waitForSelector('#login:not([hidden])');
  await page.waitForSelector('#layer-list input[data-layer="parcels"]');
  check(!(await page.locator('#layer-list [data-layer="water_pipes"]').count()), 'no pipes before login');
  check(!log.requests.some((u) => u.includes('water_pipes')), 'no pipe request before login');
  const beforeLogin = await mapShot(page);

  // A wrong password is refused, with the server's message.
  await page.fill('#login input[name=username]', facts.staff.user);
  await page.fill('#login input[name=password]', 'not-the-password');
  await page.click('#login button[type=submit]');
  await page.waitForSelector('#login-error:not([hidden])');
  const refusal = await page.locator('#login-error').innerText();
  check(refusal === 'ユーザー名またはパスワードが違います', `the refusal is in the page's language: ${refusal}`);
  // The refused login is the one 401 this page may see (Chromium logs it too).
  log.failed = log.failed.filter((f) => !f.includes('/auth/login -> 401'));
  log.errors = log.errors.filter((e) => !e.includes('401'));

  // Log in: the pipes appear.
  await settle(page, async () => {
    await page.fill('#login input[name=password]', facts.staff.password);
    await page.click('#login button[type=submit]');
    await page.waitForSelector('#layer-list input[data-layer="water_pipes"]', { timeout: 15_000 });
  });
  check((await page.locator('#user-name').innerText()) === facts.staff.user, 'user name shown');
  check(log.requests.some((u) => /\/tiles\/[^/]*water_pipes[^/]*\/\d+\/\d+\/\d+\.mvt$/.test(u)), 'pipe tiles requested after login');
  const withPipes = await mapShot(page, join(artifacts, 'staff.png'));
  await setLayer(page, 'water_pipes', false);
  const withoutPipes = await mapShot(page);
  await setLayer(page, 'water_pipes', true);
  const share = changedShare(withPipes, withoutPipes);
  report.pipePixelShare = share;
  check(share > 0.002, `pipes change ${(share * 100).toFixed(2)}% of the map's pixels`);

  // The attribute query finds the known pipe in view.
  await page.selectOption('#query-layer', 'water_pipes');
  await page.fill('input[name="diameter_mm:min"]', String(pipe.diameter_mm));
  await page.fill('input[name="diameter_mm:max"]', String(pipe.diameter_mm + 200));
  // Material has a code list: the form offers it as a choice.
  await page.selectOption('select[name="material:eq"]', pipe.material);
  await page.fill('input[name="install_year:min"]', String(pipe.install_year - 20));
  await page.fill('input[name="install_year:max"]', String(pipe.install_year + 20));
  const [queryResponse] = await Promise.all([
    page.waitForResponse((r) => r.url().includes('/ogc/collections/water_pipes/items')),
    page.click('#query-form button[type=submit]'),
  ]);
  await page.waitForSelector('#query-results li');
  const rows = await page.locator('#query-results li').evaluateAll((items) => items.map((li) => ({
    id: Number(li.dataset.id),
    diameter: Number(li.querySelector('[data-field="diameter_mm"]')?.dataset.value),
    year: Number(li.querySelector('[data-field="install_year"]')?.dataset.value),
    material: li.querySelector('[data-field="material"]')?.dataset.value,
    materialLabel: li.querySelector('[data-field="material"]')?.textContent,
  })));
  check(rows.some((r) => r.id === pipe.id), `query lists pipe ${pipe.id}: ${JSON.stringify(rows.map((r) => r.id))}`);
  for (const r of rows) {
    check(r.diameter >= pipe.diameter_mm && r.diameter <= pipe.diameter_mm + 200 && r.material === pipe.material
      && Math.abs(r.year - pipe.install_year) <= 20, `every row matches the query: ${JSON.stringify(r)}`);
    check(r.materialLabel.includes(`(${pipe.material})`) && r.materialLabel !== pipe.material, `rows show the code's label: ${r.materialLabel}`);
  }
  const summary = await page.locator('#query-summary').innerText();
  const body = await queryResponse.json();
  check(summary.startsWith(`${body.numberMatched} 件`), `summary shows the count: ${summary}`);
  report.query = { url: queryResponse.url(), numberMatched: body.numberMatched, ids: rows.map((r) => r.id) };
  // Picking a row highlights it on the map and zooms to it.
  const view = await page.evaluate(() => ({ center: window.chizu.map.getCenter().toArray(), zoom: window.chizu.map.getZoom() }));
  const beforePick = await mapShot(page);
  await settle(page, () => page.locator(`#query-results li[data-id="${pipe.id}"]`).click());
  check(await page.locator(`#query-results li[data-id="${pipe.id}"].selected`).count() === 1, 'row selected');
  const afterPick = await mapShot(page, join(artifacts, 'staff-query.png'));
  check(changedShare(beforePick, afterPick) > 0.0005, 'the picked pipe is highlighted on the map');
  const zoomed = await page.evaluate(() => window.chizu.map.getZoom());
  const pickedCentre = await page.evaluate(() => window.chizu.map.getCenter());
  check(zoomed > view.zoom && metres({ lon: pickedCentre.lng, lat: pickedCentre.lat }, pipe) < 60,
    `the map zoomed to the pipe (z${zoomed.toFixed(1)}, ${metres({ lon: pickedCentre.lng, lat: pickedCentre.lat }, pipe).toFixed(0)} m away)`);
  await page.screenshot({ path: join(artifacts, 'staff-page.png') });
  await jump(page, view);

  // Export the pipes in view as a GeoPackage in plane rectangular zone II.
  await page.click('#export-open');
  await page.selectOption('#export-layer', 'water_pipes');
  await page.selectOption('#export-form select[name=format]', 'gpkg');
  await page.selectOption('#export-form select[name=crs]', 'EPSG:6670');
  await page.check('#export-form input[name=extent][value=view]');
  const [download, exportResponse] = await Promise.all([
    page.waitForEvent('download', { timeout: 60_000 }),
    page.waitForResponse((r) => r.url().includes('f=gpkg')),
    page.click('#export-download'),
  ]);
  const file = join(artifacts, download.suggestedFilename() || 'water_pipes.gpkg');
  await download.saveAs(file);
  check(file.endsWith('.gpkg'), `download is a GeoPackage: ${file}`);
  report.export = { file, url: exportResponse.url() };
  await page.click('#export-cancel');

  // Lots in view by land category, then "export these results" with three
  // fields, one of them personal: the notice shows and the purpose is asked.
  await page.selectOption('#query-layer', 'parcels');
  await page.selectOption('select[name="chimoku:eq"]', '宅地');
  const [lotsResponse] = await Promise.all([
    page.waitForResponse((r) => r.url().includes('/ogc/collections/parcels/items')),
    page.click('#query-form button[type=submit]'),
  ]);
  const lots = await lotsResponse.json();
  check(lots.numberMatched > 0, 'lots in view');
  await page.click('#query-export');
  await page.waitForSelector('#export-dialog[open]');
  check(await page.locator('#export-form input[name=extent][value=query]').isChecked(), 'the export starts from the query');
  await page.selectOption('#export-form select[name=format]', 'csv');
  check(await page.locator('#export-encoding-row').isVisible(), 'CSV offers a text encoding');
  await page.selectOption('#export-encoding', 'cp932');
  for (const input of await page.locator('#export-fields input[name=field]').all()) {
    const name = await input.getAttribute('value');
    await input.setChecked(['chiban', 'oaza', 'owner_name'].includes(name));
  }
  check(await page.locator('#export-personal-notice').isVisible(), 'personal data notice');
  await page.click('#export-download');
  check((await page.locator('#export-status').innerText()).includes('利用目的'), 'a purpose is asked for personal data');
  const purpose = '固定資産税の照会 (ブラウザ試験)';
  await page.fill('#export-purpose', purpose);
  const [lotsDownload, lotsExport] = await Promise.all([
    page.waitForEvent('download', { timeout: 60_000 }),
    page.waitForResponse((r) => r.url().includes('f=csv')),
    page.click('#export-download'),
  ]);
  const lotsFile = join(artifacts, 'lots.csv');
  await lotsDownload.saveAs(lotsFile);
  report.queryExport = { file: lotsFile, url: lotsExport.url(), matched: lots.numberMatched, query: lotsResponse.url(), purpose };
  await page.click('#export-cancel');
  await page.click('#query-clear');
  await jump(page, view);

  // The public map in the same browser, with the staff session cookie present,
  // is still the residents' map: no owner names, no pipes.
  const publicTab = await context.newPage();
  const publicLog = watch(publicTab);
  const { parcel } = facts;
  await publicTab.goto(`${base}/#18/${parcel.lat}/${parcel.lon}`);
  await publicTab.waitForSelector('#map[data-state=idle]', { timeout: 60_000 });
  const tabBox = await publicTab.locator('#map').boundingBox();
  await publicTab.mouse.click(tabBox.x + tabBox.width / 2, tabBox.y + tabBox.height / 2);
  await publicTab.locator('.what-is-here section[data-layer="parcels"]').first().waitFor();
  const tabPopup = await publicTab.locator('.what-is-here').innerText();
  check(tabPopup.includes(parcel.chiban), 'the public tab answers clicks');
  for (const word of STAFF_WORDS) {
    check(!tabPopup.includes(word), `the public tab of a logged-in user shows ${word}`);
    check(!publicLog.requests.some((u) => decodeURIComponent(u).includes(word)), `the public tab requests ${word}`);
    check(!publicLog.bodies.some(({ text }) => text.includes(word)), `the public tab receives ${word}`);
  }
  assertClean(publicLog, 'public map beside a staff session');
  await publicTab.close();
  currentPage = page;

  // Log out: the pipes and the query go away.
  const requestsBeforeLogout = log.requests.length;
  await settle(page, async () => {
    await page.click('#logout');
    await page.waitForSelector('#login:not([hidden])');
    await page.waitForFunction(() => !document.querySelector('#layer-list [data-layer="water_pipes"]')
      && document.querySelector('#layer-list [data-layer="parcels"]'));
  });
  check(await page.locator('#query').isHidden(), 'query panel hidden after logout');
  check(await page.locator('#query-results li').count() === 0, 'query results cleared');
  const afterLogout = log.requests.slice(requestsBeforeLogout);
  check(!afterLogout.some((u) => u.includes('water_pipes')), `no pipe request after logout: ${afterLogout.filter((u) => u.includes('water_pipes'))}`);
  const loggedOut = await mapShot(page);
  const leftover = changedShare(beforeLogin, loggedOut);
  check(leftover < 0.001, `after logout the map is the one before login (${(leftover * 100).toFixed(3)}% differs)`);

  // A session that ends elsewhere (a logout in another tab) is noticed as
  // soon as the page is looked at again.
  await settle(page, async () => {
    await page.fill('#login input[name=username]', facts.staff.user);
    await page.fill('#login input[name=password]', facts.staff.password);
    await page.click('#login button[type=submit]');
    await page.waitForSelector('#layer-list input[data-layer="water_pipes"]', { timeout: 15_000 });
  });
  const elsewhere = await page.request.post(`${base}/auth/logout`); // the same browser's cookie
  check(elsewhere.ok(), 'logout from another tab');
  await settle(page, async () => {
    await page.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
    await page.waitForFunction(() => !document.querySelector('#layer-list [data-layer="water_pipes"]'), null, { timeout: 15_000 });
  });
  check(await page.locator('#login').isVisible(), 'the login form is back after the session ended elsewhere');
  assertClean(log, 'staff map');
  await context.close();
}

try {
  await publicMap();
  await phone();
  await staffMap();
} catch (error) {
  const page = currentPage;
  if (page && !page.isClosed()) await page.screenshot({ path: join(artifacts, 'failure.png') }).catch(() => {});
  throw error;
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
