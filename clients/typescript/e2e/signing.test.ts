// The client's SigV4 signatures, checked by an independent implementation: started by
// tests/integration/test_typescript_client_signing.py, whose loopback server verifies every
// request with botocore's signer and answers 403 INVALID_SIGNATURE when it does not match.
// It passes SIGNING_API_URL (the server, with a stage path) and the environment the default
// credential chain and the region come from (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN, AWS_REGION).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { BookingDurabilityClient } from "@booking-durability/client";

const baseUrl = process.env["SIGNING_API_URL"];
assert.ok(baseUrl, "SIGNING_API_URL is not set: tests/integration/test_typescript_client_signing.py runs this file");
// Signing is on by default; credentials and region come from the environment
const client = new BookingDurabilityClient({ baseUrl, retry: { maxAttempts: 1 } });

describe("every request is signed as API Gateway checks it", () => {
  it("a GET with ids that need percent-encoding and a query", async () => {
    await client.getEmail("bk 1/ñ~x", "booking_updated", 3);
  });

  it("a PUT with a JSON body and If-Match", async () => {
    await client.putVenue(
      "casa",
      {
        tables: [{ id: "T1", capacity: 2, zone: "terraza ñ" }],
        policy: {
          slot_minutes: 15,
          default_duration_minutes: 90,
          buffer_minutes: 10,
          max_party_size: 10,
          hold_ttl_seconds: 600,
          allow_combinations: false,
          bookable_zones: ["terraza ñ"],
        },
      },
      { ifMatch: '"7b80010cc6e843103f7d54af0ad088b22cabf9552ab7c4eec84993a910e126e6"' },
    );
  });

  it("a confirm with its Idempotency-Key", async () => {
    await client.confirmHold("hld_1", "bk_1", { idempotencyKey: "key/1=2+3" });
  });

  it("a DELETE without a body", async () => {
    await client.cancelBooking("bk_1");
  });
});
