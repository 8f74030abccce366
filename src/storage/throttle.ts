/**
 * A byte-rate throttle (token bucket): at most `bytesPerSecond` on average, bursts up to one
 * second's worth. Long work that reads or moves copies (deep audit, repair, rebalance) passes
 * its bytes through one, so a node keeps serving its users (Ceph's scrub throttle, minio's
 * scanner sleeper). The clock and the sleep are injected so tests need no real time.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { systemClock, type Clock } from '../core/clock.js';

export interface ThrottleOptions {
  bytesPerSecond: number;
  /** Largest burst (default one second's worth). */
  burstBytes?: number;
  clock?: Clock;
  sleep?: (ms: number) => Promise<void>;
}

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class ByteThrottle {
  private tokens: number;
  private last: number;
  private readonly burst: number;
  private readonly clock: Clock;
  private readonly sleep: (ms: number) => Promise<void>;
  /** Waiters take turns, so two streams sharing a throttle split its rate instead of racing. */
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly o: ThrottleOptions) {
    if (!(o.bytesPerSecond > 0)) throw new RangeError(`bytesPerSecond must be > 0 (got ${o.bytesPerSecond})`);
    this.burst = o.burstBytes ?? o.bytesPerSecond;
    this.clock = o.clock ?? systemClock;
    this.sleep = o.sleep ?? realSleep;
    this.tokens = this.burst;
    this.last = this.clock.now();
  }

  /** The average rate this throttle allows. */
  get bytesPerSecond(): number {
    return this.o.bytesPerSecond;
  }

  private refill(): void {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.o.bytesPerSecond);
    this.last = now;
  }

  /** Resolve once `bytes` may pass (a request above the burst waits for its whole size). */
  take(bytes: number): Promise<void> {
    const turn = this.queue.then(async () => {
      this.refill();
      this.tokens -= bytes;
      if (this.tokens < 0) await this.sleep(Math.ceil((-this.tokens / this.o.bytesPerSecond) * 1000));
    });
    this.queue = turn.catch(() => {});
    return turn;
  }

  /** A pass-through stream that holds each chunk until the throttle lets it pass. */
  stream(): Transform {
    return new Transform({
      transform: (chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) => {
        this.take(chunk.length).then(
          () => done(null, chunk),
          (err: Error) => done(err),
        );
      },
    });
  }
}
