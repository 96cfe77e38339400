/**
 * Redis answers many commands with a flat `[name, value, name, value, …]` list: HGETALL, XINFO,
 * a stream entry's fields, our scripts' replies. These read one; a dangling last name is ignored.
 */
export function pairsOf<T>(flat: readonly T[]): [name: T, value: T][] {
  const pairs: [T, T][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) pairs.push([flat[i]!, flat[i + 1]!]);
  return pairs;
}

/** The value of the first `name` in a flat reply, or undefined. */
export function fieldOf<T>(flat: readonly T[], name: T): T | undefined {
  for (let i = 0; i + 1 < flat.length; i += 2) if (flat[i] === name) return flat[i + 1];
  return undefined;
}
