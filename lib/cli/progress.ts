// Terminal progress bar and the loss-curve SVG written beside a trained model.
import type { History, Progress } from '../train/loop';

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${pad(m)}:${pad(s % 60)}`;
}

/** One status line: bar, step, loss, validation loss, tokens/s, elapsed and ETA. */
export function progressLine(p: Progress, width = 24, timeLimit = 0): string {
  const byTime = timeLimit > 0 ? Math.min(1, p.elapsed / timeLimit) : 0;
  const frac = Math.max(p.totalSteps > 0 ? p.step / p.totalSteps : 0, byTime);
  const filled = Math.round(frac * width);
  const eta = timeLimit > 0 ? Math.min(p.eta, timeLimit - p.elapsed) : p.eta;
  return (
    `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ` +
    `step ${p.step}/${p.totalSteps}  loss ${p.loss.toFixed(3)}  ` +
    `val ${p.valLoss === null ? '-' : p.valLoss.toFixed(3)}  ` +
    `${Math.round(p.tokensPerSec).toLocaleString('en-US')} tok/s  ` +
    `${duration(p.elapsed)} elapsed, ETA ${duration(eta)}`
  );
}

/** Writes progress lines to a stream: in place on a terminal, one per validation otherwise. */
export class ProgressPrinter {
  private lastValidation: number | null = null;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly timeLimit = 0,
  ) {}

  update(p: Progress): void {
    const line = progressLine(p, 24, this.timeLimit);
    if (this.out.isTTY) {
      this.out.write(`\r${line}\x1b[K`);
    } else if (p.valLoss !== null && p.valLoss !== this.lastValidation) {
      this.out.write(line + '\n');
    }
    this.lastValidation = p.valLoss;
  }

  end(): void {
    if (this.out.isTTY) this.out.write('\n');
  }
}

/** An SVG line chart of training and validation loss against steps. */
export function lossCurveSvg(history: History, title: string): string {
  const W = 640;
  const H = 360;
  const m = { left: 56, right: 16, top: 32, bottom: 40 };
  const series = [
    { name: 'train', color: '#1f77b4', points: history.train },
    { name: 'validation', color: '#d62728', points: history.validation },
  ].filter((s) => s.points.length > 0);
  const all = series.flatMap((s) => s.points);
  const maxStep = Math.max(1, ...all.map((p) => p.step));
  const losses = all.map((p) => p.loss).filter(Number.isFinite);
  const lo = losses.length ? Math.min(...losses) : 0;
  const hi = losses.length ? Math.max(...losses) : 1;
  const span = hi - lo || 1;
  const x = (step: number) => m.left + ((W - m.left - m.right) * step) / maxStep;
  const y = (loss: number) => m.top + ((H - m.top - m.bottom) * (hi - loss)) / span;
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => lo + f * span);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`,
    `<line x1="${m.left}" y1="${H - m.bottom}" x2="${W - m.right}" y2="${H - m.bottom}" stroke="black"/>`,
    `<line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${H - m.bottom}" stroke="black"/>`,
    ...ticks.map(
      (t) =>
        `<text x="${m.left - 6}" y="${y(t) + 4}" text-anchor="end">${t.toFixed(2)}</text>` +
        `<line x1="${m.left}" y1="${y(t)}" x2="${W - m.right}" y2="${y(t)}" stroke="#ddd"/>`,
    ),
    `<text x="${W / 2}" y="${H - 8}" text-anchor="middle">step (max ${maxStep})</text>`,
    `<text x="14" y="${H / 2}" text-anchor="middle" transform="rotate(-90 14 ${H / 2})">loss (nats/token)</text>`,
    ...series.map(
      (s) =>
        `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${s.points
          .map((p) => `${x(p.step).toFixed(1)},${y(p.loss).toFixed(1)}`)
          .join(' ')}"/>`,
    ),
    ...series.map(
      (s, i) =>
        `<text x="${W - m.right - 100}" y="${m.top + 16 * (i + 1)}" fill="${s.color}">${s.name}</text>`,
    ),
    '</svg>',
    '',
  ];
  return parts.join('\n');
}
