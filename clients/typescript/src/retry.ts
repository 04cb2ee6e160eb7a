// When a call is tried again. Only idempotent calls are: a GET, PUT or DELETE; a confirm (it
// carries the same Idempotency-Key on every attempt); an email POST (one delivery per dedupe key).
// `POST /v1/holds` never is: a retry after a lost answer could hold a second table.

/** How an idempotent call is retried. */
export interface RetryPolicy {
  /** Attempts in all, the first included (1 turns retries off). */
  maxAttempts: number;
  /** The backoff before the first retry; it doubles with each further one (with full jitter). */
  baseDelayMs: number;
  /** The longest wait before a retry. An answer whose Retry-After asks for more ends the retries. */
  maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = { maxAttempts: 4, baseDelayMs: 250, maxDelayMs: 20_000 };

/** Whether an answer with this status is worth another attempt: throttled, or the service's or
 * AWS's failure (a 5xx never comes from what the client sent). */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status <= 599);
}

/** Seconds from a Retry-After header (delta-seconds or an HTTP date); undefined when absent or unusable. */
export function retryAfterSeconds(header: string | null, now: number): number | undefined {
  if (header === null) {
    return undefined;
  }
  const value = header.trim();
  if (/^\d+$/.test(value)) {
    return Number(value);
  }
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

/** The wait before retry number `retry` (1 for the first): full-jitter exponential backoff, and
 * never less than what the answer's Retry-After asked for. */
export function delayBeforeRetryMs(
  policy: RetryPolicy,
  retry: number,
  random: () => number,
  retryAfter: number | undefined,
): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retry - 1));
  const backoff = Math.floor(random() * ceiling);
  return Math.max(backoff, (retryAfter ?? 0) * 1000);
}
