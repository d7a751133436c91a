// Small SVG line charts drawn by hand: no library.
import { h, s } from './dom.js';

// lineChart draws series [{name, color, points:[[t(ms), value]]}] with a
// time x axis; fmt formats y values.
// range [t0, t1] fixes the x axis (e.g. the hour asked for).
// max fixes the top of the y axis (e.g. 100 for percentages) unless a
// value goes above it; id names the figure.
export function lineChart(series, { height = 180, fmt = String, title = '', range = null, max = null, id = null } = {}) {
  const W = 600, H = height, L = 78, R = 8, T = 10, B = 22;
  const pts = series.flatMap((x) => x.points);
  if (!pts.length) return h('figure', { class: 'chartbox', id }, title ? h('figcaption', null, title) : null, h('p', { class: 'empty' }, 'No data for this range yet.'));
  let t0 = range ? range[0] : Math.min(...pts.map((p) => p[0])), t1 = range ? range[1] : Math.max(...pts.map((p) => p[0]));
  if (t1 === t0) t1 = t0 + 1;
  let y1 = Math.max(...pts.map((p) => p[1]));
  if (!(y1 > 0)) y1 = 1;
  if (max !== null && y1 <= max) y1 = max;
  else y1 *= 1.1;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - v / y1) * (H - T - B);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': title, preserveAspectRatio: 'xMidYMid meet' });
  for (let i = 0; i <= 4; i++) {
    const v = (y1 * i) / 4;
    svg.appendChild(s('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
    svg.appendChild(s('text', { x: L - 4, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, fmt(v)));
  }
  for (const t of [t0, (t0 + t1) / 2, t1]) {
    svg.appendChild(s('text', { x: x(t), y: H - 6, 'text-anchor': t === t0 ? 'start' : t === t1 ? 'end' : 'middle', class: 'axis' },
      new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })));
  }
  for (const sr of series) {
    if (!sr.points.length) continue;
    if (sr.points.length === 1) {
      const [t, v] = sr.points[0];
      svg.appendChild(s('circle', { cx: x(t), cy: y(v), r: 3, fill: sr.color }, s('title', null, sr.name)));
      continue;
    }
    const d = sr.points.map((p, i) => (i ? 'L' : 'M') + x(p[0]).toFixed(1) + ' ' + y(p[1]).toFixed(1)).join(' ');
    svg.appendChild(s('path', { d, fill: 'none', stroke: sr.color, 'stroke-width': 2, 'vector-effect': 'non-scaling-stroke' }, s('title', null, sr.name)));
  }
  const legend = h('div', { class: 'legend' }, series.map((sr) => h('span', null, h('i', { class: 'swatch', style: null, dataset: { color: sr.color } }), sr.name)));
  for (const i of legend.querySelectorAll('.swatch')) i.style.background = i.dataset.color; // CSSOM, allowed by the CSP
  return h('figure', { class: 'chartbox', id }, title ? h('figcaption', null, title) : null, svg, legend);
}

// rates turns cumulative counters [[t, counter]] into per-second rates.
export function rates(points) {
  const out = [];
  for (let i = 1; i < points.length; i++) {
    const dt = (points[i][0] - points[i - 1][0]) / 1000;
    const dv = points[i][1] - points[i - 1][1];
    if (dt > 0 && dv >= 0) out.push([points[i][0], dv / dt]);
  }
  return out;
}
