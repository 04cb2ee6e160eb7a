// The client against the real local stack (`make run`'s components), as the booking app uses it.
// Started by tests/e2e/test_typescript_client.py, which passes in:
//   BOOKING_DURABILITY_STACK_JSON  the running stack's stack.json
//   E2E_RUN_ID                     a fresh id, for venue, booking and email ids of this run
//   E2E_RECIPIENT                  the guest address of this run's emails
// and the environment the AWS SDK reads (dummy credentials, AWS_REGION, AWS_ENDPOINT_URL_SQS).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, it } from "node:test";

import {
  BookingDurabilityClient,
  ProblemError,
  publishEmailJob,
  type EmailState,
  type GuestEmailRequest,
  type VenueConfig,
} from "@booking-durability/client";

interface LocalStack {
  api_url: string;
  queues: { email: string };
}

const stack = JSON.parse(readFileSync(required("BOOKING_DURABILITY_STACK_JSON"), "utf8")) as LocalStack;
const run = required("E2E_RUN_ID");
const recipient = required("E2E_RECIPIENT");
const client = new BookingDurabilityClient({ baseUrl: stack.api_url, signing: false });

const VENUE: VenueConfig = {
  tables: [
    { id: "T1", capacity: 2, zone: "main", combinable_with: ["T2"] },
    { id: "T2", capacity: 4, zone: "main", combinable_with: ["T1"] },
    { id: "T3", capacity: 6, min_party: 3, zone: "terraza" },
  ],
  policy: {
    slot_minutes: 15,
    default_duration_minutes: 90,
    buffer_minutes: 10,
    max_party_size: 10,
    hold_ttl_seconds: 600,
    allow_combinations: true,
    bookable_zones: ["main", "terraza"],
  },
};

describe("against the local stack", () => {
  it("puts a venue, holds a table and confirms it under the policy that changed meanwhile", async () => {
    const venueId = `ts_${run}`;
    const bookingId = `bk_${run}`;
    const saved = await client.putVenue(venueId, VENUE);
    assert.equal(saved.policy_version, 1);
    const venue = await client.getVenue(venueId);
    assert.equal(venue.policy_hash, saved.policy_hash);

    const hold = await client.createHold({ venue_id: venueId, party_size: 2, starts_at: tomorrowAt(20) });
    assert.equal(hold.status, "held");
    const changed = await client.putVenue(
      venueId,
      { ...VENUE, policy: { ...VENUE.policy, buffer_minutes: 30 } },
      { ifMatch: saved.policy_hash },
    );
    assert.equal(changed.policy_version, 2);

    const confirmation = await client.confirmHold(hold.hold_id, bookingId, { idempotencyKey: `confirm-${run}` });
    assert.equal(confirmation.status, "confirmed");
    assert.equal(confirmation.policy_hash, changed.policy_hash);
    assert.equal(confirmation.policy_drift?.recovered, true);
    assert.equal(confirmation.policy_drift?.original_hold_id, hold.hold_id);
    assert.notEqual(confirmation.hold_id, hold.hold_id);
    // The same key again is a repeat: the first answer, unchanged
    assert.deepEqual(
      await client.confirmHold(hold.hold_id, bookingId, { idempotencyKey: `confirm-${run}` }),
      confirmation,
    );

    const booking = await client.getBooking(bookingId);
    assert.equal(booking.status, "confirmed");
    assert.deepEqual(booking.table_ids, confirmation.table_ids);
    assert.equal((await client.getHold(hold.hold_id)).status, "superseded");
  });

  it("throws the service's refusals as ProblemErrors typed by their code", async () => {
    const venueId = `ts_${run}_problems`;
    const saved = await client.putVenue(venueId, VENUE);

    const unknown = await problem(client.getHold(`hld_${run}_unknown`));
    assert.deepEqual([unknown.status, unknown.code], [404, "HOLD_NOT_FOUND"]);

    const tooMany = await problem(client.createHold({ venue_id: venueId, party_size: 50, starts_at: tomorrowAt(21) }));
    assert.deepEqual([tooMany.status, tooMany.code, tooMany.reason], [409, "NO_AVAILABILITY", "party_too_large"]);

    const invalid = await problem(
      client.putVenue(venueId, { ...VENUE, tables: [{ id: "T1", capacity: 0, zone: "main" }] }),
    );
    assert.deepEqual([invalid.status, invalid.code], [422, "VALIDATION_FAILED"]);
    assert.ok(
      invalid.errors?.some((issue) => issue.loc.includes("capacity")),
      JSON.stringify(invalid.errors),
    );

    const stale = await problem(client.putVenue(venueId, VENUE, { ifMatch: "0".repeat(64) }));
    assert.deepEqual([stale.status, stale.code], [412, "PRECONDITION_FAILED"]);
    assert.equal((await client.getVenue(venueId)).policy_hash, saved.policy_hash);
  });

  it("sends one email through the API and one straight to the queue, and reads both sent", async () => {
    const overHttp = await client.sendEmail(guestEmail(`${run}_http`));
    assert.deepEqual([overHttp.status, overHttp.dedupe_key], ["queued", `${run}_http#booking_confirmed#0`]);

    const job = await publishEmailJob(guestEmail(`${run}_sqs`), { queueUrl: stack.queues.email });
    assert.equal(job.schema, "booking-email/v1");

    for (const bookingId of [`${run}_http`, `${run}_sqs`]) {
      const state = await sentEmail(bookingId);
      assert.equal(state.dedupe_key, `${bookingId}#booking_confirmed#0`);
      assert.ok(state.attempts >= 1);
    }
  });
});

function guestEmail(bookingId: string): GuestEmailRequest {
  return {
    booking_id: bookingId,
    email_type: "booking_confirmed",
    recipient: { email: recipient, name: "Ana" },
    locale: "es",
    time_zone: "Europe/Madrid",
    data: { restaurant_name: "Casa Lucio", party_size: 2, starts_at: tomorrowAt(20), reference: "R-1234" },
  };
}

/** The email's state once it reads `sent`; a job published straight to the queue is unknown
 * (404 NOT_FOUND) until the consumer first takes it up. */
async function sentEmail(bookingId: string): Promise<EmailState> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const state = await client.getEmail(bookingId, "booking_confirmed");
      if (state.status === "sent") {
        return state;
      }
      assert.ok(["queued", "sending"].includes(state.status), `email ${bookingId} is ${state.status}`);
    } catch (error) {
      if (!(error instanceof ProblemError && error.code === "NOT_FOUND")) {
        throw error;
      }
    }
    assert.ok(Date.now() < deadline, `email ${bookingId} not sent within 30 s`);
    await sleep(250);
  }
}

async function problem(promise: Promise<unknown>): Promise<ProblemError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ProblemError, `not a ProblemError: ${String(error)}`);
    return error;
  }
  assert.fail("expected a ProblemError");
}

function tomorrowAt(hour: number): string {
  const day = new Date(Date.now() + 24 * 3600 * 1000);
  day.setUTCHours(hour, 0, 0, 0);
  return day.toISOString();
}

function required(name: string): string {
  const value = process.env[name];
  assert.ok(value, `${name} is not set: tests/e2e/test_typescript_client.py runs this file`);
  return value;
}
