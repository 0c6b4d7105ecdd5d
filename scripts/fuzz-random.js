// The seeded generator of the fuzzers (mulberry32), so that a run repeats exactly from its seed.
'use strict';

/** { next() in [0, 1), int(n) in [0, n), pick(list) } from `seed`. */
function generator(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n) => Math.floor(next() * n);
  return { next, int, pick: (list) => list[int(list.length)] };
}

module.exports = { generator };
