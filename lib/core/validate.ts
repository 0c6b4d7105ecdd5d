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

/** Checks that `value` is a boolean, naming `what` in the error. */
export function checkBool(what: string, value: unknown): boolean {
  if (typeof value !== 'boolean') {
    throw new TypeError(`${what} must be true or false, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Checks that `value` is one of `choices`, naming `what` in the error. */
export function checkChoice<T extends string>(
  what: string,
  value: unknown,
  choices: readonly T[],
): T {
  if (!choices.includes(value as T)) {
    const names = choices.map((c) => `'${c}'`);
    const list = `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`;
    throw new RangeError(`${what} must be ${list}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}
