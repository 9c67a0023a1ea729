/**
 * Headless rendering of Vega-Lite specs: compile with vega-lite, render to SVG with vega's
 * View (renderer 'none': no canvas, no browser), rasterize to PNG with resvg using DejaVu
 * fonts given explicitly (without them resvg draws no text at all). Same spec ⇒ same bytes.
 */
import { existsSync, readFileSync } from 'node:fs';
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/** Debian's fonts-dejavu-core. */
export const FONT_DIR = '/usr/share/fonts/truetype/dejavu';
const FONT_FILES = ['DejaVuSans.ttf', 'DejaVuSans-Bold.ttf'];

/** Compiles a Vega-Lite spec to Vega (throws on an invalid spec). */
export function toVega(spec: TopLevelSpec): vega.Spec {
  return compile(spec).spec as vega.Spec;
}

/** Renders a Vega-Lite spec to SVG text. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(toVega(spec)), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Rasterizes SVG to PNG (white background, 2× scale for print). */
export function svgToPng(svg: string, scale = 2): Uint8Array {
  const fontFiles = FONT_FILES.map((f) => `${FONT_DIR}/${f}`).filter((f) => existsSync(f));
  if (fontFiles.length === 0) throw new Error(`no fonts for PNG rendering in ${FONT_DIR} (install fonts-dejavu-core)`);
  const r = new Resvg(svg, {
    background: 'white',
    fitTo: { mode: 'zoom', value: scale },
    font: { fontFiles, loadSystemFonts: false, defaultFontFamily: 'DejaVu Sans', sansSerifFamily: 'DejaVu Sans' },
  });
  return r.render().asPng();
}

/** Both renderings of a spec. */
export async function renderChart(spec: TopLevelSpec): Promise<{ svg: string; png: Uint8Array }> {
  const svg = await renderSvg(spec);
  return { svg, png: svgToPng(svg) };
}

/** The directory of an installed package (its `exports` may hide package.json from require.resolve). */
export function packageDir(name: string): string {
  let dir = new URL('.', import.meta.url).pathname;
  for (;;) {
    const p = `${dir}node_modules/${name}/`;
    if (existsSync(`${p}package.json`)) return p;
    const up = dir.replace(/[^/]+\/$/, '');
    if (up === dir || up === '') throw new Error(`package ${name} is not installed`);
    dir = up;
  }
}

/** The browser build of vega, vega-lite and vega-embed (for the offline HTML report). */
export function browserBuilds(): { vega: string; vegaLite: string; vegaEmbed: string } {
  const read = (pkg: string, file: string): string => readFileSync(`${packageDir(pkg)}build/${file}`, 'utf8');
  return { vega: read('vega', 'vega.min.js'), vegaLite: read('vega-lite', 'vega-lite.min.js'), vegaEmbed: read('vega-embed', 'vega-embed.min.js') };
}
