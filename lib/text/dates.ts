// The date-normalisation task: dates written the many ways people write them -> ISO yyyy-mm-dd.
// Generated here from a seed, so training and held-out sets are reproducible and disjoint by seed
// (they may share a date, never a seed's stream). Years run 1950..2049; a two-digit year yy means
// 19yy for yy >= 50 and 20yy otherwise, one rule the model can learn. Only unambiguous numeric
// forms are used (day first, or year first), never the US month-first numeric form.
import { Random } from '../core/random';

const MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];
const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

export interface DatePair {
  source: string;
  target: string;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

function ordinal(d: number): string {
  const suffix =
    d % 10 === 1 && d !== 11
      ? 'st'
      : d % 10 === 2 && d !== 12
        ? 'nd'
        : d % 10 === 3 && d !== 13
          ? 'rd'
          : 'th';
  return `${d}${suffix}`;
}

interface Parts {
  y: number;
  m: number; // 1..12
  d: number;
  weekday: number; // 0 = Sunday
}

type Format = (p: Parts) => string;

const month = (p: Parts) => MONTHS[p.m - 1];
const mon = (p: Parts) => MONTHS[p.m - 1].slice(0, 3);
const day = (p: Parts) => WEEKDAYS[p.weekday];
const dy = (p: Parts) => WEEKDAYS[p.weekday].slice(0, 3);
const yy = (p: Parts) => pad(p.y % 100);

const FORMATS: Format[] = [
  (p) => `${p.d} ${month(p)} ${p.y}`,
  (p) => `${month(p)} ${p.d}, ${p.y}`,
  (p) => `${mon(p)} ${ordinal(p.d)}, '${yy(p)}`,
  (p) => `${pad(p.d)}/${pad(p.m)}/${p.y}`,
  (p) => `${p.d}/${p.m}/${yy(p)}`,
  (p) => `${day(p)}, the ${ordinal(p.d)} of ${month(p)} ${p.y}`,
  (p) => `${pad(p.d)}.${pad(p.m)}.${p.y}`,
  (p) => `${p.y}-${pad(p.m)}-${pad(p.d)}`,
  (p) => `${p.y}/${p.m}/${p.d}`,
  (p) => `${pad(p.d)}-${mon(p)}-${p.y}`,
  (p) => `${dy(p)} ${p.d} ${mon(p)} ${p.y}`,
  (p) => `${ordinal(p.d)} ${month(p)}, ${p.y}`,
  (p) => `${mon(p)}. ${p.d}, ${p.y}`,
  (p) => `${dy(p)}, ${month(p)} ${ordinal(p.d)} ${p.y}`,
  (p) => `the ${ordinal(p.d)} of ${month(p)}, ${p.y}`,
  (p) => `${p.d} ${mon(p)} '${yy(p)}`,
];

/** The case a writer used: as written, all lower or all upper. */
function recase(s: string, r: Random): string {
  const u = r.uniform();
  return u < 0.7 ? s : u < 0.85 ? s.toLowerCase() : s.toUpperCase();
}

/** `count` (human date, ISO date) pairs drawn from `seed`. */
export function datePairs(count: number, seed: number): DatePair[] {
  const r = new Random(seed);
  const start = Date.UTC(1950, 0, 1);
  const days = (Date.UTC(2050, 0, 1) - start) / 86_400_000;
  const out: DatePair[] = [];
  for (let i = 0; i < count; i++) {
    const date = new Date(start + r.int(days) * 86_400_000);
    const p: Parts = {
      y: date.getUTCFullYear(),
      m: date.getUTCMonth() + 1,
      d: date.getUTCDate(),
      weekday: date.getUTCDay(),
    };
    const format = FORMATS[r.int(FORMATS.length)];
    out.push({
      source: recase(format(p), r),
      target: `${p.y}-${pad(p.m)}-${pad(p.d)}`,
    });
  }
  return out;
}

/** Every character a date source or target can contain, for building a vocabulary. */
export function dateAlphabet(): string {
  const words = [...MONTHS, ...WEEKDAYS, 'the of st nd rd th'].join(' ');
  return `${words}${words.toLowerCase()}${words.toUpperCase()}0123456789 ,./-'`;
}
