// The map tools both pages share, loaded on the first press of a tool button
// (common.js): measuring (計測), printing to PDF (印刷) and sharing a link
// (URL共有). Nothing here is fetched before someone asks for it, and jsPDF
// (~420 kB) only when a PDF is made.
import { disclaimerText, el, lang, t, titleOf } from './common.js';

const maplibregl = window.maplibregl;

const TEXT = {
  ja: {
    measureDistance: '距離',
    measureArea: '面積',
    measureHint: '地図をクリックして点を置きます',
    measureClear: 'やり直す',
    measureClose: '終了',
    distance: '距離',
    area: '面積',
    perimeter: '周長',
    printHeading: '印刷 (PDF)',
    printTitle: 'タイトル',
    printPaper: '用紙',
    printOrientation: '向き',
    portrait: '縦',
    landscape: '横',
    printScale: '縮尺',
    currentView: '現在の表示',
    printMake: 'PDF を作成',
    printing: '作成中…',
    printed: (name) => `${name} を作成しました`,
    printFailed: 'PDF を作成できませんでした',
    scaleLabel: '縮尺',
    printedOn: '印刷日',
    legendHeading: '凡例',
    shareHeading: 'この地図を共有',
    shareHint: '表示範囲・表示中のレイヤ・選択中の地物・言語がこのアドレスに含まれます',
    copy: 'コピー',
    copied: 'コピーしました',
    close: '閉じる',
    cancel: 'キャンセル',
  },
  en: {
    measureDistance: 'Distance',
    measureArea: 'Area',
    measureHint: 'Click the map to place points',
    measureClear: 'Start again',
    measureClose: 'Done',
    distance: 'Distance',
    area: 'Area',
    perimeter: 'Perimeter',
    printHeading: 'Print (PDF)',
    printTitle: 'Title',
    printPaper: 'Paper',
    printOrientation: 'Orientation',
    portrait: 'Portrait',
    landscape: 'Landscape',
    printScale: 'Scale',
    currentView: 'Current view',
    printMake: 'Make PDF',
    printing: 'Making the PDF…',
    printed: (name) => `Made ${name}`,
    printFailed: 'The PDF could not be made',
    scaleLabel: 'Scale',
    printedOn: 'Printed',
    legendHeading: 'Legend',
    shareHeading: 'Share this map',
    shareHint: 'The address holds the view, the visible layers, the selected feature and the language',
    copy: 'Copy',
    copied: 'Copied',
    close: 'Close',
    cancel: 'Cancel',
  },
};

function tt(key, ...args) {
  const value = TEXT[lang][key] ?? TEXT.ja[key] ?? t(key);
  return typeof value === 'function' ? value(...args) : value;
}

function dialog(id) {
  let node = document.getElementById(id);
  if (!node) {
    node = el('dialog', { id, class: 'dialog' });
    document.body.append(node);
  }
  return node;
}

// ------------------------------------------------------------- measuring --

// GRS80 (JGD2011), the ellipsoid of Japan's survey data.
const A = 6_378_137;
const F = 1 / 298.257222101;
const E2 = F * (2 - F);

/**
 * Local radii of the ellipsoid at latitude `phi` (radians): along the
 * meridian (M) and the prime vertical (N).
 */
function radii(phi) {
  const w = 1 - E2 * Math.sin(phi) ** 2;
  return { m: (A * (1 - E2)) / w ** 1.5, n: A / Math.sqrt(w) };
}

/**
 * Ellipsoidal distance of a short segment (a few km at most: the map's
 * measuring), on the plane tangent at its middle latitude: within 1e-6 of
 * the geodesic for a city's distances, which a click's pixel dwarfs.
 */
export function segmentMetres(a, b) {
  const k = Math.PI / 180;
  const { m, n } = radii(((a[1] + b[1]) / 2) * k);
  const dx = n * Math.cos(((a[1] + b[1]) / 2) * k) * (b[0] - a[0]) * k;
  const dy = m * (b[1] - a[1]) * k;
  return Math.hypot(dx, dy);
}

/** Area of a ring of [lon, lat] on the plane tangent at its middle, in m². */
export function ringSquareMetres(ring) {
  const k = Math.PI / 180;
  const lat0 = ring.reduce((sum, p) => sum + p[1], 0) / ring.length;
  const lon0 = ring.reduce((sum, p) => sum + p[0], 0) / ring.length;
  const { m, n } = radii(lat0 * k);
  const xy = ring.map((p) => [n * Math.cos(p[1] * k) * (p[0] - lon0) * k, m * (p[1] - lat0) * k]);
  let twice = 0;
  for (let i = 0; i < xy.length; i++) {
    const [x1, y1] = xy[i];
    const [x2, y2] = xy[(i + 1) % xy.length];
    twice += x1 * y2 - x2 * y1;
  }
  return Math.abs(twice) / 2;
}

function formatMetres(metres) {
  return metres >= 1000 ? `${(metres / 1000).toFixed(3)} km` : `${metres.toFixed(2)} m`;
}

function formatArea(squareMetres) {
  return `${squareMetres.toFixed(2)} m² (${(squareMetres / 10_000).toFixed(4)} ha)`;
}

const MEASURE = 'chizu-measure';
/** The measuring line's colour: no layer uses it (the print test finds it). */
export const MEASURE_COLOR = '#00c800';

export function measure(controller) {
  if (controller.tool?.name === 'measure') {
    controller.tool.stop();
    return;
  }
  controller.tool?.stop?.();
  const map = controller.map;
  const state = { mode: 'distance', points: [] };
  if (!controller.overlays.some((o) => o.id === MEASURE)) {
    // Vertices under the line: the line reaches each clicked point exactly.
    controller.addOverlay(MEASURE, [
      { id: `${MEASURE}-fill`, type: 'fill', filter: ['==', ['geometry-type'], 'Polygon'],
        paint: { 'fill-color': MEASURE_COLOR, 'fill-opacity': 0.12 } },
      { id: `${MEASURE}-vertex`, type: 'circle', filter: ['==', ['geometry-type'], 'Point'],
        paint: { 'circle-radius': 4, 'circle-color': '#ffffff', 'circle-stroke-color': '#222222', 'circle-stroke-width': 1.5 } },
      { id: `${MEASURE}-line`, type: 'line', filter: ['!=', ['geometry-type'], 'Point'],
        paint: { 'line-color': MEASURE_COLOR, 'line-width': 3 } },
    ]);
  }
  const readout = el('output', { id: 'measure-readout', 'aria-live': 'polite' });
  const modeButton = (mode) => el('button', {
    type: 'button', dataset: { mode }, 'aria-pressed': String(state.mode === mode),
    onclick: () => { state.mode = mode; draw(); },
  }, tt(mode === 'distance' ? 'measureDistance' : 'measureArea'));
  const panel = el('section', { id: 'measure-panel', class: 'tool-panel', role: 'dialog', 'aria-label': t('toolsMeasure') },
    el('div', { class: 'modes' }, modeButton('distance'), modeButton('area')),
    el('p', { class: 'hint' }, tt('measureHint')),
    readout,
    el('menu', {},
      el('button', { type: 'button', onclick: () => { state.points = []; draw(); } }, tt('measureClear')),
      el('button', { type: 'button', onclick: () => stop() }, tt('measureClose'))));
  map.getContainer().append(panel);

  function draw() {
    for (const b of panel.querySelectorAll('[data-mode]')) b.setAttribute('aria-pressed', String(b.dataset.mode === state.mode));
    const pts = state.points;
    const features = pts.map((p) => ({ type: 'Feature', properties: {}, geometry: { type: 'Point', coordinates: p } }));
    let metres = 0;
    for (let i = 1; i < pts.length; i++) metres += segmentMetres(pts[i - 1], pts[i]);
    readout.replaceChildren();
    delete readout.dataset.metres;
    delete readout.dataset.squareMetres;
    if (state.mode === 'area' && pts.length >= 3) {
      const ring = [...pts, pts[0]];
      features.push({ type: 'Feature', properties: {}, geometry: { type: 'Polygon', coordinates: [ring] } });
      features.push({ type: 'Feature', properties: {}, geometry: { type: 'LineString', coordinates: ring } });
      const area = ringSquareMetres(pts);
      const perimeter = metres + segmentMetres(pts[pts.length - 1], pts[0]);
      readout.dataset.squareMetres = String(area);
      readout.dataset.metres = String(perimeter);
      readout.append(el('div', {}, `${tt('area')}: ${formatArea(area)}`),
        el('div', {}, `${tt('perimeter')}: ${formatMetres(perimeter)}`));
    } else if (pts.length >= 2) {
      features.push({ type: 'Feature', properties: {}, geometry: { type: 'LineString', coordinates: pts } });
      readout.dataset.metres = String(metres);
      readout.append(el('div', {}, `${tt('distance')}: ${formatMetres(metres)}`));
    }
    controller.setOverlayData(MEASURE, features);
  }

  const onClick = (event) => {
    state.points.push([event.lngLat.lng, event.lngLat.lat]);
    draw();
  };
  function stop() {
    map.off('click', onClick);
    map.getCanvas().classList.remove('measuring');
    panel.remove();
    controller.tool = null;
  }
  map.on('click', onClick);
  map.getCanvas().classList.add('measuring');
  controller.popup?.remove();
  controller.tool = { name: 'measure', stop, state };
  draw();
}

// ---------------------------------------------------------------- sharing --

export function share(controller) {
  controller.updateAddress();
  const node = dialog('share-dialog');
  const input = el('input', { id: 'share-url', type: 'url', readonly: true, value: window.location.href });
  const status = el('span', { class: 'summary', role: 'status' });
  node.replaceChildren(
    el('h2', {}, tt('shareHeading')),
    el('p', { class: 'summary' }, tt('shareHint')),
    input,
    el('menu', {},
      status,
      el('button', {
        type: 'button',
        onclick: async () => {
          input.select();
          try {
            await navigator.clipboard.writeText(input.value);
            status.textContent = tt('copied');
          } catch {
            status.textContent = '';
          }
        },
      }, tt('copy')),
      el('button', { type: 'button', onclick: () => node.close() }, tt('close'))));
  node.showModal();
  input.select();
}

// --------------------------------------------------------------- printing --

const PAPER = { A4: [210, 297], A3: [297, 420] };
const SCALES = [500, 1000, 2500, 5000, 10000, 25000];
const DPI = 300;
const PX_PER_MM = DPI / 25.4;
/** CSS pixels are 1/96 inch: MapLibre's zoom is in them. */
const CSS_PX_PER_MM = 96 / 25.4;
const EARTH = 2 * Math.PI * 6_378_137;

/** The scale of the map as it is on screen (1:n) at its centre. */
function currentScale(map) {
  const lat = map.getCenter().lat * (Math.PI / 180);
  const metresPerCssPx = (EARTH * Math.cos(lat)) / (512 * 2 ** map.getZoom());
  return metresPerCssPx * CSS_PX_PER_MM * 1000;
}

/** The MapLibre zoom that draws 1:`scale` on paper at latitude `lat` (degrees). */
function zoomForScale(scale, lat) {
  const metresPerCssPx = scale / 1000 / CSS_PX_PER_MM;
  return Math.log2((EARTH * Math.cos(lat * (Math.PI / 180))) / (512 * metresPerCssPx));
}

export function print(controller) {
  const node = dialog('print-dialog');
  const select = (name, options) => el('select', { name },
    options.map(([value, label]) => el('option', { value }, label)));
  const status = el('p', { id: 'print-status', class: 'summary', role: 'status' });
  const form = el('form', { id: 'print-form', method: 'dialog' },
    el('h2', {}, tt('printHeading')),
    el('label', {}, el('span', {}, tt('printTitle')),
      el('input', { name: 'title', value: document.querySelector('h1')?.textContent ?? '' })),
    el('label', {}, el('span', {}, tt('printPaper')), select('paper', [['A4', 'A4'], ['A3', 'A3']])),
    el('label', {}, el('span', {}, tt('printOrientation')),
      select('orientation', [['portrait', tt('portrait')], ['landscape', tt('landscape')]])),
    el('label', {}, el('span', {}, tt('printScale')),
      select('scale', [['view', `${tt('currentView')} (1:${Math.round(currentScale(controller.map)).toLocaleString()})`],
        ...SCALES.map((s) => [String(s), `1:${s.toLocaleString()}`])])),
    status,
    el('menu', {},
      el('button', { type: 'button', onclick: () => node.close() }, tt('cancel')),
      el('button', { type: 'submit', id: 'print-make' }, tt('printMake'))));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const button = form.querySelector('#print-make');
    button.disabled = true;
    status.textContent = tt('printing');
    try {
      const options = {
        title: String(data.get('title') || ''),
        paper: String(data.get('paper')),
        orientation: String(data.get('orientation')),
        scale: data.get('scale') === 'view' ? null : Number(data.get('scale')),
      };
      const { blob, name } = await makePdf(controller, options);
      const url = URL.createObjectURL(blob);
      const link = el('a', { href: url, download: name, id: 'print-download' }, name);
      status.replaceChildren(tt('printed', name), ' ', link);
      link.click();
    } catch (error) {
      console.error('print:', error);
      status.textContent = `${tt('printFailed')}: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  });
  node.replaceChildren(form);
  node.showModal();
}

let jspdfLoading = null;

/** jsPDF's browser build, as a script of this origin (the CSP allows no other). */
function loadJsPdf() {
  jspdfLoading ??= new Promise((resolve, reject) => {
    const script = el('script', { src: new URL('vendor/jspdf.umd.min.js', import.meta.url).href });
    script.addEventListener('load', () => resolve(window.jspdf.jsPDF));
    script.addEventListener('error', () => reject(new Error('jsPDF could not be loaded')));
    document.head.append(script);
  });
  return jspdfLoading;
}

/** The legend entries of the visible layers, as the layer list shows them. */
function legendItems(controller) {
  const items = [];
  for (const id of controller.visibleLayers()) {
    for (const layer of controller.styleLayersOf(id)) {
      for (const item of layer.metadata?.['chizu:legend'] ?? []) items.push({ ...item, label: titleOf(item.label) });
    }
  }
  return items;
}

/**
 * Lays the page out in millimetres: title band, map, and a footer sized to
 * the legend (columns of 48 mm, rows of 4 mm) with scale bar, attribution,
 * date and disclaimer.
 */
function layout(paper, orientation, legendCount) {
  let [w, h] = PAPER[paper];
  if (orientation === 'landscape') [w, h] = [h, w];
  const margin = 10;
  const columns = Math.max(1, Math.floor((w - 2 * margin - 60) / 48));
  const rows = Math.ceil(legendCount / columns);
  const footer = Math.min(h * 0.35, 30 + rows * 4);
  const top = margin + 12;
  const map = { x: margin, y: top, w: w - 2 * margin, h: h - top - margin - footer };
  return { w, h, margin, columns, map, footer: { x: margin, y: map.y + map.h + 3, w: map.w, h: footer - 3 } };
}

/** Renders the map at print resolution in an off-screen map of the same style. */
async function renderMap(controller, box, center, zoom) {
  const holder = el('div', { class: 'print-render', 'aria-hidden': 'true' });
  holder.style.setProperty('width', `${box.w * CSS_PX_PER_MM}px`);
  holder.style.setProperty('height', `${box.h * CSS_PX_PER_MM}px`);
  document.body.append(holder);
  const map = new maplibregl.Map({
    container: holder,
    style: controller.map.getStyle(),
    center,
    zoom,
    bearing: 0,
    interactive: false,
    attributionControl: false,
    fadeDuration: 0,
    maxZoom: 24,
    pixelRatio: DPI / 96,
    canvasContextAttributes: { preserveDrawingBuffer: true },
    transformRequest: (url) => ({ url, credentials: controller.credentials }),
  });
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the map did not finish drawing in 90 s')), 90_000);
      map.once('idle', () => { clearTimeout(timer); resolve(); });
      map.once('error', (e) => console.warn('print map:', e.error?.message));
    });
    const canvas = map.getCanvas();
    const copy = document.createElement('canvas');
    copy.width = canvas.width;
    copy.height = canvas.height;
    copy.getContext('2d').drawImage(canvas, 0, 0);
    return copy;
  } finally {
    map.remove();
    holder.remove();
  }
}

/** A round length (1, 2 or 5 x 10^n m) whose bar is at most `maxMm` long at 1:`scale`. */
function scaleBarMetres(scale, maxMm) {
  const most = (maxMm * scale) / 1000;
  const power = 10 ** Math.floor(Math.log10(most));
  return [5, 2, 1].map((m) => m * power).find((m) => m <= most);
}

function wrap(ctx, text, width) {
  const lines = [];
  let line = '';
  for (const ch of text) {
    if (ctx.measureText(line + ch).width > width && line) {
      lines.push(line);
      line = ch;
    } else {
      line += ch;
    }
  }
  if (line) lines.push(line);
  return lines;
}

/**
 * The PDF: one page drawn on a canvas at 300 dpi (map, title, north arrow,
 * scale bar, legend, attribution, date, disclaimer: the browser's fonts draw
 * the Japanese text), placed in the PDF at the paper's exact size.
 * The layout (mm) goes in the PDF's subject, for tools that check prints.
 */
async function makePdf(controller, { title, paper, orientation, scale }) {
  const jsPDF = await loadJsPdf();
  const map = controller.map;
  const center = map.getCenter();
  const items = legendItems(controller);
  const page = layout(paper, orientation, items.length);
  const zoom = scale ? zoomForScale(scale, center.lat) : map.getZoom();
  const shown = scale ?? Math.round(currentScale(map));
  const image = await renderMap(controller, page.map, center, zoom);

  const canvas = document.createElement('canvas');
  canvas.width = Math.round(page.w * PX_PER_MM);
  canvas.height = Math.round(page.h * PX_PER_MM);
  const ctx = canvas.getContext('2d');
  const mm = (v) => v * PX_PER_MM;
  const font = (sizeMm, weight = 'normal') => `${weight} ${mm(sizeMm)}px "Noto Sans CJK JP", "Noto Sans JP", sans-serif`;
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(image, mm(page.map.x), mm(page.map.y), mm(page.map.w), mm(page.map.h));
  ctx.strokeStyle = '#222222';
  ctx.lineWidth = mm(0.3);
  ctx.strokeRect(mm(page.map.x), mm(page.map.y), mm(page.map.w), mm(page.map.h));

  // Title band: title left, scale and date right.
  const today = new Date().toISOString().slice(0, 10);
  ctx.fillStyle = '#111111';
  ctx.textBaseline = 'alphabetic';
  ctx.font = font(5.5, 'bold');
  ctx.fillText(title, mm(page.margin), mm(page.margin + 7));
  ctx.font = font(3);
  ctx.textAlign = 'right';
  ctx.fillText(`${tt('scaleLabel')} 1:${Math.round(shown).toLocaleString()}   ${tt('printedOn')} ${today}`,
    mm(page.w - page.margin), mm(page.margin + 7));
  ctx.textAlign = 'left';

  // North arrow, top right inside the map (the map is never rotated).
  const nx = page.map.x + page.map.w - 10;
  const ny = page.map.y + 6;
  ctx.fillStyle = 'rgba(255,255,255,0.85)';
  ctx.fillRect(mm(nx - 5), mm(ny - 3), mm(10), mm(16));
  ctx.fillStyle = '#111111';
  ctx.beginPath();
  ctx.moveTo(mm(nx), mm(ny + 1));
  ctx.lineTo(mm(nx + 3), mm(ny + 11));
  ctx.lineTo(mm(nx), mm(ny + 8.5));
  ctx.lineTo(mm(nx - 3), mm(ny + 11));
  ctx.closePath();
  ctx.fill();
  ctx.font = font(3.2, 'bold');
  ctx.textAlign = 'center';
  ctx.fillText('N', mm(nx), mm(ny + 0.5));
  ctx.textAlign = 'left';

  // Scale bar, in the footer's first column.
  const f = page.footer;
  const barMetres = scaleBarMetres(shown, 40);
  const barMm = (barMetres * 1000) / shown;
  const barY = f.y + 4;
  for (let i = 0; i < 4; i++) {
    ctx.fillStyle = i % 2 === 0 ? '#111111' : '#ffffff';
    ctx.fillRect(mm(f.x + (i * barMm) / 4), mm(barY), mm(barMm / 4), mm(1.5));
  }
  ctx.strokeStyle = '#111111';
  ctx.lineWidth = mm(0.2);
  ctx.strokeRect(mm(f.x), mm(barY), mm(barMm), mm(1.5));
  ctx.fillStyle = '#111111';
  ctx.font = font(2.6);
  ctx.fillText('0', mm(f.x), mm(barY + 4.5));
  ctx.textAlign = 'right';
  ctx.fillText(barMetres >= 1000 ? `${barMetres / 1000} km` : `${barMetres} m`, mm(f.x + barMm), mm(barY + 4.5));
  ctx.textAlign = 'left';
  const scaleBar = { x: f.x, y: barY, w: barMm, h: 1.5, metres: barMetres };

  // Legend of the visible layers, in columns right of the scale bar.
  const legendX = f.x + 55;
  ctx.font = font(2.8, 'bold');
  ctx.fillText(tt('legendHeading'), mm(legendX), mm(f.y + 3));
  ctx.font = font(2.5);
  const rows = Math.ceil(items.length / page.columns) || 1;
  items.forEach((item, i) => {
    const x = legendX + Math.floor(i / rows) * 48;
    const y = f.y + 5 + (i % rows) * 4;
    ctx.fillStyle = item.color;
    if (item.kind === 'line') ctx.fillRect(mm(x), mm(y + 1.2), mm(6), mm(0.8));
    else ctx.fillRect(mm(x), mm(y), mm(6), mm(3));
    ctx.fillStyle = '#111111';
    ctx.fillText(item.label, mm(x + 8), mm(y + 2.6), mm(38));
  });
  const legend = { x: legendX, y: f.y, w: page.columns * 48, h: 5 + rows * 4, items: items.length };

  // Attribution and disclaimer at the bottom.
  const sources = [...document.querySelectorAll('#source-list li')].map((li) => li.textContent).join(' / ');
  ctx.font = font(2.3);
  let y = page.h - page.margin - 9;
  ctx.fillText(`${t('sourcesHeading')}: ${sources}`, mm(f.x), mm(y), mm(f.w));
  ctx.fillStyle = '#444444';
  for (const line of wrap(ctx, `${t('disclaimer')}: ${disclaimerText(controller)}`, mm(f.w)).slice(0, 3)) {
    y += 3;
    ctx.fillText(line, mm(f.x), mm(y));
  }

  const pdf = new jsPDF({ orientation, unit: 'mm', format: [page.w, page.h], compress: true });
  pdf.setProperties({
    title,
    subject: JSON.stringify({ map: page.map, scaleBar, legend, scale: shown, dpi: DPI, paper, orientation }),
    creator: 'chizu',
  });
  pdf.addImage(canvas.toDataURL('image/jpeg', 0.92), 'JPEG', 0, 0, page.w, page.h, undefined, 'FAST');
  const name = `chizu-${paper}-${orientation}-1-${Math.round(shown)}-${today}.pdf`;
  return { blob: pdf.output('blob'), name };
}
