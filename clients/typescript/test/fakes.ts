// Test doubles for the client's collaborators: a scripted fetch, a recorded sleep, an SQS queue.
import type { SendMessageCommand } from "@aws-sdk/client-sqs";

import { BookingDurabilityClient, type ClientOptions } from "@booking-durability/client";

/** One request as the client sent it. */
export interface SentRequest {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body: string | undefined;
}

/** An answer the fake fetch gives: a response to build, or an error to throw (no answer). */
export type Scripted = { status: number; body?: string; headers?: Record<string, string> } | Error;

export function problem(status: number, code: string, extra: Record<string, unknown> = {}): Scripted {
  return {
    status,
    body: JSON.stringify({ type: "about:blank", title: "Refused", status, detail: "A refusal.", code, ...extra }),
    headers: { "content-type": "application/problem+json" },
  };
}

export function ok(body: unknown, status = 200): Scripted {
  return { status, body: JSON.stringify(body), headers: { "content-type": "application/json" } };
}

/** A fetch that answers from `script` in order and records what it was sent. */
export function scriptedFetch(script: Scripted[]): { fetch: typeof fetch; sent: SentRequest[] } {
  const sent: SentRequest[] = [];
  const fake = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((value, name) => {
      headers[name] = value;
    });
    sent.push({
      method: init?.method ?? "GET",
      url: new URL(input instanceof Request ? input.url : input),
      headers,
      body: typeof init?.body === "string" ? init.body : undefined,
    });
    const next = script.shift();
    if (next === undefined) {
      throw new Error("the test's script has no answer left");
    }
    if (next instanceof Error) {
      throw next;
    }
    return new Response(next.body ?? null, { status: next.status, headers: next.headers ?? {} });
  };
  return { fetch: fake as typeof fetch, sent };
}

/** A client over a scripted fetch, unsigned unless asked, recording the waits it makes. */
export function clientWith(
  script: Scripted[],
  options: Partial<ClientOptions> = {},
): { client: BookingDurabilityClient; sent: SentRequest[]; waits: number[] } {
  const { fetch, sent } = scriptedFetch(script);
  const waits: number[] = [];
  const client = new BookingDurabilityClient({
    baseUrl: "https://api.example.test/dev/",
    signing: false,
    fetch,
    sleep: async (ms) => {
      waits.push(ms);
    },
    random: () => 0.5,
    ...options,
  });
  return { client, sent, waits };
}

/** An email queue that records what is sent to it. */
export function recordingQueue(): {
  sqs: { send(command: SendMessageCommand): Promise<unknown> };
  sent: SendMessageCommand[];
} {
  const sent: SendMessageCommand[] = [];
  return {
    sqs: {
      send: async (command: SendMessageCommand) => {
        sent.push(command);
        return { MessageId: "m-1" };
      },
    },
    sent,
  };
}

/** A connection failure as Node's fetch reports it. */
export function connectionRefused(): Error {
  return new TypeError("fetch failed", {
    cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }),
  });
}
