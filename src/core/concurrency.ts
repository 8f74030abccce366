/**
 * Bounded concurrency: the one place the tree runs "at most N of these at once".
 *
 * Failure: the first error stops new items from starting; items already running finish (a
 * half-written file or transfer is never abandoned mid-way by its siblings), then that first
 * error is thrown.
 */
export async function eachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  if (!(Number.isInteger(limit) && limit >= 1)) throw new RangeError(`eachLimit: limit ${limit} is not ≥ 1`);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const lane = async () => {
    while (failure === undefined && next < items.length) {
      const i = next++;
      try {
        await fn(items[i]!, i);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failure) throw failure.error;
}

/** `eachLimit` collecting results in input order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  await eachLimit(items, limit, async (item, i) => {
    out[i] = await fn(item, i);
  });
  return out;
}

/**
 * A counted limit shared by several callers: at most `size` of the functions given to `run` at
 * once, the rest waiting in the order they came (first in, first served).
 */
export class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly size: number) {
    if (!(Number.isInteger(size) && size >= 1)) throw new RangeError(`Slots: size ${size} is not ≥ 1`);
    this.free = size;
  }

  async run<R>(fn: () => Promise<R>): Promise<R> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await fn();
    } finally {
      // Hand the slot straight to the next waiter, else give it back.
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    }
  }
}
