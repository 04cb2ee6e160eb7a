import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { ProblemError, UNEXPECTED_RESPONSE } from "@booking-durability/client";
import { clientWith, ok } from "./fakes.js";

async function problemOf(
  status: number,
  body: string,
  contentType = "application/problem+json",
): Promise<ProblemError> {
  const { client } = clientWith([{ status, body, headers: { "content-type": contentType } }], {
    retry: { maxAttempts: 1 },
  });
  try {
    await client.getHold("hld_1");
  } catch (error) {
    assert.ok(error instanceof ProblemError, `not a ProblemError: ${String(error)}`);
    return error;
  }
  assert.fail("expected a ProblemError");
}

describe("problem+json answers", () => {
  it("carry code, status, title, detail and the validation errors' locations", async () => {
    const error = await problemOf(
      422,
      JSON.stringify({
        type: "about:blank",
        title: "Unprocessable Content",
        status: 422,
        detail: "The request does not match the schema.",
        code: "VALIDATION_FAILED",
        errors: [{ loc: ["body", "tables", 0, "capacity"], msg: "Input should be greater than or equal to 1" }],
      }),
    );
    assert.equal(error.status, 422);
    assert.equal(error.code, "VALIDATION_FAILED");
    assert.equal(error.detail, "The request does not match the schema.");
    assert.deepEqual(error.errors, [
      { loc: ["body", "tables", 0, "capacity"], msg: "Input should be greater than or equal to 1" },
    ]);
    assert.equal(error.message, "422 VALIDATION_FAILED: The request does not match the schema.");
  });

  it("carry `missing` for incomplete hold metadata", async () => {
    const error = await problemOf(
      422,
      problemBody(422, "HOLD_METADATA_INCOMPLETE", { missing: ["policy_hash", "selection_snapshot"] }),
    );
    assert.deepEqual(error.missing, ["policy_hash", "selection_snapshot"]);
  });

  it("carry `reason` and `attempts` for a policy change, `reason` for no availability", async () => {
    const changed = await problemOf(
      409,
      problemBody(409, "POLICY_CHANGED", { reason: "no_availability", attempts: 1 }),
    );
    assert.deepEqual([changed.reason, changed.attempts], ["no_availability", 1]);
    const full = await problemOf(409, problemBody(409, "NO_AVAILABILITY", { reason: "party_too_large" }));
    assert.deepEqual([full.code, full.reason, full.attempts], ["NO_AVAILABILITY", "party_too_large", undefined]);
  });

  it("carry the error_id of an unexpected failure", async () => {
    const error = await problemOf(500, problemBody(500, "INTERNAL_ERROR", { error_id: "err-1" }));
    assert.equal(error.errorId, "err-1");
  });
});

describe("answers that are not the service's problems", () => {
  it("API Gateway's own answer, without detail, keeps its code", async () => {
    const error = await problemOf(
      403,
      JSON.stringify({ type: "about:blank", title: "Forbidden", status: 403, code: "INVALID_SIGNATURE" }),
      "application/json",
    );
    assert.deepEqual([error.status, error.code, error.detail], [403, "INVALID_SIGNATURE", undefined]);
    assert.equal(error.message, "403 INVALID_SIGNATURE: Forbidden");
  });

  it("a JSON body without a code is UNEXPECTED_RESPONSE, with its status", async () => {
    const error = await problemOf(403, JSON.stringify({ message: "Missing Authentication Token" }), "application/json");
    assert.deepEqual([error.status, error.code], [403, UNEXPECTED_RESPONSE]);
  });

  it("an HTML page is UNEXPECTED_RESPONSE, and retried like any 5xx", async () => {
    const { client, sent } = clientWith([
      { status: 502, body: "<html>Bad Gateway</html>", headers: { "content-type": "text/html" } },
      ok({ hold_id: "hld_1" }),
    ]);
    assert.deepEqual(await client.getHold("hld_1"), { hold_id: "hld_1" });
    assert.equal(sent.length, 2);
    const error = await problemOf(502, "<html>Bad Gateway</html>", "text/html");
    assert.deepEqual([error.status, error.code, error.detail], [502, UNEXPECTED_RESPONSE, undefined]);
  });

  it("a success whose body is not JSON is UNEXPECTED_RESPONSE too", async () => {
    const error = await problemOf(200, "not json", "text/plain");
    assert.deepEqual([error.status, error.code], [200, UNEXPECTED_RESPONSE]);
  });

  it("malformed fields are left out rather than trusted", async () => {
    const error = await problemOf(
      422,
      problemBody(422, "VALIDATION_FAILED", { errors: "all wrong", attempts: "2", missing: [1, "table_ids"] }),
    );
    assert.deepEqual([error.errors, error.attempts, error.missing], [undefined, undefined, ["table_ids"]]);
  });
});

function problemBody(status: number, code: string, extra: Record<string, unknown>): string {
  return JSON.stringify({ type: "about:blank", title: "Refused", status, detail: "A refusal.", code, ...extra });
}
