// Publishing an email job straight to the email queue (SQS), as the service's consumer expects
// it: the `booking-email/v1` message, checked here against the committed JSON Schema first,
// because a message the consumer cannot validate is dead-lettered at once, never retried.
import { randomUUID } from "node:crypto";

import { SendMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import ajvFormats from "ajv-formats";

import jobSchema from "./generated/booking-email-v1.json" with { type: "json" };
import { BookingDurabilityError } from "./problems.js";
import type { EmailRequest } from "./types.js";

/** The `schema` of every queue message. */
export const EMAIL_JOB_SCHEMA = "booking-email/v1";
/** SQS delays a message at most 15 minutes; the consumer waits out the rest of a later `deliver_at`. */
export const MAX_SQS_DELAY_SECONDS = 900;
/** SQS's message size limit: body and attributes. */
export const MAX_MESSAGE_BYTES = 256 * 1024;

/** The email request a queue message carries: the body of `POST /v1/emails` without its delay
 * fields (the job's `deliver_at` says when). */
export type GuestEmailRequest = Omit<EmailRequest, "deliver_at" | "delay_seconds">;

/** The queue message (schemas/booking-email-v1.json): the request plus what the producer sets. */
export type EmailJob = GuestEmailRequest & {
  schema: typeof EMAIL_JOB_SCHEMA;
  /** A new UUID for each message sent; it names this copy in the service's logs, never the email. */
  job_id: string;
  /** RFC 3339; the email never goes out before it. */
  deliver_at: string;
};

/** Where a message breaks the schema: the JSON pointer of the place and the rule, never the value. */
export interface EmailJobIssue {
  path: string;
  rule: string;
  message: string;
}

/** The job was not sent: it does not match the queue message's schema, or is too large. */
export class InvalidEmailJobError extends BookingDurabilityError {
  override name = "InvalidEmailJobError";
  readonly issues: EmailJobIssue[];

  constructor(issues: EmailJobIssue[]) {
    super(`invalid email job: ${issues.map((issue) => `${issue.path || "/"} ${issue.message}`).join("; ")}`);
    this.issues = issues;
  }
}

/** What publishEmailJob sends through: SQSClient, or anything with its `send`. */
export interface EmailQueueClient {
  send(command: SendMessageCommand): Promise<unknown>;
}

export interface PublishEmailJobOptions {
  /** The email queue: the stack's `EmailQueueUrl` export, or the local stack's `queues.email`. */
  queueUrl: string;
  /** When the email may go out (default: now). A time in the past means now. */
  deliverAt?: Date;
  /** Default: one SQSClient shared by every call, configured from the environment as usual
   * (region, credentials, and `AWS_ENDPOINT_URL_SQS` for the local stack). */
  sqs?: EmailQueueClient;
  /** The clock DelaySeconds is counted from (default: Date.now). */
  now?: () => number;
}

/** The queue message for `request`, due at `deliverAt`. */
export function emailJob(request: GuestEmailRequest, deliverAt: Date, jobId: string = randomUUID()): EmailJob {
  return { ...request, schema: EMAIL_JOB_SCHEMA, job_id: jobId, deliver_at: deliverAt.toISOString() };
}

/** Every way `message` breaks the committed schema (none: it is a valid queue message). */
export function emailJobIssues(message: unknown): EmailJobIssue[] {
  const { message: validMessage, guestJob } = validators();
  if (validMessage(message)) {
    return [];
  }
  // The guest job's own errors name the place; the root's `oneOf` adds the drift email's branch.
  const errors = guestJob(message) ? validMessage.errors : guestJob.errors;
  return (errors ?? []).map(issueOf);
}

/** Publishes `request` to the email queue, due at `options.deliverAt` (default now), with the
 * message attributes `email_type` and `schema` only; returns the message sent. Publishing the
 * same email again is safe: the service delivers each dedupe key at most once. Throws
 * InvalidEmailJobError, sending nothing, when the message would not validate. */
export async function publishEmailJob(request: GuestEmailRequest, options: PublishEmailJobOptions): Promise<EmailJob> {
  const misplaced = ["deliver_at", "delay_seconds"].filter((name) => name in request);
  if (misplaced.length > 0) {
    throw new InvalidEmailJobError(
      misplaced.map((name) => ({ path: `/${name}`, rule: "deliverAt", message: "set `deliverAt` instead" })),
    );
  }
  const now = options.now ?? Date.now;
  const deliverAt = options.deliverAt ?? new Date(now());
  const job = emailJob(request, deliverAt);
  const issues = emailJobIssues(job);
  if (issues.length > 0) {
    throw new InvalidEmailJobError(issues);
  }
  const body = JSON.stringify(job);
  const attributes = {
    email_type: { DataType: "String", StringValue: job.email_type },
    schema: { DataType: "String", StringValue: EMAIL_JOB_SCHEMA },
  };
  const size =
    Buffer.byteLength(body) +
    Object.entries(attributes).reduce(
      (total, [name, value]) => total + Buffer.byteLength(name + value.DataType + value.StringValue),
      0,
    );
  if (size > MAX_MESSAGE_BYTES) {
    throw new InvalidEmailJobError([
      { path: "", rule: "maxMessageBytes", message: `is ${size} bytes; SQS takes ${MAX_MESSAGE_BYTES}` },
    ]);
  }
  const secondsAway = Math.ceil((deliverAt.getTime() - now()) / 1000);
  await (options.sqs ?? sharedSqs()).send(
    new SendMessageCommand({
      QueueUrl: options.queueUrl,
      MessageBody: body,
      DelaySeconds: Math.max(0, Math.min(secondsAway, MAX_SQS_DELAY_SECONDS)),
      MessageAttributes: attributes,
    }),
  );
  return job;
}

let sqs: SQSClient | undefined;

function sharedSqs(): SQSClient {
  sqs ??= new SQSClient({});
  return sqs;
}

interface Validators {
  message: ValidateFunction;
  guestJob: ValidateFunction;
}

let compiled: Validators | undefined;

function validators(): Validators {
  if (compiled === undefined) {
    const ajv = new Ajv2020({ strict: true, allErrors: true });
    // date-time, email and uuid: the schema's formats, checked as the service checks them
    ajvFormats.default(ajv);
    const message = ajv.compile(jobSchema);
    const guestJob = ajv.compile({ $ref: `${jobSchema.$id}#/$defs/GuestEmailJob` });
    compiled = { message, guestJob };
  }
  return compiled;
}

function issueOf(error: ErrorObject): EmailJobIssue {
  const extra = error.keyword === "additionalProperties" ? `/${String(error.params["additionalProperty"])}` : "";
  return { path: `${error.instancePath}${extra}`, rule: error.keyword, message: error.message ?? error.keyword };
}
