/** Injected time and randomness, so grace periods and pickers are testable without sleeping or luck. */
import { RemoraError } from './errors.js';

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/**
 * A clock that reads `startMs` when created and then runs `speed` times faster than real time
 * (speed 1: the system clock shifted; 8640: a day every 10 s). A testing aid for processes:
 * `clockFromEnv` builds one from REMORA_CLOCK_START / REMORA_CLOCK_SPEED.
 */
export class ScaledClock implements Clock {
  private readonly realStart = performance.now();
  constructor(
    private readonly startMs: number,
    readonly speed = 1,
  ) {}
  now(): number {
    return Math.floor(this.startMs + (performance.now() - this.realStart) * this.speed);
  }
}

/**
 * The process clock from the environment: REMORA_CLOCK_START=<ISO instant> (default: now) and
 * REMORA_CLOCK_SPEED=<factor > 0> (default 1) give a ScaledClock; neither set gives the system
 * clock. For tests and demos only (e.g. running `remora scheduler` over several days in a minute).
 */
export function clockFromEnv(env: NodeJS.ProcessEnv): Clock {
  const start = env.REMORA_CLOCK_START;
  const speed = env.REMORA_CLOCK_SPEED;
  if ((start === undefined || start === '') && (speed === undefined || speed === '')) return systemClock;
  const startMs = start ? Date.parse(start) : Date.now();
  if (Number.isNaN(startMs))
    throw new RemoraError('UsageError', `REMORA_CLOCK_START: not an ISO instant: ${start}`);
  const factor = speed ? Number(speed) : 1;
  if (!Number.isFinite(factor) || factor <= 0)
    throw new RemoraError('UsageError', `REMORA_CLOCK_SPEED: not a positive number: ${speed}`);
  return new ScaledClock(startMs, factor);
}

export class ManualClock implements Clock {
  constructor(private t: number) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
  set(ms: number): void {
    this.t = ms;
  }
}

export interface Random {
  /** A float in [0, 1). */
  next(): number;
}

/** mulberry32: small, fast, seedable; good enough for placement and workloads, not for secrets. */
export class SeededRandom implements Random {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(maxExclusive: number): number {
    return Math.floor(this.next() * maxExclusive);
  }
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[this.int(items.length)]!;
  }
  /** A version-4-shaped UUID drawn from this generator (reproducible for a seed). */
  uuid(): string {
    const hex: string[] = [];
    for (let i = 0; i < 16; i++) hex.push(this.int(256).toString(16).padStart(2, '0'));
    hex[6] = (0x40 | (parseInt(hex[6]!, 16) & 0x0f)).toString(16);
    hex[8] = (0x80 | (parseInt(hex[8]!, 16) & 0x3f)).toString(16);
    const h = hex.join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
}

export const systemRandom: Random = { next: () => Math.random() };

export function shuffle<T>(items: T[], random: Random): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random.next() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
