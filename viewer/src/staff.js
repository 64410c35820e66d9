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
/** The last query run: what "export these results" exports. */
let lastQuery = null;

// Query results in a colour and width no layer uses (a dark casing under
// cyan), so they stand out from pipes and roads; the chosen one gets the
// selection's magenta on top.
controller.addOverlay(QUERY_OVERLAY, [
  { id: `${QUERY_OVERLAY}-casing`, type: 'line', filter: ['!=', ['geometry-type'], 'Point'],
    layout: { 'line-join': 'round', 'line-cap': 'round' },
    paint: { 'line-color': '#102030', 'line-width': 9, 'line-opacity': 0.7 } },
  { id: `${QUERY_OVERLAY}-line`, type: 'line', filter: ['!=', ['geometry-type'], 'Point'],
    layout: { 'line-join': 'round', 'line-cap': 'round' },
    paint: { 'line-color': '#00e5ff', 'line-width': 5 } },
  { id: `${QUERY_OVERLAY}-point`, type: 'circle', filter: ['==', ['geometry-type'], 'Point'],
    paint: { 'circle-color': '#00e5ff', 'circle-radius': 7, 'circle-stroke-color': '#102030', 'circle-stroke-width': 2 } },
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
    loginError.dataset.code = problem.code ?? '';
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

/** Whether the form can ask something of a field: a number or a code list. */
function queryable(field) {
  return field.type === 'integer' || field.type === 'float' || Object.keys(field.values ?? {}).length > 0;
}

function fillLayerSelects() {
  const layers = controller.layersTopFirst();
  const previous = queryLayer.value;
  queryLayer.replaceChildren(...layers.map((l) => el('option', { value: l.id }, titleOf(l.title))));
  if (layers.some((l) => l.id === previous)) {
    queryLayer.value = previous;
  } else {
    // Start on the topmost layer the form can really ask about.
    const first = layers.find((l) => l.fields.some(queryable));
    if (first) queryLayer.value = first.id;
  }
  renderQueryFields();
  const exportLayer = document.getElementById('export-layer');
  const before = exportLayer.value;
  const exportable = layers.filter((l) => l.exportable);
  exportLayer.replaceChildren(...exportable.map((l) => el('option', { value: l.id }, titleOf(l.title))));
  if (exportable.some((l) => l.id === before)) exportLayer.value = before;
  renderExportFields();
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
  lastQuery = null;
  document.getElementById('query-export').hidden = true;
  queryList.replaceChildren();
  querySummary.textContent = '';
  controller.setOverlayData(QUERY_OVERLAY, []);
  controller.clearHighlight();
}

/** The [west, south, east, north] of a GeoJSON geometry. */
function boundsOf(geometry) {
  const b = [Infinity, Infinity, -Infinity, -Infinity];
  const visit = (c) => {
    if (typeof c[0] === 'number') {
      b[0] = Math.min(b[0], c[0]); b[1] = Math.min(b[1], c[1]);
      b[2] = Math.max(b[2], c[0]); b[3] = Math.max(b[3], c[1]);
    } else {
      c.forEach(visit);
    }
  };
  visit(geometry.coordinates);
  return b;
}

/** Chooses a result: outlined, selected (for sharing) and zoomed to. */
function selectResult(index) {
  const feature = queryResults[index];
  if (!feature) return;
  for (const item of queryList.children) item.classList.toggle('selected', Number(item.dataset.index) === index);
  const layer = currentQueryLayer();
  controller.setOverlayData('chizu-highlight', [feature]);
  controller.selection = { layer: layer.id, id: String(feature.id), feature };
  map.getContainer().dataset.selection = `${layer.id}:${feature.id}`;
  controller.updateAddress();
  const [w, s, e, n] = boundsOf(feature.geometry);
  map.fitBounds([[w, s], [e, n]], { maxZoom: 19, padding: 80, duration: 600 });
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
  lastQuery = { layer: layer.id, bbox: params.get('bbox'), filter };
  try {
    const body = await fetchJson(`/ogc/collections/${encodeURIComponent(layer.id)}/items?${params}`, CREDENTIALS,
      { headers: { Accept: 'application/geo+json' } });
    queryResults = body.features;
    controller.setOverlayData(QUERY_OVERLAY, queryResults);
    controller.clearHighlight();
    querySummary.textContent = t('matched', body.numberReturned, body.numberMatched);
    lastQuery.matched = body.numberMatched;
    document.getElementById('query-export').hidden = !(layer.exportable && body.numberMatched > 0);
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
    lastQuery = null;
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
const exportLayer = document.getElementById('export-layer');
const exportFields = document.getElementById('export-fields');
const exportFormat = document.getElementById('export-format');
const purpose = document.getElementById('export-purpose');
const personalNotice = document.getElementById('export-personal-notice');

function exportLayerInfo() {
  return controller.catalog.find((l) => l.id === exportLayer.value);
}

/** One checkbox per field, all chosen; personal ones say so. */
function renderExportFields() {
  const layer = exportLayerInfo();
  exportFields.replaceChildren(...(layer?.fields ?? []).map((f) => el('label', {},
    el('input', { type: 'checkbox', name: 'field', value: f.name, checked: true, dataset: { personal: f.personal ? 'true' : 'false' } }),
    ' ', titleOf(f.title) || f.name,
    f.personal ? el('span', { class: 'personal' }, ` (${t('personal')})`) : null)));
  const fromQuery = lastQuery && lastQuery.layer === layer?.id;
  document.getElementById('export-extent-query').hidden = !fromQuery;
  document.getElementById('export-query-summary').textContent = fromQuery
    ? `${lastQuery.matched ?? ''} ${lastQuery.filter ? `(${lastQuery.filter})` : ''}` : '';
  if (!fromQuery && exportForm.elements.extent.value === 'query') exportForm.elements.extent.value = 'view';
  updatePersonalNotice();
}

function chosenFields() {
  return [...exportFields.querySelectorAll('input[name=field]:checked')];
}

function updatePersonalNotice() {
  const personal = chosenFields().some((input) => input.dataset.personal === 'true');
  personalNotice.hidden = !personal;
  purpose.required = personal;
}

function updateEncodingRow() {
  const format = exportFormat.value;
  document.getElementById('export-encoding-row').hidden = !(format === 'csv' || format === 'shp');
  // Each format's usual encoding: Shift_JIS for a DBF, UTF-8 (with BOM) for CSV.
  document.getElementById('export-encoding').value = format === 'shp' ? 'cp932' : 'utf-8';
}

exportLayer.addEventListener('change', renderExportFields);
exportFields.addEventListener('change', updatePersonalNotice);
exportFormat.addEventListener('change', updateEncodingRow);

function openExport({ fromQuery = false } = {}) {
  exportStatus.textContent = exportLayer.options.length ? '' : t('nothingToExport');
  if (fromQuery && lastQuery) exportLayer.value = lastQuery.layer;
  renderExportFields();
  updateEncodingRow();
  if (fromQuery && lastQuery) exportForm.elements.extent.value = 'query';
  dialog.showModal();
}

document.getElementById('export-open').addEventListener('click', () => openExport());
document.getElementById('query-export').addEventListener('click', () => openExport({ fromQuery: true }));
document.getElementById('export-cancel').addEventListener('click', () => dialog.close());

function filenameOf(response, fallback) {
  const disposition = response.headers.get('Content-Disposition') || '';
  const match = /filename="?([^";]+)"?/.exec(disposition);
  return match ? match[1] : fallback;
}

/** The export request the dialog describes. */
function exportParams(data) {
  const params = new URLSearchParams({ f: data.get('format'), crs: data.get('crs') });
  params.set('properties', chosenFields().map((input) => input.value).join(','));
  const extent = data.get('extent');
  if (extent === 'view') params.set('bbox', controller.viewBbox());
  if (extent === 'query' && lastQuery) {
    params.set('bbox', lastQuery.bbox);
    if (lastQuery.filter) {
      params.set('filter', lastQuery.filter);
      params.set('filter-lang', 'cql2-text');
    }
  }
  if (!document.getElementById('export-encoding-row').hidden) params.set('encoding', data.get('encoding'));
  const why = String(data.get('purpose') || '').trim();
  if (why) params.set('purpose', why);
  return params;
}

exportForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const data = new FormData(exportForm);
  const layer = data.get('layer');
  if (!layer) return;
  if (chosenFields().length === 0) {
    exportStatus.textContent = t('noFields');
    return;
  }
  if (purpose.required && !purpose.value.trim()) {
    exportStatus.textContent = t('purposeNeeded');
    purpose.focus();
    return;
  }
  const params = exportParams(data);
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
