import type { ModeResult } from './runner.js';

const escapeXml = (text: string) => text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);

const BAR_COLOURS = { p50: '#2b6cb0', p95: '#dd8a2b', p99: '#c53030', req: '#2f855a' } as const;
/** One colour per mode in the latency-over-time panel (at most 12 modes per run). */
const MODE_COLOURS = ['#3182ce', '#e53e3e', '#38a169', '#d69e2e', '#805ad5', '#dd6b20', '#319795', '#d53f8c', '#4a5568', '#975a16', '#2c5282', '#9b2c2c'] as const;

function formatValue(value: number): string {
  if (value >= 100) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

/** A log-scale axis over whole decades covering `values` (ms). */
function logAxis(values: readonly number[], pixels: number): { minDecade: number; maxDecade: number; scale(ms: number): number } {
  const positive = values.filter((v) => Number.isFinite(v) && v > 0);
  const minDecade = Math.floor(Math.log10(Math.max(0.1, Math.min(1, ...positive))));
  const maxDecade = Math.max(minDecade + 1, Math.ceil(Math.log10(Math.max(10, ...positive))));
  return { minDecade, maxDecade, scale: (ms) => ((Math.log10(Math.max(ms, 10 ** minDecade)) - minDecade) / (maxDecade - minDecade)) * pixels };
}

const decadeLabel = (decade: number) => (decade >= 0 ? String(10 ** decade) : (10 ** decade).toFixed(-decade));

/**
 * The latency-over-time panel: per mode, p99 (solid) and p50 (dashed) of each second's deliveries
 * on a log scale; a second without deliveries breaks the line (a lone second is a dot).
 */
function renderSeries(results: readonly ModeResult[], box: { x: number; y: number; width: number; height: number }): string[] {
  const parts: string[] = [];
  const plotHeight = box.height;
  const seconds = Math.max(1, ...results.map((r) => r.latencySeries.length));
  const xOf = (second: number) => box.x + ((second + 0.5) / seconds) * box.width;
  const axis = logAxis(results.flatMap((r) => r.latencySeries.flatMap((p) => [p.p50 ?? NaN, p.p99 ?? NaN])), plotHeight);
  const yOf = (ms: number) => box.y + plotHeight - axis.scale(ms);
  parts.push(
    `<text x="${box.x}" y="${box.y - 14}" font-weight="600">Delivery latency over time (ms, log scale; solid p99, dashed p50; by second of delivery since the first publish)</text>`,
  );
  for (let decade = axis.minDecade; decade <= axis.maxDecade; decade += 1) {
    const y = yOf(10 ** decade);
    parts.push(`<line x1="${box.x}" y1="${y.toFixed(1)}" x2="${box.x + box.width}" y2="${y.toFixed(1)}" stroke="#e2e8f0"/>`);
    parts.push(`<text x="${box.x - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end" fill="#4a5568">${decadeLabel(decade)}</text>`);
  }
  const tickStep = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600].find((step) => seconds / step <= 10) ?? 900;
  for (let second = 0; second <= seconds; second += tickStep) {
    const x = box.x + (second / seconds) * box.width;
    parts.push(`<line x1="${x.toFixed(1)}" y1="${box.y}" x2="${x.toFixed(1)}" y2="${box.y + plotHeight}" stroke="#edf2f7"/>`);
    parts.push(`<text x="${x.toFixed(1)}" y="${box.y + plotHeight + 16}" text-anchor="middle" fill="#4a5568">${second} s</text>`);
  }
  if (results.every((r) => r.latencySeries.every((p) => p.count === 0))) {
    parts.push(`<text x="${box.x + box.width / 2}" y="${box.y + plotHeight / 2}" text-anchor="middle" fill="#718096">no deliveries</text>`);
  }
  results.forEach((result, index) => {
    const colour = MODE_COLOURS[index % MODE_COLOURS.length]!;
    for (const key of ['p99', 'p50'] as const) {
      const dash = key === 'p50' ? ' stroke-dasharray="5 3"' : '';
      const width = key === 'p99' ? 2 : 1.5;
      const label = `<title>${escapeXml(result.mode)} ${key}</title>`;
      let segment: string[] = [];
      const flush = () => {
        if (segment.length === 1) {
          const [x, y] = segment[0]!.split(',');
          parts.push(`<circle cx="${x}" cy="${y}" r="${key === 'p99' ? 2.5 : 2}" fill="${colour}">${label}</circle>`);
        } else if (segment.length > 1) {
          parts.push(`<polyline points="${segment.join(' ')}" fill="none" stroke="${colour}" stroke-width="${width}"${dash}>${label}</polyline>`);
        }
        segment = [];
      };
      for (const point of result.latencySeries) {
        const value = point[key];
        if (value === null || !Number.isFinite(value)) flush();
        else segment.push(`${xOf(point.second).toFixed(1)},${yOf(value).toFixed(1)}`);
      }
      flush();
    }
  });
  // The modes' colours, four to a line.
  results.forEach((result, index) => {
    const x = box.x + (index % 4) * 200;
    const y = box.y + plotHeight + 40 + Math.floor(index / 4) * 18;
    parts.push(`<line x1="${x}" y1="${y - 4}" x2="${x + 18}" y2="${y - 4}" stroke="${MODE_COLOURS[index % MODE_COLOURS.length]}" stroke-width="3"/>`);
    parts.push(`<text x="${x + 24}" y="${y}">${escapeXml(result.mode)}</text>`);
  });
  return parts;
}

/**
 * A self-contained SVG of one run: delivery latency (p50/p95/p99, log scale, because short
 * polling at 5 s and long polling at a few ms differ by three orders of magnitude) and HTTP
 * requests per delivered message, one row per mode; below, each mode's latency over time.
 * Opens in any browser.
 */
export function renderChart(results: readonly ModeResult[], meta: { title: string; subtitle: string }): string {
  const rowHeight = 54;
  const top = 92;
  const labelWidth = 150;
  const panelWidth = 420;
  const gap = 60;
  const latencyX = labelWidth + 10;
  const requestX = latencyX + panelWidth + gap;
  const width = requestX + panelWidth + 40;
  const barsHeight = top + rowHeight * results.length + 70;
  const seriesBox = { x: latencyX, y: barsHeight + 40, width: width - 40 - latencyX, height: 200 };
  const height = seriesBox.y + seriesBox.height + 40 + Math.ceil(results.length / 4) * 18 + 10;

  const { minDecade, maxDecade, scale: latencyScale } = logAxis(
    results.flatMap((r) => [r.latencyMs.p50, r.latencyMs.p95, r.latencyMs.p99]),
    panelWidth,
  );
  // Round the axis up to 1, 2 or 5 × 10^k so the four grid steps are readable numbers.
  const rawMax = Math.max(1, ...results.map((r) => r.requestsPerMessage ?? 0)) * 1.05;
  const magnitude = 10 ** Math.floor(Math.log10(rawMax / 4));
  const step = [1, 2, 2.5, 5, 7.5, 10].map((f) => f * magnitude).find((candidate) => candidate * 4 >= rawMax) ?? 10 * magnitude;
  const requestMax = step * 4;
  const requestScale = (value: number) => (value / requestMax) * panelWidth;

  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="20" y="28" font-size="18" font-weight="600">${escapeXml(meta.title)}</text>`,
    `<text x="20" y="48" fill="#4a5568">${escapeXml(meta.subtitle)}</text>`,
    `<text x="${latencyX}" y="${top - 14}" font-weight="600">Delivery latency, publish → delivery (ms, log scale)</text>`,
    `<text x="${requestX}" y="${top - 14}" font-weight="600">HTTP poll requests per delivered message</text>`,
  );
  const gridBottom = top + rowHeight * results.length;
  for (let decade = minDecade; decade <= maxDecade; decade += 1) {
    const x = latencyX + latencyScale(10 ** decade);
    parts.push(`<line x1="${x}" y1="${top - 4}" x2="${x}" y2="${gridBottom}" stroke="#e2e8f0"/>`);
    parts.push(`<text x="${x}" y="${gridBottom + 16}" text-anchor="middle" fill="#4a5568">${decadeLabel(decade)}</text>`);
  }
  for (let step = 0; step <= 4; step += 1) {
    const value = (requestMax / 4) * step;
    const x = requestX + requestScale(value);
    parts.push(`<line x1="${x}" y1="${top - 4}" x2="${x}" y2="${gridBottom}" stroke="#e2e8f0"/>`);
    parts.push(`<text x="${x}" y="${gridBottom + 16}" text-anchor="middle" fill="#4a5568">${formatValue(value)}</text>`);
  }

  results.forEach((result, index) => {
    const y = top + index * rowHeight;
    const faults = result.lost + result.duplicated + result.misrouted;
    parts.push(`<text x="${labelWidth}" y="${y + 22}" text-anchor="end" font-weight="600">${escapeXml(result.mode)}</text>`);
    parts.push(
      `<text x="${labelWidth}" y="${y + 38}" text-anchor="end" fill="${faults > 0 ? '#c53030' : '#718096'}" font-size="11">${faults > 0 ? `${faults} lost/dup!` : `${result.delivered} delivered`}</text>`,
    );
    // Latency measured while the server could not keep up includes queueing: say so on the row.
    const caveat = result.backpressureWaits > 0 ? 'server fell behind' : result.loadGeneratorBound ? 'load generator bound' : result.truncated ? 'stopped early' : '';
    if (caveat) parts.push(`<text x="${labelWidth}" y="${y + 51}" text-anchor="end" fill="#c05621" font-size="11">${caveat}</text>`);
    (['p50', 'p95', 'p99'] as const).forEach((key, bar) => {
      const value = result.latencyMs[key];
      const barY = y + 6 + bar * 14;
      if (!Number.isFinite(value)) return;
      const w = Math.max(1, latencyScale(value));
      parts.push(`<rect x="${latencyX}" y="${barY}" width="${w.toFixed(1)}" height="12" fill="${BAR_COLOURS[key]}"><title>${key} ${value.toFixed(2)} ms</title></rect>`);
      parts.push(`<text x="${latencyX + w + 4}" y="${barY + 10}" font-size="11">${key} ${formatValue(value)}</text>`);
    });
    if (result.requestsPerMessage !== null) {
      const w = Math.max(1, requestScale(result.requestsPerMessage));
      parts.push(`<rect x="${requestX}" y="${y + 14}" width="${w.toFixed(1)}" height="20" fill="${BAR_COLOURS.req}"/>`);
      parts.push(`<text x="${requestX + w + 4}" y="${y + 28}">${formatValue(result.requestsPerMessage)}</text>`);
    }
  });

  const legendY = barsHeight - 22;
  let legendX = latencyX;
  for (const [key, colour] of Object.entries(BAR_COLOURS)) {
    parts.push(`<rect x="${legendX}" y="${legendY - 10}" width="12" height="12" fill="${colour}"/>`);
    const label = key === 'req' ? 'requests per delivered message' : `${key} latency`;
    parts.push(`<text x="${legendX + 16}" y="${legendY}">${label}</text>`);
    legendX += key === 'req' ? 240 : 110;
  }
  parts.push(...renderSeries(results, seriesBox));
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
