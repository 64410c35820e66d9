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

function watch(page) {
  currentPage = page;
  const log = { errors: [], failed: [], requests: [], bodies: [] };
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

// ------------------------------------------------------------ public map --

async function publicMap() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'ja-JP' });
  const page = await context.newPage();
  const log = watch(page);
  const { parcel } = facts;
  await page.goto(`${base}/#18/${parcel.lat}/${parcel.lon}`);
  await page.waitForSelector('#map[data-state=idle]', { timeout: 60_000 });
  await page.waitForSelector('#layer-list input[data-layer="parcels"]');

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
  check((await page.locator('#layer-list li[data-layer="parcels"] label').innerText()).includes('Parcels'), 'English layer names');
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
  // Picking a row highlights it on the map.
  const beforePick = await mapShot(page);
  await settle(page, () => page.locator(`#query-results li[data-id="${pipe.id}"]`).click());
  check(await page.locator(`#query-results li[data-id="${pipe.id}"].selected`).count() === 1, 'row selected');
  const afterPick = await mapShot(page, join(artifacts, 'staff-query.png'));
  check(changedShare(beforePick, afterPick) > 0.0005, 'the picked pipe is highlighted on the map');
  await page.screenshot({ path: join(artifacts, 'staff-page.png') });

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
