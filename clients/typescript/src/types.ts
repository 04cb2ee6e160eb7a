// The service's request and answer shapes, named for the booking domain. Each is read off the
// generated `paths` by route, method and status, so a route or body that changes in openapi.json
// changes here, and a route that disappears stops this file from compiling.
import type { components, paths } from "./generated/openapi.js";

type Method = "get" | "put" | "post" | "delete";

type Operation<P extends keyof paths, M extends Method> = NonNullable<paths[P][M]>;

/** The JSON body a route takes. */
export type RequestBody<P extends keyof paths, M extends Method> =
  Operation<P, M> extends { requestBody?: { content: { "application/json": infer Body } } } ? Body : never;

/** The JSON body a route answers with `S`. */
export type Answer<P extends keyof paths, M extends Method, S extends number> =
  Operation<P, M> extends { responses: { [status in S]: { content: { "application/json": infer Body } } } }
    ? Body
    : never;

/** `T` with `K` optional: fields the service fills with their default when they are left out.
 * (openapi-typescript makes a schema property with a `default` required unless the schema is
 * written inline in the request body; the service's request schemas are referenced.) */
type WithDefaults<T, K extends keyof T> = Omit<T, K> & Partial<Pick<T, K>>;

type VenueBody = RequestBody<"/v1/venues/{venue_id}", "put">;

/** A table of a venue, as `PUT /v1/venues/{venue_id}` takes it. */
export type Table = WithDefaults<VenueBody["tables"][number], "min_party" | "combinable_with">;
/** A venue's seating policy. */
export type SeatingPolicy = VenueBody["policy"];
/** The body of `PUT /v1/venues/{venue_id}`: 1 to 200 tables and the seating policy. */
export type VenueConfig = Omit<VenueBody, "tables"> & { tables: Table[] };
/** The answer to `PUT /v1/venues/{venue_id}`. */
export type VenueSaved = Answer<"/v1/venues/{venue_id}", "put", 200>;
/** A venue's current (or an earlier) version. */
export type Venue = Answer<"/v1/venues/{venue_id}", "get", 200>;

/** The body of `POST /v1/holds`. */
export type HoldRequest = RequestBody<"/v1/holds", "post">;
/** A hold, as `POST /v1/holds`, `GET` and `DELETE /v1/holds/{hold_id}` answer it. */
export type Hold = Answer<"/v1/holds/{hold_id}", "get", 200>;
/** The answer to `POST /v1/holds/{hold_id}/confirm`. */
export type Confirmation = Answer<"/v1/holds/{hold_id}/confirm", "post", 200>;
/** What a confirmation says when the venue's policy changed and the service recovered. */
export type PolicyDrift = NonNullable<Confirmation["policy_drift"]>;
/** A booking, as `GET` and `DELETE /v1/bookings/{booking_id}` answer it. */
export type Booking = Answer<"/v1/bookings/{booking_id}", "get", 200>;

/** The body of `POST /v1/emails`: a guest email, with `deliver_at` or `delay_seconds` if wanted. */
export type EmailRequest = WithDefaults<RequestBody<"/v1/emails", "post">, "revision" | "locale" | "time_zone">;
/** The four email types the booking app sends. */
export type GuestEmailType = EmailRequest["email_type"];
/** Every email type the queue carries (the service's own included). */
export type EmailType = components["schemas"]["EmailType"];
/** What became of an email: `queued`, `sending`, `sent`, `failed`, `cancelled`, `suppressed`, `expired`. */
export type EmailStatus = components["schemas"]["EmailStatus"];
/** The answer to `POST /v1/emails`. */
export type EmailAccepted = Answer<"/v1/emails", "post", 202>;
/** The answer to `GET /v1/emails/{booking_id}/{email_type}`. */
export type EmailState = Answer<"/v1/emails/{booking_id}/{email_type}", "get", 200>;
/** The answer to `DELETE /v1/emails/{booking_id}/{email_type}`. */
export type EmailCancelled = Answer<"/v1/emails/{booking_id}/{email_type}", "delete", 200>;
/** The answer to `DELETE /v1/emails/{booking_id}`. */
export type BookingEmailsCancelled = Answer<"/v1/emails/{booking_id}", "delete", 200>;

/** The answer to `GET /v1/health`. */
export type Health = Answer<"/v1/health", "get", 200>;
