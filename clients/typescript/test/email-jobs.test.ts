import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  EMAIL_JOB_SCHEMA,
  InvalidEmailJobError,
  emailJobIssues,
  publishEmailJob,
  type GuestEmailRequest,
} from "@booking-durability/client";
import { recordingQueue } from "./fakes.js";

const QUEUE_URL = "http://127.0.0.1:4566/000000000000/email-queue";
const NOW = Date.parse("2031-04-01T12:00:00Z");
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
// Personal data planted in requests: it must never appear in an error.
const GUEST_EMAIL = "ana.planted+pii@example.test";
const GUEST_NAME = "Ana Planted-Name";

function confirmed(overrides: Partial<GuestEmailRequest> = {}): GuestEmailRequest {
  return {
    booking_id: "bk_42",
    email_type: "booking_confirmed",
    recipient: { email: GUEST_EMAIL, name: GUEST_NAME },
    locale: "es",
    time_zone: "Europe/Madrid",
    data: { restaurant_name: "Casa Lucio", party_size: 2, starts_at: "2031-05-01T20:00:00Z", reference: "R-1234" },
    ...overrides,
  };
}

async function refusal(request: unknown): Promise<{ error: InvalidEmailJobError; sends: number }> {
  const { sqs, sent } = recordingQueue();
  try {
    await publishEmailJob(request as GuestEmailRequest, { queueUrl: QUEUE_URL, sqs, now: () => NOW });
  } catch (error) {
    assert.ok(error instanceof InvalidEmailJobError, `not an InvalidEmailJobError: ${String(error)}`);
    return { error, sends: sent.length };
  }
  assert.fail("expected the job to be refused");
}

describe("publishEmailJob", () => {
  it("sends the booking-email/v1 message: the request, schema, a new job_id and deliver_at", async () => {
    const { sqs, sent } = recordingQueue();
    const job = await publishEmailJob(confirmed(), { queueUrl: QUEUE_URL, sqs, now: () => NOW });
    const [command] = sent;
    assert.equal(command?.input.QueueUrl, QUEUE_URL);
    const body: unknown = JSON.parse(command?.input.MessageBody ?? "");
    assert.deepEqual(body, job);
    assert.equal(job.schema, EMAIL_JOB_SCHEMA);
    assert.match(job.job_id, UUID);
    assert.equal(job.deliver_at, "2031-04-01T12:00:00.000Z");
    assert.equal(job.recipient.email, GUEST_EMAIL);
    assert.deepEqual(emailJobIssues(body), []);
  });

  it("sets only the message attributes email_type and schema", async () => {
    const { sqs, sent } = recordingQueue();
    await publishEmailJob(confirmed({ email_type: "booking_cancelled" }), { queueUrl: QUEUE_URL, sqs, now: () => NOW });
    assert.deepEqual(sent[0]?.input.MessageAttributes, {
      email_type: { DataType: "String", StringValue: "booking_cancelled" },
      schema: { DataType: "String", StringValue: "booking-email/v1" },
    });
  });

  it("gives every message its own job_id", async () => {
    const { sqs } = recordingQueue();
    const first = await publishEmailJob(confirmed(), { queueUrl: QUEUE_URL, sqs });
    const second = await publishEmailJob(confirmed(), { queueUrl: QUEUE_URL, sqs });
    assert.notEqual(first.job_id, second.job_id);
  });

  for (const [label, deliverAt, delaySeconds] of [
    ["now", NOW, 0],
    ["in 10 minutes", NOW + 600_000, 600],
    ["in 10 minutes and half a second", NOW + 600_500, 601],
    ["in 2 hours (SQS's 15 minutes at most)", NOW + 7_200_000, 900],
    ["an hour ago", NOW - 3_600_000, 0],
  ] as const) {
    it(`delays a message due ${label} by ${delaySeconds} s`, async () => {
      const { sqs, sent } = recordingQueue();
      const job = await publishEmailJob(confirmed(), {
        queueUrl: QUEUE_URL,
        sqs,
        now: () => NOW,
        deliverAt: new Date(deliverAt),
      });
      assert.equal(sent[0]?.input.DelaySeconds, delaySeconds);
      assert.equal(job.deliver_at, new Date(deliverAt).toISOString());
    });
  }
});

describe("a job the consumer would dead-letter is never sent", () => {
  it("names each place and rule, and never the guest's data", async () => {
    const { error, sends } = await refusal({
      ...confirmed({ booking_id: "bk 42" }),
      recipient: { email: `${GUEST_NAME} <${GUEST_EMAIL}>`, name: GUEST_NAME },
      surprise: true,
    });
    assert.equal(sends, 0);
    const places = error.issues.map((issue) => `${issue.path} ${issue.rule}`).sort();
    assert.deepEqual(places, [
      "/booking_id pattern",
      "/recipient/email format",
      "/recipient/email pattern",
      "/surprise additionalProperties",
    ]);
    const told = `${error.message} ${JSON.stringify(error.issues)}`;
    assert.ok(!told.includes(GUEST_EMAIL) && !told.includes(GUEST_NAME), told);
  });

  it("refuses the service's own email types", async () => {
    const { error, sends } = await refusal(
      confirmed({ email_type: "admin_policy_drift" as GuestEmailRequest["email_type"] }),
    );
    assert.equal(sends, 0);
    assert.ok(error.issues.some((issue) => issue.path === "/email_type"));
  });

  it("refuses delay fields in the request: deliverAt says when", async () => {
    const { error, sends } = await refusal({ ...confirmed(), delay_seconds: 60 });
    assert.equal(sends, 0);
    assert.deepEqual(
      error.issues.map((issue) => issue.path),
      ["/delay_seconds"],
    );
  });

  it("refuses a message SQS would not take (above 256 KiB)", async () => {
    const many = Array.from({ length: 16_000 }, () => "booking_cancelled" as const);
    const { error, sends } = await refusal(confirmed({ suppress_if_sent: many }));
    assert.equal(sends, 0);
    assert.deepEqual(
      error.issues.map((issue) => issue.rule),
      ["maxMessageBytes"],
    );
  });

  it("checks formats: a deliver_at or job_id that is not one is an issue", () => {
    const job = { ...confirmed(), schema: EMAIL_JOB_SCHEMA, job_id: "not-a-uuid", deliver_at: "tomorrow" };
    assert.deepEqual(
      emailJobIssues(job)
        .map((issue) => `${issue.path} ${issue.rule}`)
        .sort(),
      ["/deliver_at format", "/deliver_at pattern", "/job_id format", "/job_id pattern"],
    );
  });
});
