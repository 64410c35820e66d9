// Builds the web viewer into dist/: the two pages, their modules and styles,
// and MapLibre GL JS from the npm package (its CSP build, which needs no
// blob: workers or eval). `chizu serve --viewer viewer/dist` serves the result.
// No bundler: the pages are plain ES modules, so what is served is what is read.
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const src = join(root, 'src');
const dist = join(root, 'dist');
const maplibre = join(root, 'node_modules', 'maplibre-gl', 'dist');

rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, 'assets', 'vendor'), { recursive: true });

for (const file of ['common.js', 'public.js', 'staff.js', 'tools.js', 'chizu.css', 'icon.svg']) {
  cpSync(join(src, file), join(dist, 'assets', file));
}
for (const file of ['maplibre-gl-csp.js', 'maplibre-gl-csp-worker.js', 'maplibre-gl.css', 'LICENSE.txt']) {
  cpSync(join(maplibre, file), join(dist, 'assets', 'vendor', file));
}
// The PMTiles reader (its self-contained browser build), loaded only by the
// static site `chizu publish-site` writes.
const pmtiles = join(root, 'node_modules', 'pmtiles');
cpSync(join(pmtiles, 'dist', 'pmtiles.js'), join(dist, 'assets', 'vendor', 'pmtiles.js'));
const pmtilesPackage = JSON.parse(readFileSync(join(pmtiles, 'package.json'), 'utf8'));
writeFileSync(join(dist, 'assets', 'vendor', 'LICENSE-pmtiles.txt'),
  `pmtiles ${pmtilesPackage.version} (${pmtilesPackage.homepage ?? 'https://github.com/protomaps/PMTiles'}): ${pmtilesPackage.license}\n`);
// jsPDF's self-contained browser build, loaded only when someone prints.
const jspdf = join(root, 'node_modules', 'jspdf');
cpSync(join(jspdf, 'dist', 'jspdf.umd.min.js'), join(dist, 'assets', 'vendor', 'jspdf.umd.min.js'));
cpSync(join(jspdf, 'LICENSE'), join(dist, 'assets', 'vendor', 'LICENSE-jspdf.txt'));

// The pages as they are: chizu answers assets with `Cache-Control: no-cache`,
// so browsers revalidate every file (304 when unchanged) and never mix builds.
for (const page of ['index.html', 'staff.html']) cpSync(join(src, page), join(dist, page));

// Gzipped copies beside the assets: chizu serves them to browsers that accept
// gzip (MapLibre is ~1 MB as is, ~270 kB gzipped), with no compression work
// per request.
let raw = 0;
let zipped = 0;
for (const dir of [join(dist, 'assets'), join(dist, 'assets', 'vendor')]) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isFile() || !/\.(js|css|svg)$/.test(entry.name)) continue;
    const bytes = readFileSync(join(dir, entry.name));
    const gz = gzipSync(bytes, { level: 9 });
    writeFileSync(join(dir, `${entry.name}.gz`), gz);
    raw += bytes.length;
    zipped += gz.length;
  }
}
console.log(`viewer built in ${dist} (assets: ${(raw / 1024).toFixed(0)} KiB, ${(zipped / 1024).toFixed(0)} KiB gzipped)`);
