// The staff map (/staff): login, the layers the user's roles may read, an
// attribute query over the current view and exports. What it shows comes
// from the same API as the public map, through the logged-in caller's view.
import { createMap, el, fetchJson, formatValue, onLanguageChange, problemOf, t, titleOf } from './common.js';

const CREDENTIALS = 'same-origin';
const QUERY_OVERLAY = 'chizu-query';
const QUERY_LIMIT = 200;

const controller = createMap({ styleName: 'staff', credentials: CREDENTIALS });
const map = controller.map;
let user = null;
let queryResults = [];

controller.addOverlay(QUERY_OVERLAY, [
  { id: `${QUERY_OVERLAY}-line`, type: 'line', filter: ['!=', ['geometry-type'], 'Point'],
    paint: { 'line-color': '#ff7f00', 'line-width': 5, 'line-opacity': 0.55 } },
  { id: `${QUERY_OVERLAY}-point`, type: 'circle', filter: ['==', ['geometry-type'], 'Point'],
    paint: { 'circle-color': '#ff7f00', 'circle-radius': 6 } },
]);

// ------------------------------------------------------------------ login --

const loginForm = document.getElementById('login');
const loginError = document.getElementById('login-error');

async function refreshSession() {
  const me = await fetchJson('/auth/me', CREDENTIALS);
  user = me.user;
  document.body.classList.toggle('logged-in', Boolean(user));
  loginForm.hidden = Boolean(user);
  document.getElementById('query').hidden = !user;
  document.getElementById('export-open').hidden = !user;
  document.getElementById('logout').hidden = !user;
  const name = document.getElementById('user-name');
  name.hidden = !user;
  name.textContent = user || '';
}

loginForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  loginError.hidden = true;
  const data = new FormData(loginForm);
  const response = await fetch('/auth/login', {
    method: 'POST',
    credentials: CREDENTIALS,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: data.get('username'), password: data.get('password') }),
  });
  if (!response.ok) {
    const problem = await problemOf(response);
    loginError.textContent = problem.message;
    loginError.hidden = false;
    return;
  }
  loginForm.reset();
  await afterSessionChange();
});

document.getElementById('logout').addEventListener('click', async () => {
  await fetch('/auth/logout', { method: 'POST', credentials: CREDENTIALS });
  clearQuery();
  await afterSessionChange();
});

async function afterSessionChange() {
  await refreshSession();
  await controller.reload();
  fillLayerSelects();
}

// A session can end elsewhere (logout in another tab, expiry, a disabled
// user): look again when the page comes back into view and every minute, so
// the map never goes on showing what the session no longer grants.
async function recheckSession() {
  const before = user;
  try {
    await refreshSession();
  } catch {
    return; // offline for a moment: keep the page as it is
  }
  if (user !== before) {
    clearQuery();
    await controller.reload();
    fillLayerSelects();
  }
}
document.addEventListener('visibilitychange', () => { if (!document.hidden) recheckSession(); });
setInterval(recheckSession, 60_000);

// ------------------------------------------------------------------ query --

const queryLayer = document.getElementById('query-layer');
const queryFields = document.getElementById('query-fields');
const querySummary = document.getElementById('query-summary');
const queryList = document.getElementById('query-results');

/** Layers in drawing order, topmost first: the style puts the important ones on top. */
function layersTopFirst() {
  const order = controller.map.getStyle()?.layers.map((l) => l['source-layer']).filter(Boolean) ?? [];
  const rank = (id) => { const i = order.lastIndexOf(id); return i < 0 ? -1 : i; };
  return [...controller.catalog].sort((a, b) => rank(b.id) - rank(a.id));
}

function fillLayerSelects() {
  const layers = layersTopFirst();
  const previous = queryLayer.value;
  queryLayer.replaceChildren(...layers.map((l) => el('option', { value: l.id }, titleOf(l.title))));
  if (layers.some((l) => l.id === previous)) queryLayer.value = previous;
  renderQueryFields();
  const exportLayer = document.getElementById('export-layer');
  const exportable = layers.filter((l) => l.exportable);
  exportLayer.replaceChildren(...exportable.map((l) => el('option', { value: l.id }, titleOf(l.title))));
}

function currentQueryLayer() {
  return controller.catalog.find((l) => l.id === queryLayer.value);
}

/** One input per field: equality for text, a from-to range for numbers. */
function renderQueryFields() {
  const layer = currentQueryLayer();
  queryFields.replaceChildren();
  if (!layer) return;
  for (const field of layer.fields) {
    const title = titleOf(field.title) || field.name;
    if (field.values && Object.keys(field.values).length > 0) {
      // A code list: pick from it.
      queryFields.append(el('label', {}, el('span', {}, title),
        el('select', { name: `${field.name}:eq` },
          el('option', { value: '' }, t('any')),
          Object.entries(field.values).map(([code, label]) => el('option', { value: code }, titleOf(label))))));
    } else if (field.type === 'integer' || field.type === 'float') {
      const step = field.type === 'integer' ? '1' : 'any';
      queryFields.append(el('fieldset', { class: 'range' },
        el('legend', {}, title),
        el('input', { type: 'number', step, name: `${field.name}:min`, 'aria-label': `${title} ${t('from')}` }),
        el('span', {}, t('from')),
        el('input', { type: 'number', step, name: `${field.name}:max`, 'aria-label': `${title} ${t('to')}` }),
        el('span', {}, t('to'))));
    } else if (field.type === 'text') {
      queryFields.append(el('label', {}, el('span', {}, title),
        el('input', { type: 'text', name: `${field.name}:eq`, placeholder: t('any') })));
    }
  }
}

function quoted(text) {
  return `'${text.replaceAll("'", "''")}'`;
}

/** The CQL2 text filter of the form, or '' when no field is filled in. */
function queryFilter() {
  const terms = [];
  for (const input of queryFields.querySelectorAll('input, select')) {
    const value = input.value.trim();
    if (value === '') continue;
    const [name, op] = input.name.split(':');
    const field = currentQueryLayer()?.fields.find((f) => f.name === name);
    if (op === 'eq' && field?.type === 'integer') terms.push(`${name} = ${Number(value)}`);
    else if (op === 'eq') terms.push(`${name} = ${quoted(value)}`);
    else if (Number.isFinite(Number(value))) terms.push(`${name} ${op === 'min' ? '>=' : '<='} ${Number(value)}`);
  }
  return terms.join(' AND ');
}

function clearQuery() {
  queryResults = [];
  queryList.replaceChildren();
  querySummary.textContent = '';
  controller.setOverlayData(QUERY_OVERLAY, []);
  controller.clearHighlight();
}

function selectResult(index) {
  const feature = queryResults[index];
  if (!feature) return;
  for (const item of queryList.children) item.classList.toggle('selected', Number(item.dataset.index) === index);
  controller.setOverlayData('chizu-highlight', [feature]);
}

async function runQuery() {
  const layer = currentQueryLayer();
  if (!layer) return;
  const params = new URLSearchParams({ bbox: controller.viewBbox(), limit: String(QUERY_LIMIT) });
  const filter = queryFilter();
  if (filter) {
    params.set('filter', filter);
    params.set('filter-lang', 'cql2-text');
  }
  querySummary.textContent = t('loading');
  try {
    const body = await fetchJson(`/ogc/collections/${encodeURIComponent(layer.id)}/items?${params}`, CREDENTIALS,
      { headers: { Accept: 'application/geo+json' } });
    queryResults = body.features;
    controller.setOverlayData(QUERY_OVERLAY, queryResults);
    controller.clearHighlight();
    querySummary.textContent = t('matched', body.numberReturned, body.numberMatched);
    const titles = Object.fromEntries(layer.fields.map((f) => [f.name, titleOf(f.title) || f.name]));
    queryList.replaceChildren(...queryResults.map((feature, index) => el('li', {
      dataset: { index: String(index), id: String(feature.id) },
      tabindex: '0',
      onclick: () => selectResult(index),
      onkeydown: (event) => { if (event.key === 'Enter') selectResult(index); },
    },
    el('strong', {}, `#${feature.id}`), ' ',
    layer.fields.filter((f) => f.name in feature.properties).slice(0, 4).map((f) =>
      el('span', {
        class: 'prop',
        dataset: { field: f.name, value: String(feature.properties[f.name] ?? '') },
        title: titles[f.name],
      }, formatValue(feature.properties[f.name], f))))));
  } catch (error) {
    querySummary.textContent = `${t('error')}: ${error.message}`;
  }
}

queryLayer.addEventListener('change', () => { clearQuery(); renderQueryFields(); });
document.getElementById('query-form').addEventListener('submit', (event) => { event.preventDefault(); runQuery(); });
document.getElementById('query-clear').addEventListener('click', () => {
  for (const input of queryFields.querySelectorAll('input, select')) input.value = '';
  clearQuery();
});

// ----------------------------------------------------------------- export --

const dialog = document.getElementById('export-dialog');
const exportForm = document.getElementById('export-form');
const exportStatus = document.getElementById('export-status');

document.getElementById('export-open').addEventListener('click', () => {
  exportStatus.textContent = document.getElementById('export-layer').options.length ? '' : t('nothingToExport');
  dialog.showModal();
});
document.getElementById('export-cancel').addEventListener('click', () => dialog.close());

function filenameOf(response, fallback) {
  const disposition = response.headers.get('Content-Disposition') || '';
  const match = /filename="?([^";]+)"?/.exec(disposition);
  return match ? match[1] : fallback;
}

exportForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const data = new FormData(exportForm);
  const layer = data.get('layer');
  if (!layer) return;
  const params = new URLSearchParams({ f: data.get('format'), crs: data.get('crs') });
  if (data.get('extent') === 'view') params.set('bbox', controller.viewBbox());
  exportStatus.textContent = t('exporting');
  const button = document.getElementById('export-download');
  button.disabled = true;
  try {
    const response = await fetch(`/ogc/collections/${encodeURIComponent(layer)}/items?${params}`, { credentials: CREDENTIALS });
    if (!response.ok) throw await problemOf(response);
    const name = filenameOf(response, `${layer}.${data.get('format')}`);
    const url = URL.createObjectURL(await response.blob());
    const link = el('a', { href: url, download: name });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    exportStatus.textContent = t('exported', name);
  } catch (error) {
    exportStatus.textContent = `${t('error')}: ${error.message}`;
  } finally {
    button.disabled = false;
  }
});

// ------------------------------------------------------------------ start --

onLanguageChange(() => { fillLayerSelects(); });
map.on('style.load', () => fillLayerSelects());
await refreshSession();
await controller.catalogLoaded;
fillLayerSelects();
