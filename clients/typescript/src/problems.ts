// The service's errors as exceptions. Every error the service (or API Gateway in front of it)
// answers is application/problem+json with a stable `code`; callers act on the code, never on
// `title` or `detail`. An answer that is not a problem document (a proxy's HTML page, API
// Gateway's bare `{"message": ...}`) still becomes a ProblemError, with the code
// UNEXPECTED_RESPONSE, so a caller has one type to handle.

/** The code of an answer that carries no problem document of the service's. */
export const UNEXPECTED_RESPONSE = "UNEXPECTED_RESPONSE";

/** Where a request failed validation (`VALIDATION_FAILED`): the location, never the value. */
export interface ValidationIssue {
  loc: (string | number)[];
  msg: string;
}

/** Every error this package throws. */
export class BookingDurabilityError extends Error {
  override name = "BookingDurabilityError";
}

/** An error answer of the API: its HTTP status, its `code` and the fields some codes add. */
export class ProblemError extends BookingDurabilityError {
  override name = "ProblemError";
  /** The HTTP status. */
  readonly status: number;
  /** The stable UPPER_SNAKE code (`HOLD_NOT_FOUND`, `POLICY_CHANGED`...), or UNEXPECTED_RESPONSE. */
  readonly code: string;
  readonly type: string;
  readonly title: string;
  /** Absent from API Gateway's own answers. */
  readonly detail: string | undefined;
  /** `VALIDATION_FAILED`: where the request is wrong. */
  readonly errors: ValidationIssue[] | undefined;
  /** `HOLD_METADATA_INCOMPLETE`: the dotted paths the hold lacks. */
  readonly missing: string[] | undefined;
  /** `NO_AVAILABILITY`, `POLICY_CHANGED`, `HOLD_INVALID`: why. */
  readonly reason: string | undefined;
  /** `POLICY_CHANGED`: the confirmation attempts made. */
  readonly attempts: number | undefined;
  /** `INTERNAL_ERROR`: the id the service's log line for the failure carries. */
  readonly errorId: string | undefined;
  /** The answer's `Retry-After`, in seconds, when it had one. */
  readonly retryAfterSeconds: number | undefined;
  /** Which attempt of the request got this answer (1 unless the client retried). */
  readonly requestAttempt: number;

  constructor(fields: {
    status: number;
    code: string;
    type?: string | undefined;
    title: string;
    detail?: string | undefined;
    errors?: ValidationIssue[] | undefined;
    missing?: string[] | undefined;
    reason?: string | undefined;
    attempts?: number | undefined;
    errorId?: string | undefined;
    retryAfterSeconds?: number | undefined;
    requestAttempt?: number | undefined;
  }) {
    super(`${fields.status} ${fields.code}: ${fields.detail ?? fields.title}`);
    this.status = fields.status;
    this.code = fields.code;
    this.type = fields.type ?? "about:blank";
    this.title = fields.title;
    this.detail = fields.detail;
    this.errors = fields.errors;
    this.missing = fields.missing;
    this.reason = fields.reason;
    this.attempts = fields.attempts;
    this.errorId = fields.errorId;
    this.retryAfterSeconds = fields.retryAfterSeconds;
    this.requestAttempt = fields.requestAttempt ?? 1;
  }
}

/** No answer came: the connection failed or the attempt timed out. The request may or may not
 * have taken effect. */
export class ConnectionError extends BookingDurabilityError {
  override name = "ConnectionError";
  /** How many attempts were made. */
  readonly requestAttempts: number;

  constructor(method: string, route: string, requestAttempts: number, cause: unknown) {
    super(`${method} ${route}: no answer after ${requestAttempts} attempt(s); it may or may not have taken effect`, {
      cause,
    });
    this.requestAttempts = requestAttempts;
  }
}

/** The ProblemError for an answer: `status`, its body's text and its `Retry-After` in seconds. */
export function problemFrom(
  status: number,
  statusText: string,
  text: string,
  retryAfterSeconds: number | undefined,
  requestAttempt: number,
): ProblemError {
  const body = parsedObject(text);
  const code = body?.["code"];
  if (body === undefined || typeof code !== "string") {
    return new ProblemError({
      status,
      code: UNEXPECTED_RESPONSE,
      title: statusText || `HTTP ${status}`,
      retryAfterSeconds,
      requestAttempt,
    });
  }
  return new ProblemError({
    status,
    code,
    type: stringField(body, "type"),
    title: stringField(body, "title") ?? statusText,
    detail: stringField(body, "detail"),
    errors: validationIssues(body["errors"]),
    missing: stringList(body["missing"]),
    reason: stringField(body, "reason"),
    attempts: typeof body["attempts"] === "number" ? body["attempts"] : undefined,
    errorId: stringField(body, "error_id"),
    retryAfterSeconds,
    requestAttempt,
  });
}

function parsedObject(text: string): Record<string, unknown> | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  return isRecord(parsed) ? parsed : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function stringField(body: Record<string, unknown>, name: string): string | undefined {
  const value = body[name];
  return typeof value === "string" ? value : undefined;
}

function stringList(value: unknown): string[] | undefined {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === "string") : undefined;
}

function validationIssues(value: unknown): ValidationIssue[] | undefined {
  if (!Array.isArray(value)) {
    return undefined;
  }
  return value.filter(isRecord).map((issue) => ({
    loc: Array.isArray(issue["loc"])
      ? issue["loc"].filter((part): part is string | number => typeof part === "string" || typeof part === "number")
      : [],
    msg: typeof issue["msg"] === "string" ? issue["msg"] : "",
  }));
}
