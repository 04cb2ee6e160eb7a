import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { ConnectionError, ProblemError, type HoldRequest } from "@booking-durability/client";
import { clientWith, connectionRefused, ok, problem } from "./fakes.js";

const HOLD = { hold_id: "hld_1", status: "held" };
const HOLD_REQUEST: HoldRequest = { venue_id: "casa", party_size: 2, starts_at: "2031-05-01T20:00:00Z" };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("routes", () => {
  it("resolves every path under the base URL's stage, ids percent-encoded, the revision in the query", async () => {
    // Given a base URL without its trailing slash
    const { client, sent } = clientWith([ok({}), ok({})], { baseUrl: "https://api.example.test/dev" });
    // When it reads a hold and an email
    await client.getHold("hld 1/2");
    await client.getEmail("bk_1", "booking_updated", 3);
    // Then both went under /dev/, as one path segment per id
    assert.deepEqual(
      sent.map((request) => `${request.method} ${request.url.href}`),
      [
        "GET https://api.example.test/dev/v1/holds/hld%201%2F2",
        "GET https://api.example.test/dev/v1/emails/bk_1/booking_updated?revision=3",
      ],
    );
  });

  it("sends a body as JSON and the headers a route takes", async () => {
    const { client, sent } = clientWith([ok({ venue_id: "casa", policy_version: 2, policy_hash: "h2" })]);
    const config = {
      tables: [{ id: "T1", capacity: 2, zone: "main" }],
      policy: {
        slot_minutes: 15 as const,
        default_duration_minutes: 90,
        buffer_minutes: 10,
        max_party_size: 10,
        hold_ttl_seconds: 600,
        allow_combinations: true,
        bookable_zones: ["main"],
      },
    };
    const saved = await client.putVenue("casa", config, { ifMatch: "h1" });
    assert.equal(saved.policy_version, 2);
    const [request] = sent;
    assert.equal(request?.method, "PUT");
    assert.equal(request?.headers["content-type"], "application/json");
    assert.equal(request?.headers["if-match"], "h1");
    assert.deepEqual(JSON.parse(request?.body ?? ""), config);
  });
});

describe("retries", () => {
  it("retries a GET answered 503 and returns the answer that follows", async () => {
    const { client, sent, waits } = clientWith([problem(503, "STORE_UNAVAILABLE"), ok(HOLD)]);
    assert.deepEqual(await client.getHold("hld_1"), HOLD);
    assert.equal(sent.length, 2);
    assert.equal(waits.length, 1);
  });

  it("waits at least what Retry-After asks, in seconds or as an HTTP date", async () => {
    const inThreeSeconds = new Date(Date.now() + 3000).toUTCString();
    const { client, waits } = clientWith([
      { ...problem(429, "THROTTLED"), headers: { "retry-after": "2" } },
      { ...problem(503, "BUSY"), headers: { "retry-after": inThreeSeconds } },
      ok(HOLD),
    ]);
    await client.getHold("hld_1");
    assert.equal(waits.length, 2);
    assert.ok((waits[0] ?? 0) >= 2000, `waited ${waits[0]} ms for Retry-After: 2`);
    assert.ok((waits[1] ?? 0) >= 2000, `waited ${waits[1]} ms for a Retry-After date 3 s away`);
  });

  it("backs off with full jitter, doubling up to maxDelayMs", async () => {
    const { client, waits } = clientWith(
      [problem(502, "UPSTREAM_FAILED"), problem(502, "UPSTREAM_FAILED"), problem(502, "UPSTREAM_FAILED"), ok(HOLD)],
      { random: () => 0.999, retry: { baseDelayMs: 100, maxDelayMs: 300 } },
    );
    await client.getHold("hld_1");
    assert.deepEqual(waits, [99, 199, 299]);
  });

  it("stops when Retry-After asks for more than maxDelayMs, and says how long in the error", async () => {
    const { client, sent } = clientWith([{ ...problem(503, "BUSY"), headers: { "retry-after": "120" } }]);
    const error = await rejection(client.getBooking("bk_1"));
    assert.ok(error instanceof ProblemError);
    assert.equal(error.code, "BUSY");
    assert.equal(error.retryAfterSeconds, 120);
    assert.equal(sent.length, 1);
  });

  it("gives up after maxAttempts with the last answer's problem", async () => {
    const { client, sent } = clientWith(
      [problem(504, "UPSTREAM_TIMEOUT"), problem(504, "UPSTREAM_TIMEOUT"), problem(504, "UPSTREAM_TIMEOUT")],
      { retry: { maxAttempts: 3 } },
    );
    const error = await rejection(client.cancelBooking("bk_1"));
    assert.ok(error instanceof ProblemError);
    assert.equal(error.code, "UPSTREAM_TIMEOUT");
    assert.equal(error.requestAttempt, 3);
    assert.equal(sent.length, 3);
  });

  it("retries a PUT, a DELETE and an email POST after connection errors", async () => {
    const { client, sent } = clientWith([
      connectionRefused(),
      ok({ hold_id: "hld_1", status: "released" }),
      connectionRefused(),
      ok(
        { job_id: "j", dedupe_key: "bk_1#booking_confirmed#0", deliver_at: "2031-01-01T00:00:00Z", status: "queued" },
        202,
      ),
    ]);
    await client.releaseHold("hld_1");
    const accepted = await client.sendEmail({
      booking_id: "bk_1",
      email_type: "booking_confirmed",
      recipient: { email: "guest@example.test" },
      data: { restaurant_name: "Casa", party_size: 2, starts_at: "2031-05-01T20:00:00Z", reference: "R-1" },
    });
    assert.equal(accepted.status, "queued");
    assert.deepEqual(
      sent.map((request) => request.method),
      ["DELETE", "DELETE", "POST", "POST"],
    );
    assert.equal(sent[2]?.body, sent[3]?.body);
  });

  it("never retries a client's mistake", async () => {
    const { client, sent } = clientWith([problem(404, "HOLD_NOT_FOUND")]);
    const error = await rejection(client.getHold("hld_1"));
    assert.ok(error instanceof ProblemError);
    assert.equal(error.code, "HOLD_NOT_FOUND");
    assert.equal(sent.length, 1);
  });

  it("ends in a ConnectionError, with the cause, when no attempt got an answer", async () => {
    const { client, sent } = clientWith([connectionRefused(), connectionRefused()], { retry: { maxAttempts: 2 } });
    const error = await rejection(client.getVenue("casa"));
    assert.ok(error instanceof ConnectionError);
    assert.equal(error.requestAttempts, 2);
    assert.ok(error.cause instanceof TypeError);
    assert.equal(sent.length, 2);
  });
});

describe("POST /v1/holds", () => {
  it("is never retried on a 5xx: a retry could hold a second table", async () => {
    const { client, sent } = clientWith([problem(503, "STORE_UNAVAILABLE"), ok(HOLD, 201)]);
    const error = await rejection(client.createHold(HOLD_REQUEST));
    assert.ok(error instanceof ProblemError);
    assert.equal(error.code, "STORE_UNAVAILABLE");
    assert.equal(sent.length, 1);
  });

  it("is never retried after a connection error either", async () => {
    const { client, sent } = clientWith([connectionRefused(), ok(HOLD, 201)]);
    const error = await rejection(client.createHold(HOLD_REQUEST));
    assert.ok(error instanceof ConnectionError);
    assert.match(error.message, /may or may not have taken effect/);
    assert.equal(sent.length, 1);
  });

  it("is not retried even on a throttle with Retry-After", async () => {
    const { client, sent } = clientWith([
      { ...problem(429, "THROTTLED"), headers: { "retry-after": "1" } },
      ok(HOLD, 201),
    ]);
    await rejection(client.createHold(HOLD_REQUEST));
    assert.equal(sent.length, 1);
  });
});

describe("confirmation", () => {
  const CONFIRMED = { booking_id: "bk_1", hold_id: "hld_1", status: "confirmed", policy_drift: null };

  it("retries with the Idempotency-Key it was given", async () => {
    const { client, sent } = clientWith([problem(503, "BUSY"), connectionRefused(), ok(CONFIRMED)]);
    await client.confirmHold("hld_1", "bk_1", { idempotencyKey: "pending-bk_1" });
    assert.deepEqual(
      sent.map((request) => request.headers["idempotency-key"]),
      ["pending-bk_1", "pending-bk_1", "pending-bk_1"],
    );
    assert.deepEqual(JSON.parse(sent[0]?.body ?? ""), { booking_id: "bk_1" });
  });

  it("makes a key when given none: a UUID, the same on every attempt, a new one per confirmation", async () => {
    const { client, sent } = clientWith([problem(502, "UPSTREAM_FAILED"), ok(CONFIRMED), ok(CONFIRMED)]);
    await client.confirmHold("hld_1", "bk_1");
    await client.confirmHold("hld_2", "bk_2");
    const keys = sent.map((request) => request.headers["idempotency-key"] ?? "");
    assert.match(keys[0] ?? "", UUID);
    assert.equal(keys[0], keys[1]);
    assert.notEqual(keys[1], keys[2]);
  });

  it("throws POLICY_CHANGED with its reason and attempts, and does not retry it", async () => {
    const { client, sent } = clientWith([problem(409, "POLICY_CHANGED", { reason: "drift_repeated", attempts: 2 })]);
    const error = await rejection(client.confirmHold("hld_1", "bk_1"));
    assert.ok(error instanceof ProblemError);
    assert.deepEqual([error.code, error.reason, error.attempts], ["POLICY_CHANGED", "drift_repeated", 2]);
    assert.equal(sent.length, 1);
  });
});

describe("signing", () => {
  const credentials = { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret", sessionToken: "token" };

  it("signs for execute-api in the region of the API's URL, and sends no Host of its own", async () => {
    const { client, sent } = clientWith([ok(HOLD)], {
      baseUrl: "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/",
      signing: true,
      credentials,
    });
    await client.getHold("hld_1");
    const headers = sent[0]?.headers ?? {};
    assert.match(
      headers["authorization"] ?? "",
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/execute-api\/aws4_request, SignedHeaders=[a-z0-9;-]*host[a-z0-9;-]*, Signature=[0-9a-f]{64}$/,
    );
    assert.match(headers["x-amz-date"] ?? "", /^\d{8}T\d{6}Z$/);
    assert.equal(headers["x-amz-security-token"], "token");
    assert.equal(headers["host"], undefined);
  });

  it("signs the body, its content-type and the Idempotency-Key", async () => {
    const { client, sent } = clientWith([ok({})], {
      signing: true,
      region: "eu-south-2",
      credentials,
    });
    await client.confirmHold("hld_1", "bk_1", { idempotencyKey: "k-1" });
    const authorization = sent[0]?.headers["authorization"] ?? "";
    assert.match(authorization, /\/eu-south-2\/execute-api\//);
    const signedHeaders = /SignedHeaders=([^,]+)/.exec(authorization)?.[1]?.split(";") ?? [];
    for (const name of ["content-type", "host", "idempotency-key", "x-amz-date"]) {
      assert.ok(signedHeaders.includes(name), `${name} is not signed: ${signedHeaders.join(";")}`);
    }
  });

  it("needs a region to sign, and none with signing turned off", () => {
    const saved = { region: process.env["AWS_REGION"], fallback: process.env["AWS_DEFAULT_REGION"] };
    delete process.env["AWS_REGION"];
    delete process.env["AWS_DEFAULT_REGION"];
    try {
      assert.throws(() => clientWith([], { signing: true, credentials }), /region/);
      assert.doesNotThrow(() => clientWith([], { signing: false }));
    } finally {
      restore("AWS_REGION", saved.region);
      restore("AWS_DEFAULT_REGION", saved.fallback);
    }
  });

  it("sends no signature with signing off", async () => {
    const { client, sent } = clientWith([ok({ status: "ok" })], { signing: false });
    await client.health();
    assert.equal(sent[0]?.headers["authorization"], undefined);
  });
});

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("expected the call to throw");
}

function restore(name: string, value: string | undefined): void {
  if (value === undefined) {
    delete process.env[name];
  } else {
    process.env[name] = value;
  }
}
