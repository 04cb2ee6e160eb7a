// SigV4 for API Gateway (`execute-api`), with the maintained @smithy/signature-v4. In AWS every
// route but the provider's webhook needs it; the local stack has no auth, so it can be turned off.
import { Sha256 } from "@aws-crypto/sha256-js";
import { defaultProvider } from "@aws-sdk/credential-provider-node";
import { SignatureV4 } from "@smithy/signature-v4";
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@smithy/types";

/** Fixed credentials, or a provider of them (refreshed as they expire). */
export type Credentials = AwsCredentialIdentity | AwsCredentialIdentityProvider;

/** A request as it will be sent: every header in `headers` is sent exactly so, and signed. */
export interface OutgoingRequest {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body: string | undefined;
}

/** Returns the headers to send for `request` (its own, plus any the signature adds). */
export type RequestSigner = (request: OutgoingRequest) => Promise<Record<string, string>>;

/** Signs for API Gateway in `region`, with `credentials` (default: the SDK's default provider
 * chain: environment, SSO, shared files, web identity, container and instance roles). */
export function sigV4Signer(region: string, credentials: Credentials = defaultProvider()): RequestSigner {
  const signer = new SignatureV4({ service: "execute-api", region, credentials, sha256: Sha256 });
  return async ({ method, url, headers, body }) => {
    const query: Record<string, string | string[]> = {};
    for (const name of new Set(url.searchParams.keys())) {
      const values = url.searchParams.getAll(name);
      query[name] = values.length === 1 ? (values[0] ?? "") : values;
    }
    const signed = await signer.sign({
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port === "" ? {} : { port: Number(url.port) }),
      path: url.pathname,
      query,
      // fetch derives Host from the URL, so the signature covers the same value
      headers: { ...headers, host: url.host },
      body,
    });
    const sent: Record<string, string> = {};
    for (const [name, value] of Object.entries(signed.headers)) {
      if (name.toLowerCase() !== "host") {
        sent[name] = value;
      }
    }
    return sent;
  };
}

/** The region of an `execute-api` URL (`https://<id>.execute-api.<region>.amazonaws.com/...`). */
export function regionOfApiUrl(url: URL): string | undefined {
  return /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/.exec(url.hostname)?.[1];
}
