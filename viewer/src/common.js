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
    exportEncoding: '文字コード',
    extentQuery: '検索結果',
    exportFields: '項目',
    personal: '個人情報',
    personalNotice: '個人情報を含む項目が選ばれています。持ち出しは監査記録に残ります。利用目的を記入し、取り扱いは個人情報保護条例に従ってください。',
    exportPurpose: '利用目的',
    purposeNeeded: '個人情報を含むため、利用目的を記入してください',
    exportResults: 'この結果をエクスポート',
    noFields: '項目を一つ以上選んでください',
    toolsMeasure: '計測',
    toolsPrint: '印刷',
    toolsShare: '共有',
    disclaimer: '免責事項',
    disclaimerText: 'この地図は鹿島市が保有する情報を参考として提供するものです。土地の境界や権利、災害の危険性を証明するものではありません。正確な情報は各担当課にお問い合わせください。掲載内容により生じた損害について、鹿島市は責任を負いません。',
    closeButton: '閉じる',
    updated: (date) => `データ時点 ${date}`,
    opacity: '不透明度',
    fullscreen: '全画面',
    myLocation: '現在地',
    resultsPlaces: '地名・道路',
    featuresFound: (n) => `${n} 件の地物`,
    problem_login_failed: 'ユーザー名またはパスワードが違います',
    problem_login_locked: 'ログインの失敗が続いたため、しばらくログインできません。時間をおいてお試しください',
    problem_too_large: '要求が大きすぎます',
    problem_bad_request: '要求に誤りがあります',
    problem_not_found: '見つかりません',
    problem_unauthorized: 'ログインが必要です',
    problem_forbidden: 'この操作は許可されていません',
    problem_export_forbidden: 'このレイヤをエクスポートする権限がありません',
    problem_token_invalid: 'セッションが無効です。ログインし直してください',
    problem_over_budget: '処理が大きすぎます。範囲や条件を絞ってください',
    problem_too_many_requests: '要求が多すぎます。しばらくしてからお試しください',
    problem_unavailable: '一時的に利用できません。しばらくしてからお試しください',
    problem_internal: 'サーバーでエラーが発生しました',
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
    exportEncoding: 'Text encoding',
    extentQuery: 'Query results',
    exportFields: 'Fields',
    personal: 'personal data',
    personalNotice: 'Fields with personal data are chosen. The export is recorded in the audit log: state its purpose, and handle the file as the personal information protection ordinance requires.',
    exportPurpose: 'Purpose',
    purposeNeeded: 'Personal data: please state the purpose',
    exportResults: 'Export these results',
    noFields: 'Choose at least one field',
    toolsMeasure: 'Measure',
    toolsPrint: 'Print',
    toolsShare: 'Share',
    disclaimer: 'Disclaimer',
    disclaimerText: 'This map shows information held by Kashima City for reference only. It does not certify land boundaries, rights or the danger of disasters. Ask the responsible department for authoritative information. Kashima City accepts no liability for damage arising from the contents of this map.',
    closeButton: 'Close',
    updated: (date) => `Data as of ${date}`,
    opacity: 'Opacity',
    fullscreen: 'Full screen',
    myLocation: 'My location',
    resultsPlaces: 'Places and roads',
    featuresFound: (n) => `${n} features`,
    problem_login_failed: 'Wrong user name or password',
    problem_login_locked: 'Too many failed logins: please wait a while and try again',
    problem_too_large: 'The request is too large',
    problem_bad_request: 'The request is not valid',
    problem_not_found: 'Not found',
    problem_unauthorized: 'Please log in',
    problem_forbidden: 'This is not allowed',
    problem_export_forbidden: 'You may not export this layer',
    problem_token_invalid: 'Your session is no longer valid: please log in again',
    problem_over_budget: 'This would take too long: narrow the area or the conditions',
    problem_too_many_requests: 'Too many requests: please try again shortly',
    problem_unavailable: 'Unavailable for a moment: please try again shortly',
    problem_internal: 'The server could not answer',
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

/**
 * An error from the server. Its message is in the page's language when the
 * problem's stable `code` has a translation, else the server's own detail.
 */
export class ApiError extends Error {
  constructor(status, detail, code) {
    const key = `problem_${code}`;
    super(code && (key in TEXT[lang] || key in TEXT.ja) ? t(key) : detail);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

export async function problemOf(response) {
  try {
    const body = await response.json();
    return new ApiError(response.status, body.detail || body.title || response.statusText, body.code);
  } catch {
    return new ApiError(response.status, response.statusText);
  }
}

/**
 * The static site's archive (`chizu publish-site` names it in a meta tag), or
 * null when a chizu server answers. A static site has tiles, style, glyphs
 * and catalog as files, and no search, point queries or features API: a
 * click reads the features drawn on the map, which carry the public fields.
 */
export const ARCHIVE = document.querySelector('meta[name="chizu-archive"]')?.content ?? null;

/**
 * For the static site: registers MapLibre's `pmtiles://` protocol (the npm
 * pmtiles reader, loaded only here) and returns the published style with its
 * archive and glyph addresses made absolute.
 */
export async function loadStaticStyle(name) {
  await new Promise((resolve, reject) => {
    const script = el('script', { src: new URL('vendor/pmtiles.js', import.meta.url).href });
    script.addEventListener('load', resolve);
    script.addEventListener('error', () => reject(new Error('pmtiles.js did not load')));
    document.head.append(script);
  });
  const protocol = new pmtiles.Protocol();
  maplibregl.addProtocol('pmtiles', protocol.tile);
  const style = await fetchJson(new URL(`styles/${name}.json`, window.location.href), 'omit');
  const here = (path) => new URL(path, window.location.href).href;
  for (const source of Object.values(style.sources)) {
    if (source.url?.startsWith('pmtiles://')) source.url = `pmtiles://${here(source.url.slice('pmtiles://'.length))}`;
  }
  // `{fontstack}` and `{range}` survive URL resolution as they are.
  style.glyphs = decodeURI(here(style.glyphs));
  return style;
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
 * pages share. Returns a controller the page builds on. The address holds
 * what a shared link restores: the view (hash), `layers` (the visible ones),
 * `sel` (the selected feature, `layer:id`) and `lang`.
 */
export function createMap({ styleName, credentials, style }) {
  maplibregl.setWorkerUrl(new URL('vendor/maplibre-gl-csp-worker.js', import.meta.url).href);
  const container = document.getElementById('map');
  const map = new maplibregl.Map({
    container,
    style: style ?? styleUrl(styleName),
    hash: true,
    attributionControl: false,
    dragRotate: false,
    pitchWithRotate: false,
    maxZoom: 20,
    transformRequest: (url) => ({ url, credentials }),
  });
  map.touchZoomRotate.disableRotation();
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-right');
  map.addControl(new maplibregl.FullscreenControl({ container: document.body }), 'top-right');
  map.addControl(new maplibregl.GeolocateControl({
    positionOptions: { enableHighAccuracy: true },
    trackUserLocation: false,
    showAccuracyCircle: true,
  }), 'top-right');
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
  // The tools module (loaded on first use) and the browser tests find it here.
  window.chizu = controller;
  setupLanguageToggle();
  onLanguageChange(() => controller.updateAddress());
  setupPanelToggle();
  setupSearch(controller);
  setupTools(controller);
  setupBrowserPrint(map);
  map.on('click', (event) => {
    if (!controller.tool) controller.showWhatIsHere(event.lngLat);
  });
  return controller;
}

/**
 * The browser's own print (Ctrl+P): a WebGL canvas prints blank, so the
 * map is drawn once more and shown as a picture while the page prints.
 */
function setupBrowserPrint(map) {
  let picture = null;
  window.addEventListener('beforeprint', () => {
    map.redraw();
    picture = el('img', { class: 'print-picture', src: map.getCanvas().toDataURL('image/png'), alt: '' });
    map.getContainer().append(picture);
  });
  window.addEventListener('afterprint', () => {
    picture?.remove();
    picture = null;
  });
}

function styleUrl(name) {
  return `${window.location.origin}/styles/${name}.json`;
}

const HIGHLIGHT = 'chizu-highlight';
/** The selection's colours: no layer of either style uses them. */
export const HIGHLIGHT_FILL = '#00e5ff';
export const HIGHLIGHT_LINE = '#ff00c8';

/** Paint properties that hold a layer's opacity, by style layer type. */
const OPACITY = { fill: 'fill-opacity', line: 'line-opacity', symbol: 'text-opacity', raster: 'raster-opacity', circle: 'circle-opacity' };

/** `value` (a number, a zoom curve or a data expression) times `factor`. */
function scaledOpacity(value, factor) {
  if (value == null) return factor;
  if (typeof value === 'number') return value * factor;
  // A zoom curve must stay the outermost expression: scale its outputs.
  if (Array.isArray(value) && value[0] === 'interpolate' && JSON.stringify(value[2]) === '["zoom"]') {
    return value.map((v, i) => (i > 3 && i % 2 === 0 && typeof v === 'number' ? v * factor : v));
  }
  return ['*', value, factor];
}

export class MapController {
  constructor(map, styleName, credentials) {
    this.map = map;
    this.styleName = styleName;
    this.credentials = credentials;
    this.catalog = [];
    this.hidden = new Set();
    this.opacity = new Map();
    this.popup = null;
    this.overlays = [];
    this.selection = null;
    this.tool = null;
    const params = new URLSearchParams(window.location.search);
    this.askedLayers = params.get('layers')?.split(',').filter(Boolean) ?? null;
    this.askedSelection = params.get('sel');
    // The background map chosen, when the city offers several.
    this.background = params.get('bg');
    this.visibilityDecided = false;
    this.catalogLoaded = this.loadCatalog();
    map.on('style.load', () => this.afterStyleLoad());
    onLanguageChange(() => this.renderLayerList());
  }

  async loadCatalog() {
    const body = await fetchJson(ARCHIVE ? new URL('catalog.json', window.location.href) : '/catalog', this.credentials);
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
          paint: { 'fill-color': HIGHLIGHT_FILL, 'fill-opacity': 0.3 } },
        { id: `${HIGHLIGHT}-line`, type: 'line', layout: { 'line-join': 'round' },
          paint: { 'line-color': HIGHLIGHT_LINE, 'line-width': 4 } },
        { id: `${HIGHLIGHT}-point`, type: 'circle', filter: ['==', ['geometry-type'], 'Point'],
          paint: { 'circle-color': HIGHLIGHT_LINE, 'circle-radius': 8, 'circle-stroke-color': '#ffffff', 'circle-stroke-width': 2 } },
      ],
    });
    for (const overlay of this.overlays) this.installOverlay(overlay);
    this.decideVisibility();
    for (const id of this.hidden) this.setLayerVisible(id, false, { quiet: true });
    if (!this.hidden.has('background')) this.setLayerVisible('background', true, { quiet: true });
    for (const [id, value] of this.opacity) this.setLayerOpacity(id, value);
    if (this.selection) this.setOverlayData(HIGHLIGHT, [this.selection.feature]);
    this.renderLayerList();
    this.restoreSelection();
  }

  /**
   * Which layers start hidden, once: those a shared link leaves out, else
   * those the style hides (`"visibility": "none"` on all its drawing layers).
   */
  decideVisibility() {
    if (this.visibilityDecided) return;
    this.visibilityDecided = true;
    const style = this.map.getStyle();
    const ids = new Set(style.layers.map((l) => (l.source === 'background' ? 'background' : l['source-layer'])).filter(Boolean));
    for (const id of ids) {
      const hidden = this.askedLayers
        ? !this.askedLayers.includes(id)
        : this.styleLayersOf(id).every((l) => l.layout?.visibility === 'none');
      if (hidden) this.hidden.add(id);
    }
  }

  async restoreSelection() {
    const asked = this.askedSelection;
    if (!asked) return;
    this.askedSelection = null;
    const [layer, id] = asked.split(':');
    if (!layer || !id) return;
    try {
      await this.select(layer, id);
    } catch (error) {
      console.warn('shared selection:', error.message);
    }
  }

  /** The style layers that draw one chizu layer (or the background maps). */
  styleLayersOf(id) {
    const style = this.map.getStyle();
    if (!style) return [];
    return style.layers.filter((l) => (id === 'background' ? l.metadata?.['chizu:background'] != null : l['source-layer'] === id));
  }

  /** The names of the background maps the server offers, the default first. */
  backgroundNames() {
    return [...new Set(this.styleLayersOf('background').map((l) => l.metadata['chizu:background']))];
  }

  setLayerVisible(id, visible, { quiet = false } = {}) {
    if (visible) this.hidden.delete(id); else this.hidden.add(id);
    const names = id === 'background' ? this.backgroundNames() : [];
    if (!names.includes(this.background)) this.background = names[0] ?? null;
    for (const layer of this.styleLayersOf(id)) {
      // Of several background maps, only the chosen one is drawn.
      const shown = visible && (id !== 'background' || layer.metadata['chizu:background'] === this.background);
      this.map.setLayoutProperty(layer.id, 'visibility', shown ? 'visible' : 'none');
    }
    if (!quiet) this.updateAddress();
  }

  chooseBackground(name) {
    this.background = name;
    this.setLayerVisible('background', !this.hidden.has('background'));
  }

  /** Sets a layer's opacity (0..1) as a share of what the style gives it. */
  setLayerOpacity(id, factor) {
    this.opacity.set(id, factor);
    const original = this.originalOpacity ??= new Map();
    for (const layer of this.styleLayersOf(id)) {
      const property = OPACITY[layer.type];
      if (!property) continue;
      if (!original.has(layer.id)) original.set(layer.id, layer.paint?.[property]);
      this.map.setPaintProperty(layer.id, property, scaledOpacity(original.get(layer.id), factor));
    }
  }

  /**
   * The catalog's layers in the style's drawing order, topmost first (the
   * style puts what matters most on top; labels, always on top, do not count).
   */
  layersTopFirst() {
    const order = (this.map.getStyle()?.layers ?? [])
      .filter((l) => l.type !== 'symbol').map((l) => l['source-layer']).filter(Boolean);
    const rank = (id) => order.lastIndexOf(id);
    return [...this.catalog].sort((a, b) => rank(b.id) - rank(a.id));
  }

  /** The chizu layers the map shows now, topmost first. */
  visibleLayers() {
    const ids = this.layersTopFirst().map((l) => l.id).filter((id) => this.styleLayersOf(id).length > 0);
    if (this.styleLayersOf('background').length > 0) ids.push('background');
    return ids.filter((id) => !this.hidden.has(id));
  }

  /** Writes what a shared link restores into the address (view: MapLibre's hash). */
  updateAddress() {
    if (!this.visibilityDecided) return;
    const url = new URL(window.location.href);
    url.searchParams.set('layers', this.visibleLayers().join(','));
    if (this.selection) url.searchParams.set('sel', `${this.selection.layer}:${this.selection.id}`);
    else url.searchParams.delete('sel');
    url.searchParams.set('lang', lang);
    if (this.backgroundNames().length > 1 && this.background) url.searchParams.set('bg', this.background);
    window.history.replaceState(window.history.state, '', url.href);
  }

  renderLayerList() {
    const list = document.getElementById('layer-list');
    const sources = document.getElementById('source-list');
    if (!list || !this.map.getStyle()) return;
    list.replaceChildren();
    // In the style's order, topmost first, as a map's legend reads.
    const entries = this.layersTopFirst()
      .filter((layer) => this.styleLayersOf(layer.id).length > 0)
      .map((layer) => ({ id: layer.id, title: titleOf(layer.title), minzoom: layer.minzoom, updated: layer.updated }));
    if (this.styleLayersOf('background').length > 0) {
      entries.push({ id: 'background', title: t('background'), minzoom: 0 });
    }
    for (const entry of entries) list.append(this.layerEntry(entry));
    if (sources) {
      const attributions = new Set();
      for (const source of Object.values(this.map.getStyle().sources)) {
        for (const part of String(source.attribution || '').split(' | ')) if (part) attributions.add(part);
      }
      sources.replaceChildren(...[...attributions].map((a) => el('li', {}, a)));
    }
  }

  /** One layer in the list: switch, data date, opacity and legend. */
  layerEntry(entry) {
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
    const updated = entry.updated ? el('small', { class: 'hint updated' }, t('updated', entry.updated.slice(0, 10))) : null;
    const opacity = el('input', {
      type: 'range', min: '0', max: '100', step: '5',
      value: String(Math.round((this.opacity.get(entry.id) ?? 1) * 100)),
      'aria-label': `${entry.title} ${t('opacity')}`,
      dataset: { opacity: entry.id },
      oninput: (event) => this.setLayerOpacity(entry.id, Number(event.target.value) / 100),
    });
    const names = entry.id === 'background' ? this.backgroundNames() : [];
    const choice = names.length > 1
      ? el('select', {
        id: 'background-choice',
        'aria-label': t('background'),
        onchange: (event) => this.chooseBackground(event.target.value),
      }, names.map((name) => el('option', { value: name, selected: name === this.background }, name)))
      : null;
    return el('li', { dataset: { layer: entry.id } },
      el('label', { class: 'layer' }, checkbox, ' ', entry.title), choice, hint, updated,
      el('label', { class: 'opacity' }, el('span', {}, t('opacity')), opacity), legend);
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

  /** Outlines one feature, fetched from the features API (on a static site, as drawn). */
  async highlight(layerId, featureId) {
    if (ARCHIVE) {
      const feature = this.drawnFeature(layerId, featureId);
      if (!feature) throw new Error(`${layerId} ${featureId} is not on the map here`);
      this.setOverlayData(HIGHLIGHT, [feature]);
      return feature;
    }
    const feature = await fetchJson(
      `/ogc/collections/${encodeURIComponent(layerId)}/items/${encodeURIComponent(featureId)}`,
      this.credentials,
      { headers: { Accept: 'application/geo+json' } },
    );
    this.setOverlayData(HIGHLIGHT, [feature]);
    return feature;
  }

  /** Selects a feature: outlined, and named in the address for sharing. */
  async select(layerId, featureId) {
    const feature = await this.highlight(layerId, featureId);
    this.selection = { layer: layerId, id: String(featureId), feature };
    this.map.getContainer().dataset.selection = `${layerId}:${featureId}`;
    this.updateAddress();
    return feature;
  }

  /** A feature as the map draws it (the parts in the loaded tiles), as GeoJSON. */
  drawnFeature(layerId, featureId) {
    const parts = this.map.querySourceFeatures(this.chizuSource(), { sourceLayer: layerId })
      .filter((f) => String(f.id) === String(featureId) && f.geometry.type !== 'Point');
    if (parts.length === 0) return null;
    return { type: 'Feature', id: parts[0].id, properties: parts[0].properties, geometry: parts[0].geometry };
  }

  /** The style's source of chizu's layers. */
  chizuSource() {
    const style = this.map.getStyle();
    return Object.keys(style.sources).find((id) => style.sources[id].url?.startsWith('pmtiles://') || style.sources[id].tiles?.some((t) => t.includes('/tiles/')));
  }

  /** What the server's point query answers, read from the features drawn under a click. */
  drawnAt(lngLat) {
    const p = this.map.project(lngLat);
    const box = [[p.x - 3, p.y - 3], [p.x + 3, p.y + 3]];
    const byLayer = new Map();
    for (const f of this.map.queryRenderedFeatures(box)) {
      const id = f.sourceLayer;
      // Label points carry no id: the lot they name is drawn too.
      if (!id || f.id == null || f.source !== this.chizuSource()) continue;
      if (!byLayer.has(id)) byLayer.set(id, new Map());
      byLayer.get(id).set(String(f.id), { id: f.id, properties: f.properties });
    }
    const layers = this.catalog.filter((l) => byLayer.has(l.id))
      .map((l) => ({ ...l, features: [...byLayer.get(l.id).values()] }));
    return { layers };
  }

  clearHighlight() {
    this.setOverlayData(HIGHLIGHT, []);
    this.selection = null;
    delete this.map.getContainer().dataset.selection;
    this.updateAddress();
  }

  /** "What is here": the features under a click, as a popup; the first is selected. */
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
      const body = ARCHIVE ? this.drawnAt(lngLat) : await fetchJson(`/query/point?${params}`, this.credentials);
      const style = this.map.getStyle();
      // The style says which layers answer a click, in what order, and
      // which fields a popup leaves out (internal states).
      const order = style?.metadata?.['chizu:popup-order'] ?? body.layers.map((l) => l.id);
      const hiddenFields = style?.metadata?.['chizu:popup-hidden-fields'] ?? {};
      const layers = body.layers
        .filter((l) => order.includes(l.id) && !this.hidden.has(l.id) && l.features.length > 0)
        .sort((a, b) => order.indexOf(a.id) - order.indexOf(b.id));
      content.replaceChildren();
      if (layers.length === 0) {
        content.append(el('p', {}, t('nothingHere')));
        this.clearHighlight();
        return;
      }
      for (const layer of layers) {
        const skip = hiddenFields[layer.id] ?? [];
        for (const feature of layer.features) {
          // In the layer's field order (the layer file's), not the JSON's.
          const rows = layer.fields.filter((f) => f.name in feature.properties && !skip.includes(f.name)).map((f) =>
            el('tr', {}, el('th', {}, titleOf(f.title) || f.name),
              el('td', { dataset: { field: f.name, value: String(feature.properties[f.name] ?? '') } },
                formatValue(feature.properties[f.name], f))));
          content.append(el('section', { dataset: { layer: layer.id } },
            el('h3', {}, titleOf(layer.title)), el('table', {}, rows)));
        }
      }
      const first = layers[0];
      await this.select(first.id, first.features[0].id).catch((e) => console.warn('select:', e.message));
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
  // A static site has no search service.
  if (ARCHIVE) {
    form.hidden = true;
    return;
  }
  const input = document.getElementById('search-input');
  const list = document.getElementById('search-results');

  const go = async (result, { keepList = false } = {}) => {
    list.hidden = !keepList;
    controller.popup?.remove();
    if (result.bbox) {
      // A district or a road: its whole extent; a feature: close enough to read it.
      controller.map.fitBounds([[result.bbox[0], result.bbox[1]], [result.bbox[2], result.bbox[3]]],
        { maxZoom: result.place ? 17 : 18, padding: 60, duration: 800 });
    } else if (result.center) {
      controller.map.flyTo({ center: result.center, zoom: 17 });
    }
    if (result.place) {
      controller.clearHighlight();
      return;
    }
    try {
      await controller.select(result.layer, result.id);
    } catch (error) {
      console.warn('highlight:', error.message);
    }
  };

  /** Results grouped by kind (districts, roads, lots...), in the server's order. */
  const render = (results) => {
    const groups = new Map();
    for (const result of results) {
      const kind = titleOf(result.kind ?? result.layer_title);
      if (!groups.has(kind)) groups.set(kind, []);
      groups.get(kind).push(result);
    }
    list.replaceChildren();
    for (const [kind, members] of groups) {
      list.append(el('li', { class: 'group', role: 'presentation' }, kind));
      for (const result of members) {
        const detail = result.place ? t('featuresFound', result.features) : titleOf(result.layer_title);
        list.append(el('li', { dataset: { kind: result.place ? 'place' : 'feature' } },
          el('button', { type: 'button', onclick: () => go(result) },
            el('strong', {}, result.label), result.reading ? ` (${result.reading})` : '', ' ', el('small', {}, detail))));
      }
    }
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const q = input.value.trim();
    if (!q) return;
    list.replaceChildren(el('li', { class: 'muted' }, t('loading')));
    list.hidden = false;
    try {
      const body = await fetchJson(`/search?${new URLSearchParams({ q, limit: '20' })}`, controller.credentials);
      if (body.results.length === 0) {
        list.replaceChildren(el('li', { class: 'muted' }, t('noResults')));
        return;
      }
      render(body.results);
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

// ------------------------------------------------------------------ tools --

/**
 * The tool buttons. Measuring, printing and sharing live in tools.js, loaded
 * on the first press: the first view of the map never waits for them.
 */
function setupTools(controller) {
  let tools = null;
  const load = async () => {
    tools ??= await import('./tools.js');
    return tools;
  };
  for (const [id, action] of [['tool-measure', 'measure'], ['tool-print', 'print'], ['tool-share', 'share']]) {
    document.getElementById(id)?.addEventListener('click', async () => {
      const module = await load();
      module[action](controller);
    });
  }
  const disclaimer = document.getElementById('disclaimer-open');
  disclaimer?.addEventListener('click', () => showDisclaimer(controller));
}

/** The city's disclaimer (免責事項): from the style, else the built-in text. */
export function disclaimerText(controller) {
  const fromStyle = controller.map.getStyle()?.metadata?.['chizu:disclaimer'];
  return fromStyle ? titleOf(fromStyle) : t('disclaimerText');
}

function showDisclaimer(controller) {
  let dialog = document.getElementById('disclaimer');
  if (!dialog) {
    dialog = el('dialog', { id: 'disclaimer', class: 'dialog' });
    document.body.append(dialog);
  }
  dialog.replaceChildren(el('h2', {}, t('disclaimer')), el('p', {}, disclaimerText(controller)),
    el('menu', {}, el('button', { type: 'button', onclick: () => dialog.close() }, t('closeButton'))));
  dialog.showModal();
}
