// The HTTP API, one method per route. Answers are typed from openapi.json; errors are thrown as
// ProblemError (an answer) or ConnectionError (none). Idempotent calls are retried (see retry.ts).
import { randomUUID } from "node:crypto";

import { BookingDurabilityError, ConnectionError, problemFrom, UNEXPECTED_RESPONSE, ProblemError } from "./problems.js";
import {
  DEFAULT_RETRY_POLICY,
  delayBeforeRetryMs,
  isRetryableStatus,
  retryAfterSeconds,
  type RetryPolicy,
} from "./retry.js";
import { regionOfApiUrl, sigV4Signer, type Credentials, type RequestSigner } from "./signing.js";
import type {
  Booking,
  BookingEmailsCancelled,
  Confirmation,
  EmailAccepted,
  EmailCancelled,
  EmailRequest,
  EmailState,
  EmailType,
  Health,
  Hold,
  HoldRequest,
  Venue,
  VenueConfig,
  VenueSaved,
} from "./types.js";

export interface ClientOptions {
  /** The API's base URL: the stack's `ApiUrl` export (`https://.../<stage>/`), or the local
   * stack's `api_url` (`http://127.0.0.1:3000`). Routes are resolved under its path. */
  baseUrl: string | URL;
  /** Sign every request with SigV4 for `execute-api` (default). The local stack has no auth: `false`. */
  signing?: boolean;
  /** The region to sign for. Default: the region of an `execute-api` base URL, else
   * `AWS_REGION`, else `AWS_DEFAULT_REGION`. */
  region?: string;
  /** Default: the AWS SDK's default provider chain. */
  credentials?: Credentials;
  /** How idempotent calls are retried (default: 4 attempts, backoff from 250 ms, waits of at most 20 s). */
  retry?: Partial<RetryPolicy>;
  /** How long one attempt may take before it counts as a connection failure (default 35 s, past
   * API Gateway's own 29 s limit, so its 504 arrives first). */
  timeoutMs?: number;
  /** The fetch to send with (default: the global one). */
  fetch?: typeof fetch;
  /** How the client waits between attempts (default: a timer). */
  sleep?: (ms: number) => Promise<void>;
  /** The jitter's source of randomness, in [0, 1) (default: Math.random). */
  random?: () => number;
}

type HttpMethod = "GET" | "PUT" | "POST" | "DELETE";

interface Call {
  method: HttpMethod;
  /** The route's template, for error messages: ids never appear in them. */
  route: string;
  /** The path under the base URL, its ids already in it. */
  path: string;
  query?: Record<string, string>;
  body?: unknown;
  headers?: Record<string, string>;
  /** Whether repeating the call is safe: only then is it retried. */
  idempotent: boolean;
}

const DEFAULT_TIMEOUT_MS = 35_000;

export class BookingDurabilityClient {
  /** The base URL, ending with "/". */
  readonly baseUrl: URL;
  private readonly signer: RequestSigner | undefined;
  private readonly retryPolicy: RetryPolicy;
  private readonly timeoutMs: number;
  private readonly send: typeof fetch;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;

  constructor(options: ClientOptions) {
    const base = new URL(options.baseUrl);
    if (!base.pathname.endsWith("/")) {
      base.pathname = `${base.pathname}/`; // so "v1/..." resolves under the stage's path
    }
    this.baseUrl = base;
    if (options.signing ?? true) {
      const region =
        options.region ??
        regionOfApiUrl(base) ??
        nonEmpty(process.env["AWS_REGION"]) ??
        nonEmpty(process.env["AWS_DEFAULT_REGION"]);
      if (region === undefined) {
        throw new BookingDurabilityError(
          "signing needs a region: pass `region`, or set AWS_REGION (or pass `signing: false` for the local stack)",
        );
      }
      this.signer = sigV4Signer(region, options.credentials);
    }
    this.retryPolicy = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.send = options.fetch ?? globalThis.fetch;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.random = options.random ?? Math.random;
  }

  /** `GET /v1/health`. */
  health(): Promise<Health> {
    return this.call({ method: "GET", route: "/v1/health", path: "v1/health", idempotent: true });
  }

  /** `PUT /v1/venues/{venue_id}`: stores the venue's tables and policy as a new version when its
   * policy hash changes. With `ifMatch` (a policy hash), only if the venue's current policy is
   * that one: 412 `PRECONDITION_FAILED` otherwise — also when a retry finds the change of an
   * earlier attempt of this very call already made, so read the venue on a 412 that came
   * after a retry (`requestAttempt > 1`). */
  putVenue(venueId: string, config: VenueConfig, options: { ifMatch?: string } = {}): Promise<VenueSaved> {
    return this.call({
      method: "PUT",
      route: "/v1/venues/{venue_id}",
      path: `v1/venues/${segment(venueId)}`,
      body: config,
      headers: options.ifMatch === undefined ? {} : { "if-match": options.ifMatch },
      idempotent: true,
    });
  }

  /** `GET /v1/venues/{venue_id}`: the venue's current version. */
  getVenue(venueId: string): Promise<Venue> {
    return this.call({
      method: "GET",
      route: "/v1/venues/{venue_id}",
      path: `v1/venues/${segment(venueId)}`,
      idempotent: true,
    });
  }

  /** `GET /v1/venues/{venue_id}/versions/{n}`: one version of the venue. */
  getVenueVersion(venueId: string, version: number): Promise<Venue> {
    return this.call({
      method: "GET",
      route: "/v1/venues/{venue_id}/versions/{n}",
      path: `v1/venues/${segment(venueId)}/versions/${segment(String(version))}`,
      idempotent: true,
    });
  }

  /** `POST /v1/holds`: holds the smallest fitting table (or combination) for the party. Never
   * retried: after a lost answer a retry could hold a second table. On a ConnectionError or a
   * 5xx, the hold may exist: it frees its tables at its `expires_at`. */
  createHold(request: HoldRequest): Promise<Hold> {
    return this.call({ method: "POST", route: "/v1/holds", path: "v1/holds", body: request, idempotent: false });
  }

  /** `GET /v1/holds/{hold_id}`. */
  getHold(holdId: string): Promise<Hold> {
    return this.call({
      method: "GET",
      route: "/v1/holds/{hold_id}",
      path: `v1/holds/${segment(holdId)}`,
      idempotent: true,
    });
  }

  /** `DELETE /v1/holds/{hold_id}`: releases the hold. A retry after a lost answer is answered
   * 409 `HOLD_NOT_ACTIVE`, the hold being released already: `getHold` tells. */
  releaseHold(holdId: string): Promise<Hold> {
    return this.call({
      method: "DELETE",
      route: "/v1/holds/{hold_id}",
      path: `v1/holds/${segment(holdId)}`,
      idempotent: true,
    });
  }

  /** `POST /v1/holds/{hold_id}/confirm`: makes the hold the booking `bookingId`. Every attempt
   * carries the same `Idempotency-Key`, so a retry answers the first 200 body. Without
   * `idempotencyKey`, the client makes one for this call; keep your own with the pending booking
   * to repeat the confirmation safely after a restart. After a policy change the answer is the
   * replacement hold's confirmation (`policy_drift` set), or ProblemError `POLICY_CHANGED`
   * (`reason`, `attempts`). */
  confirmHold(holdId: string, bookingId: string, options: { idempotencyKey?: string } = {}): Promise<Confirmation> {
    return this.call({
      method: "POST",
      route: "/v1/holds/{hold_id}/confirm",
      path: `v1/holds/${segment(holdId)}/confirm`,
      body: { booking_id: bookingId },
      headers: { "idempotency-key": options.idempotencyKey ?? randomUUID() },
      idempotent: true,
    });
  }

  /** `GET /v1/bookings/{booking_id}`. */
  getBooking(bookingId: string): Promise<Booking> {
    return this.call({
      method: "GET",
      route: "/v1/bookings/{booking_id}",
      path: `v1/bookings/${segment(bookingId)}`,
      idempotent: true,
    });
  }

  /** `DELETE /v1/bookings/{booking_id}`: cancels the booking and frees its tables. */
  cancelBooking(bookingId: string): Promise<Booking> {
    return this.call({
      method: "DELETE",
      route: "/v1/bookings/{booking_id}",
      path: `v1/bookings/${segment(bookingId)}`,
      idempotent: true,
    });
  }

  /** `POST /v1/emails`: records the email `queued` and publishes it. Retried: the service
   * delivers one dedupe key (`{booking_id}#{email_type}#{revision}`) at most once. */
  sendEmail(request: EmailRequest): Promise<EmailAccepted> {
    return this.call({ method: "POST", route: "/v1/emails", path: "v1/emails", body: request, idempotent: true });
  }

  /** `GET /v1/emails/{booking_id}/{email_type}?revision=N`: what became of one email. */
  getEmail(bookingId: string, emailType: EmailType, revision = 0): Promise<EmailState> {
    return this.call({
      method: "GET",
      route: "/v1/emails/{booking_id}/{email_type}",
      path: `v1/emails/${segment(bookingId)}/${segment(emailType)}`,
      query: { revision: String(revision) },
      idempotent: true,
    });
  }

  /** `DELETE /v1/emails/{booking_id}/{email_type}?revision=N`: cancels one email (a tombstone
   * when the service has no record of it yet). */
  cancelEmail(bookingId: string, emailType: EmailType, revision = 0): Promise<EmailCancelled> {
    return this.call({
      method: "DELETE",
      route: "/v1/emails/{booking_id}/{email_type}",
      path: `v1/emails/${segment(bookingId)}/${segment(emailType)}`,
      query: { revision: String(revision) },
      idempotent: true,
    });
  }

  /** `DELETE /v1/emails/{booking_id}`: cancels every email of the booking that the service has
   * recorded and not sent. */
  cancelBookingEmails(bookingId: string): Promise<BookingEmailsCancelled> {
    return this.call({
      method: "DELETE",
      route: "/v1/emails/{booking_id}",
      path: `v1/emails/${segment(bookingId)}`,
      idempotent: true,
    });
  }

  private async call<T>(call: Call): Promise<T> {
    const url = new URL(call.path, this.baseUrl);
    for (const [name, value] of Object.entries(call.query ?? {})) {
      url.searchParams.set(name, value);
    }
    const body = call.body === undefined ? undefined : JSON.stringify(call.body);
    const headers: Record<string, string> = {
      accept: "application/json, application/problem+json",
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...call.headers,
    };
    const attempts = call.idempotent ? Math.max(1, this.retryPolicy.maxAttempts) : 1;
    for (let attempt = 1; ; attempt++) {
      // Signed afresh for each attempt: a signature is valid for 5 minutes, credentials rotate.
      const sent = this.signer === undefined ? headers : await this.signer({ method: call.method, url, headers, body });
      let status: number;
      let statusText: string;
      let retryAfter: number | undefined;
      let text: string;
      try {
        const response = await this.send(url, {
          method: call.method,
          headers: sent,
          body,
          signal: AbortSignal.timeout(this.timeoutMs),
        });
        ({ status, statusText } = response);
        retryAfter = retryAfterSeconds(response.headers.get("retry-after"), Date.now());
        text = await response.text();
      } catch (error) {
        if (attempt >= attempts) {
          throw new ConnectionError(call.method, call.route, attempt, error);
        }
        await this.sleep(delayBeforeRetryMs(this.retryPolicy, attempt, this.random, undefined));
        continue;
      }
      if (status >= 200 && status <= 299) {
        return answerOf<T>(status, statusText, text, attempt);
      }
      const problem = problemFrom(status, statusText, text, retryAfter, attempt);
      const delay = delayBeforeRetryMs(this.retryPolicy, attempt, this.random, retryAfter);
      if (attempt >= attempts || !isRetryableStatus(status) || delay > this.retryPolicy.maxDelayMs) {
        throw problem;
      }
      await this.sleep(delay);
    }
  }
}

function answerOf<T>(status: number, statusText: string, text: string, attempt: number): T {
  try {
    // The shape is the one openapi.json declares for this route's answer.
    return JSON.parse(text) as T;
  } catch {
    throw new ProblemError({
      status,
      code: UNEXPECTED_RESPONSE,
      title: statusText || `HTTP ${status}`,
      requestAttempt: attempt,
    });
  }
}

/** A path parameter, percent-encoded as one segment. */
function segment(value: string): string {
  return encodeURIComponent(value);
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}
