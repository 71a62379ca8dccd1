// Builds the dashboard into ../pipeline/api/dashboard/ (committed, so running the app needs no npm):
//   app.js   the ES module bundle (uPlot included), minified
//   app.css  uPlot's stylesheet + ours
//   index.html, favicon.svg   copied
//   THIRD_PARTY_LICENSES.txt  the licences of the bundled packages
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'pipeline', 'api', 'dashboard');
const bundled = ['uplot'];

mkdirSync(out, { recursive: true });

const pkg = (name) => JSON.parse(readFileSync(join(here, 'node_modules', name, 'package.json'), 'utf8'));
const banner = `/*! emotion-pipeline dashboard. Bundles ${bundled.map((n) => `${n}@${pkg(n).version} (${pkg(n).license})`).join(', ')}; see THIRD_PARTY_LICENSES.txt. Built from frontend/ (npm ci && npm run build). */`;

await build({
  entryPoints: [join(here, 'src', 'main.js')],
  bundle: true,
  format: 'esm',
  target: ['es2022'],
  minify: true,
  legalComments: 'none',
  banner: { js: banner },
  outfile: join(out, 'app.js'),
  logLevel: 'warning',
});

const uplotCss = readFileSync(join(here, 'node_modules', 'uplot', 'dist', 'uPlot.min.css'), 'utf8');
const ownCss = readFileSync(join(here, 'src', 'app.css'), 'utf8');
writeFileSync(join(out, 'app.css'), `/* uPlot ${pkg('uplot').version} (MIT) */\n${uplotCss.trim()}\n/* emotion-pipeline */\n${ownCss}`);

for (const name of ['index.html', 'favicon.svg']) copyFileSync(join(here, 'src', name), join(out, name));

const licences = bundled.map((name) => {
  const text = readFileSync(join(here, 'node_modules', name, 'LICENSE'), 'utf8').trim();
  const p = pkg(name);
  return `${name}@${p.version} (${p.license}) — ${p.homepage || p.repository?.url || ''}\n\n${text}\n`;
});
writeFileSync(join(out, 'THIRD_PARTY_LICENSES.txt'),
  `Third-party code bundled into app.js and app.css by frontend/build.mjs.\n\n${licences.join('\n---\n\n')}`);

console.log(`dashboard built into ${out}`);
