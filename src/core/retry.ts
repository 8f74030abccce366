/**
 * Retry with exponential backoff: the one loop for "try again a few times, waiting longer
 * each time". Which errors are worth retrying is the error catalog's `retryable` flag
 * (src/core/errors.ts), not a decision each caller makes again.
 */
import { isRetryable } from './errors.js';

export interface BackoffPolicy {
  /** Tries in all, the first included (≥ 1). */
  attempts: number;
  /** Wait before the second try; each later wait is `factor` times the previous. */
  baseDelayMs: number;
  /** Default 4. */
  factor?: number;
  /** Whether an error is worth another try (default: the catalog's retryable flag). */
  retryable?: (err: unknown) => boolean;
  /** Stops waiting and throws the last error when aborted. */
  signal?: AbortSignal;
  /** Injected for tests (default: setTimeout). */
  sleep?: (ms: number) => Promise<void>;
}

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function withBackoff<T>(fn: (attempt: number) => Promise<T>, policy: BackoffPolicy): Promise<T> {
  const retryable = policy.retryable ?? isRetryable;
  const sleep = policy.sleep ?? realSleep;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= policy.attempts || !retryable(err) || policy.signal?.aborted) throw err;
      await sleep(policy.baseDelayMs * (policy.factor ?? 4) ** (attempt - 1));
    }
  }
}
