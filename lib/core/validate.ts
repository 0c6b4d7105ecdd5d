// Argument checks shared by every layer: each names the argument in its error.

/** Checks that `value` is an integer in [min, max], naming `what` in the error. */
export function checkInt(what: string, value: unknown, min: number, max = 2 ** 31 - 1): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `${what} must be an integer in [${min}, ${max}], got ${typeof value === 'number' ? value : typeof value}`,
    );
  }
  return value;
}

/** Checks that `value` is a finite number in [min, max], naming `what` in the error. */
export function checkNumber(what: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new RangeError(
      `${what} must be a finite number in [${min}, ${max}], got ${typeof value === 'number' ? value : typeof value}`,
    );
  }
  return value;
}
