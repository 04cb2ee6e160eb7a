// @booking-durability/client: the booking app's way to the booking durability service.
// docs/booking-app.md in the service's repository shows it in use.
export { BookingDurabilityClient, type ClientOptions } from "./client.js";
export {
  EMAIL_JOB_SCHEMA,
  MAX_MESSAGE_BYTES,
  MAX_SQS_DELAY_SECONDS,
  InvalidEmailJobError,
  emailJob,
  emailJobIssues,
  publishEmailJob,
  type EmailJob,
  type EmailJobIssue,
  type EmailQueueClient,
  type GuestEmailRequest,
  type PublishEmailJobOptions,
} from "./email-jobs.js";
export {
  BookingDurabilityError,
  ConnectionError,
  ProblemError,
  UNEXPECTED_RESPONSE,
  type ValidationIssue,
} from "./problems.js";
export { DEFAULT_RETRY_POLICY, type RetryPolicy } from "./retry.js";
export { sigV4Signer, type Credentials, type OutgoingRequest, type RequestSigner } from "./signing.js";
export type * from "./types.js";
export type { components, paths } from "./generated/openapi.js";
