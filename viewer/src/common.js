// What the public and the staff map share: the map itself, the language, the
// layer list with its legend, "what is here" popups and search. Everything is
// fetched from this server through the caller's view; nothing here knows of
// any layer by name.

const maplibregl = window.maplibregl;

// ---------------------------------------------------------------- language --

const TEXT = {
  ja: {
    publicTitle: '鹿島市 公開地図',
    staffTitle: '鹿島市 統合型GIS (職員用)',
    searchPlaceholder: '地番・地名・路線名で検索',
    searchButton: '検索',
    layersButton: 'レイヤ',
    layersHeading: 'レイヤ',
    sourcesHeading: '出典',
    background: '背景地図',
    nothingHere: 'この地点の情報はありません',
    noResults: '見つかりませんでした',
    loading: '読み込み中…',
    zoomIn: 'ズームすると表示されます',
    error: 'エラー',
    loginHeading: '職員ログイン',
    userName: 'ユーザー名',
    password: 'パスワード',
    loginButton: 'ログイン',
    logoutButton: 'ログアウト',
    exportButton: 'エクスポート',
    queryHeading: '属性検索 (表示範囲内)',
    queryLayer: 'レイヤ',
    queryButton: '検索',
    clearButton: 'クリア',
    from: '以上',
    to: '以下',
    any: '(指定なし)',
    matched: (shown, total) => `${total} 件 (表示 ${shown} 件)`,
    exportHeading: 'データのエクスポート',
    exportLayer: 'レイヤ',
    exportFormat: '形式',
    exportCrs: '座標系',
    exportExtent: '範囲',
    extentView: '現在の表示範囲',
    extentAll: 'レイヤ全体',
    crsZone2: '平面直角座標系 第II系 (JGD2011, EPSG:6670)',
    crsWgs84: '緯度経度 (WGS 84, EPSG:4326)',
    crsJgd2011: '緯度経度 (JGD2011, EPSG:6668)',
    cancelButton: 'キャンセル',
    downloadButton: 'ダウンロード',
    exporting: '作成中…',
    exported: (name) => `${name} をダウンロードしました`,
    nothingToExport: 'エクスポートできるレイヤがありません',
  },
  en: {
    publicTitle: 'Kashima City public map',
    staffTitle: 'Kashima City GIS (staff)',
    searchPlaceholder: 'Lot number, place or road',
    searchButton: 'Search',
    layersButton: 'Layers',
    layersHeading: 'Layers',
    sourcesHeading: 'Sources',
    background: 'Background map',
    nothingHere: 'Nothing is mapped here',
    noResults: 'Nothing found',
    loading: 'Loading…',
    zoomIn: 'Zoom in to see this layer',
    error: 'Error',
    loginHeading: 'Staff login',
    userName: 'User name',
    password: 'Password',
    loginButton: 'Log in',
    logoutButton: 'Log out',
    exportButton: 'Export',
    queryHeading: 'Attribute query (current view)',
    queryLayer: 'Layer',
    queryButton: 'Search',
    clearButton: 'Clear',
    from: 'from',
    to: 'to',
    any: '(any)',
    matched: (shown, total) => `${total} found (${shown} listed)`,
    exportHeading: 'Export data',
    exportLayer: 'Layer',
    exportFormat: 'Format',
    exportCrs: 'Coordinate system',
    exportExtent: 'Extent',
    extentView: 'Current view',
    extentAll: 'Whole layer',
    crsZone2: 'Plane rectangular zone II (JGD2011, EPSG:6670)',
    crsWgs84: 'Longitude/latitude (WGS 84, EPSG:4326)',
    crsJgd2011: 'Longitude/latitude (JGD2011, EPSG:6668)',
    cancelButton: 'Cancel',
    downloadButton: 'Download',
    exporting: 'Exporting…',
    exported: (name) => `Downloaded ${name}`,
    nothingToExport: 'No layer can be exported',
  },
};

function initialLanguage() {
  const asked = new URLSearchParams(window.location.search).get('lang');
  if (asked === 'ja' || asked === 'en') return asked;
  const saved = window.localStorage.getItem('chizu.lang');
  return saved === 'en' ? 'en' : 'ja';
}

export let lang = initialLanguage();
const languageListeners = [];

export function t(key, ...args) {
  const value = TEXT[lang][key] ?? TEXT.ja[key] ?? key;
  return typeof value === 'function' ? value(...args) : value;
}

/** A `{ja, en}` title from the server, in the current language. */
export function titleOf(title) {
  if (title == null) return '';
  if (typeof title === 'string') return title;
  return (lang === 'en' && title.en) || title.ja || title.en || '';
}

export function onLanguageChange(listener) {
  languageListeners.push(listener);
}

function applyLanguage() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll('[data-i18n-placeholder]')) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
    el.setAttribute('aria-label', t(el.dataset.i18nPlaceholder));
  }
  document.title = `${t(document.body.classList.contains('staff') ? 'staffTitle' : 'publicTitle')} | chizu`;
  const toggle = document.getElementById('lang-toggle');
  toggle.textContent = lang === 'ja' ? 'English' : '日本語';
  toggle.lang = lang === 'ja' ? 'en' : 'ja';
  for (const listener of languageListeners) listener();
}

function setupLanguageToggle() {
  document.getElementById('lang-toggle').addEventListener('click', () => {
    lang = lang === 'ja' ? 'en' : 'ja';
    window.localStorage.setItem('chizu.lang', lang);
    applyLanguage();
  });
  applyLanguage();
}

// ------------------------------------------------------------------- HTTP --

/** An error from the server, with the detail of its problem document. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export async function problemOf(response) {
  try {
    const body = await response.json();
    return new ApiError(response.status, body.detail || body.title || response.statusText);
  } catch {
    return new ApiError(response.status, response.statusText);
  }
}

/**
 * Fetches JSON. `credentials` is 'omit' on the public map (every request is
 * anonymous, whoever is logged in elsewhere) and 'same-origin' on the staff map.
 */
export async function fetchJson(url, credentials, init = {}) {
  const response = await fetch(url, { credentials, cache: 'no-cache', ...init });
  if (!response.ok) throw await problemOf(response);
  return response.json();
}

// -------------------------------------------------------------------- DOM --

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, '');
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child == null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A value as people read it: the label of its code when the field has a code list. */
export function formatValue(value, field) {
  if (value == null || value === '') return '—';
  const label = field?.values?.[String(value)];
  if (label) return titleOf(label);
  // Numbers without digit grouping: years, codes and lot numbers read wrong with it.
  return String(value);
}

// -------------------------------------------------------------------- map --

/**
 * Creates the map on #map with the named style and sets up everything both
 * pages share. Returns a controller the page builds on.
 */
export function createMap({ styleName, credentials }) {
  maplibregl.setWorkerUrl('/assets/vendor/maplibre-gl-csp-worker.js');
  const container = document.getElementById('map');
  const map = new maplibregl.Map({
    container,
    style: styleUrl(styleName),
    hash: true,
    attributionControl: false,
    dragRotate: false,
    pitchWithRotate: false,
    maxZoom: 20,
    transformRequest: (url) => ({ url, credentials }),
  });
  map.touchZoomRotate.disableRotation();
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-right');
  map.addControl(new maplibregl.ScaleControl({ unit: 'metric' }), 'bottom-left');
  map.addControl(new maplibregl.AttributionControl({ compact: true }), 'bottom-right');

  // Tests and assistive tools can tell when the map has drawn everything.
  map.on('idle', () => { container.dataset.state = 'idle'; });
  map.on('dataloading', () => { container.dataset.state = 'loading'; });
  map.on('error', (event) => {
    container.dataset.error = event.error?.message || 'map error';
    console.error('map:', event.error?.message || event);
  });

  const controller = new MapController(map, styleName, credentials);
  setupLanguageToggle();
  setupPanelToggle();
  setupSearch(controller);
  map.on('click', (event) => controller.showWhatIsHere(event.lngLat));
  return controller;
}

function styleUrl(name) {
  return `${window.location.origin}/styles/${name}.json`;
}

const HIGHLIGHT = 'chizu-highlight';

export class MapController {
  constructor(map, styleName, credentials) {
    this.map = map;
    this.styleName = styleName;
    this.credentials = credentials;
    this.catalog = [];
    this.hidden = new Set();
    this.popup = null;
    this.overlays = [];
    this.catalogLoaded = this.loadCatalog();
    map.on('style.load', () => this.afterStyleLoad());
    onLanguageChange(() => this.renderLayerList());
  }

  async loadCatalog() {
    const body = await fetchJson('/catalog', this.credentials);
    this.catalog = body.layers;
    this.renderLayerList();
    this.fitCityOnFirstVisit();
    return this.catalog;
  }

  /** Reloads the style and the catalog (after login or logout). */
  async reload() {
    this.popup?.remove();
    this.map.setStyle(`${styleUrl(this.styleName)}?t=${Date.now()}`);
    this.catalogLoaded = this.loadCatalog();
    await this.catalogLoaded;
  }

  /** Adds an overlay (source + layers) that survives style reloads. */
  addOverlay(id, layers) {
    this.overlays.push({ id, layers });
    if (this.map.isStyleLoaded()) this.installOverlay({ id, layers });
  }

  installOverlay({ id, layers }) {
    if (!this.map.getSource(id)) {
      this.map.addSource(id, { type: 'geojson', data: { type: 'FeatureCollection', features: [] } });
    }
    for (const layer of layers) if (!this.map.getLayer(layer.id)) this.map.addLayer({ ...layer, source: id });
  }

  setOverlayData(id, features) {
    this.map.getSource(id)?.setData({ type: 'FeatureCollection', features });
  }

  afterStyleLoad() {
    this.installOverlay({
      id: HIGHLIGHT,
      layers: [
        { id: `${HIGHLIGHT}-fill`, type: 'fill', filter: ['==', ['geometry-type'], 'Polygon'],
          paint: { 'fill-color': '#ffde59', 'fill-opacity': 0.35 } },
        { id: `${HIGHLIGHT}-line`, type: 'line',
          paint: { 'line-color': '#d7263d', 'line-width': 3 } },
      ],
    });
    for (const overlay of this.overlays) this.installOverlay(overlay);
    for (const id of this.hidden) this.setLayerVisible(id, false);
    this.renderLayerList();
  }

  /** The style layers that draw one chizu layer (or the background). */
  styleLayersOf(id) {
    const style = this.map.getStyle();
    if (!style) return [];
    return style.layers.filter((l) => (id === 'background' ? l.source === 'background' : l['source-layer'] === id));
  }

  setLayerVisible(id, visible) {
    if (visible) this.hidden.delete(id); else this.hidden.add(id);
    for (const layer of this.styleLayersOf(id)) {
      this.map.setLayoutProperty(layer.id, 'visibility', visible ? 'visible' : 'none');
    }
  }

  renderLayerList() {
    const list = document.getElementById('layer-list');
    const sources = document.getElementById('source-list');
    if (!list || !this.map.getStyle()) return;
    list.replaceChildren();
    const entries = this.catalog
      .filter((layer) => this.styleLayersOf(layer.id).length > 0)
      .map((layer) => ({ id: layer.id, title: titleOf(layer.title), minzoom: layer.minzoom }));
    if (this.styleLayersOf('background').length > 0) {
      entries.push({ id: 'background', title: t('background'), minzoom: 0 });
    }
    for (const entry of entries) {
      const checkbox = el('input', {
        type: 'checkbox',
        checked: !this.hidden.has(entry.id),
        dataset: { layer: entry.id },
        onchange: (event) => this.setLayerVisible(entry.id, event.target.checked),
      });
      const legend = el('ul', { class: 'legend' });
      for (const styleLayer of this.styleLayersOf(entry.id)) {
        for (const item of styleLayer.metadata?.['chizu:legend'] ?? []) {
          legend.append(el('li', {},
            el('span', { class: `swatch ${item.kind}`, dataset: { color: item.color } }),
            titleOf(item.label)));
        }
      }
      // Colours through CSSOM, not style attributes: the CSP allows no inline styles.
      for (const swatch of legend.querySelectorAll('.swatch')) swatch.style.setProperty('--swatch', swatch.dataset.color);
      const hint = entry.minzoom > 12 ? el('small', { class: 'hint' }, `${t('zoomIn')} (z${entry.minzoom}+)`) : null;
      list.append(el('li', { dataset: { layer: entry.id } },
        el('label', {}, checkbox, ' ', entry.title), hint, legend));
    }
    if (sources) {
      const attributions = new Set();
      for (const source of Object.values(this.map.getStyle().sources)) {
        for (const part of String(source.attribution || '').split(' | ')) if (part) attributions.add(part);
      }
      sources.replaceChildren(...[...attributions].map((a) => el('li', {}, a)));
    }
  }

  fitCityOnFirstVisit() {
    if (this.fitted || window.location.hash.length > 1) return;
    this.fitted = true;
    const bounds = this.catalog.map((l) => l.bounds).filter(Boolean);
    if (bounds.length === 0) return;
    const all = bounds.reduce((a, b) => [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[2], b[2]), Math.max(a[3], b[3])]);
    this.map.fitBounds([[all[0], all[1]], [all[2], all[3]]], { padding: 20, animate: false });
  }

  /** The current view as `minlon,minlat,maxlon,maxlat`. */
  viewBbox() {
    const b = this.map.getBounds();
    return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(7)).join(',');
  }

  /** Outlines one feature, fetched from the features API. */
  async highlight(layerId, featureId) {
    const feature = await fetchJson(
      `/ogc/collections/${encodeURIComponent(layerId)}/items/${encodeURIComponent(featureId)}`,
      this.credentials,
      { headers: { Accept: 'application/geo+json' } },
    );
    this.setOverlayData(HIGHLIGHT, [feature]);
    return feature;
  }

  clearHighlight() {
    this.setOverlayData(HIGHLIGHT, []);
  }

  /** "What is here": the features under a click, as a popup. */
  async showWhatIsHere(lngLat) {
    const params = new URLSearchParams({
      lon: lngLat.lng.toFixed(7),
      lat: lngLat.lat.toFixed(7),
      zoom: this.map.getZoom().toFixed(2),
    });
    this.popup?.remove();
    const content = el('div', { class: 'what-is-here' }, t('loading'));
    this.popup = new maplibregl.Popup({ maxWidth: '320px' }).setLngLat(lngLat).setDOMContent(content).addTo(this.map);
    try {
      const body = await fetchJson(`/query/point?${params}`, this.credentials);
      // The style says which layers answer a click, and in what order.
      const order = this.map.getStyle()?.metadata?.['chizu:popup-order'] ?? body.layers.map((l) => l.id);
      const layers = body.layers
        .filter((l) => order.includes(l.id) && !this.hidden.has(l.id) && l.features.length > 0)
        .sort((a, b) => order.indexOf(a.id) - order.indexOf(b.id));
      content.replaceChildren();
      if (layers.length === 0) content.append(el('p', {}, t('nothingHere')));
      for (const layer of layers) {
        for (const feature of layer.features) {
          // In the layer's field order (the layer file's), not the JSON's.
          const rows = layer.fields.filter((f) => f.name in feature.properties).map((f) =>
            el('tr', {}, el('th', {}, titleOf(f.title) || f.name),
              el('td', { dataset: { field: f.name, value: String(feature.properties[f.name] ?? '') } },
                formatValue(feature.properties[f.name], f))));
          content.append(el('section', { dataset: { layer: layer.id } },
            el('h3', {}, titleOf(layer.title)), el('table', {}, rows)));
        }
      }
    } catch (error) {
      content.replaceChildren(el('p', { class: 'error' }, `${t('error')}: ${error.message}`));
    }
  }
}

function setupPanelToggle() {
  const button = document.getElementById('panel-toggle');
  const panel = document.getElementById('panel');
  button.addEventListener('click', () => {
    const open = panel.classList.toggle('open');
    button.setAttribute('aria-expanded', String(open));
  });
}

// ----------------------------------------------------------------- search --

function setupSearch(controller) {
  const form = document.getElementById('search');
  const input = document.getElementById('search-input');
  const list = document.getElementById('search-results');

  const go = async (result, { keepList = false } = {}) => {
    list.hidden = !keepList;
    if (result.bbox) {
      controller.map.fitBounds([[result.bbox[0], result.bbox[1]], [result.bbox[2], result.bbox[3]]],
        { maxZoom: 18, padding: 60, duration: 800 });
    } else if (result.center) {
      controller.map.flyTo({ center: result.center, zoom: 17 });
    }
    try {
      await controller.highlight(result.layer, result.id);
    } catch (error) {
      console.warn('highlight:', error.message);
    }
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const q = input.value.trim();
    if (!q) return;
    list.replaceChildren(el('li', { class: 'muted' }, t('loading')));
    list.hidden = false;
    try {
      const body = await fetchJson(`/search?${new URLSearchParams({ q, limit: '10' })}`, controller.credentials);
      list.replaceChildren();
      if (body.results.length === 0) {
        list.append(el('li', { class: 'muted' }, t('noResults')));
        return;
      }
      for (const result of body.results) {
        list.append(el('li', {},
          el('button', { type: 'button', onclick: () => go(result) },
            el('strong', {}, result.label), ' ', el('small', {}, titleOf(result.layer_title)))));
      }
      // The best match is where the user most likely wants to go.
      go(body.results[0], { keepList: body.results.length > 1 });
    } catch (error) {
      list.replaceChildren(el('li', { class: 'error' }, `${t('error')}: ${error.message}`));
    }
  });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') list.hidden = true;
  });
  controller.map.on('click', () => { list.hidden = true; });
}
