"""The TypeScript client's SigV4 signatures hold up against an independent implementation: a
loopback server recomputes each request's signature with botocore, from what arrived on the wire,
as API Gateway would (clients/typescript/e2e/signing.test.ts sends the requests)."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.typescript import built, environment_without_aws, node_tests

REGION = "eu-south-2"
CREDENTIALS = Credentials("AKIDTYPESCRIPTCLIENT", "typescript-client-secret", "typescript-client-session")
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<day>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
    r"/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})"
)


def signature_problem(method: str, url: str, headers: dict[str, str], body: bytes) -> str | None:
    """Why this request's signature is not the one botocore computes for it (None: it is)."""
    found = _AUTHORIZATION.fullmatch(headers.get("authorization", ""))
    if found is None:
        return "no SigV4 Authorization header"
    if (found["key"], found["region"], found["service"]) != (CREDENTIALS.access_key, REGION, "execute-api"):
        return f"signed for {found['key']}, {found['region']}, {found['service']}"
    if headers.get("x-amz-security-token") != CREDENTIALS.token:
        return "the session token is not sent"
    declared = headers.get("x-amz-content-sha256")
    if declared is not None and declared != hashlib.sha256(body).hexdigest():
        return "x-amz-content-sha256 is not the body's hash"
    signed = found["signed"].split(";")
    if "host" not in signed:
        return "host is not signed"
    if missing := [name for name in signed if name not in headers]:
        return f"signed headers not sent: {missing}"
    request = AWSRequest(method=method, url=url, data=body, headers={name: headers[name] for name in signed})
    request.context["timestamp"] = headers.get("x-amz-date", "")
    signer = SigV4Auth(CREDENTIALS, "execute-api", REGION)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    return None if expected == found["signature"] else "the signature does not match"


@dataclass
class VerifyingApi:
    url: str
    checked: list[tuple[str, str, str | None]] = field(default_factory=list)


@pytest.fixture
def verifying_api() -> Iterator[VerifyingApi]:
    """A loopback API that answers 200 `{}` to correctly signed requests, 403 to the others."""
    api = VerifyingApi(url="")

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {name.lower(): value for name, value in self.headers.items()}
            url = f"http://{headers.get('host', '')}{self.path}"
            problem = signature_problem(self.command, url, headers, body)
            api.checked.append((self.command, self.path, problem))
            answer: dict[str, Any] = (
                {}
                if problem is None
                else {"type": "about:blank", "title": "Forbidden", "status": 403, "code": "INVALID_SIGNATURE"}
            )
            encoded = json.dumps(answer).encode()
            self.send_response(200 if problem is None else 403)
            self.send_header(
                "content-type", "application/json" if problem is None else "application/problem+json"
            )
            self.send_header("content-length", str(len(encoded)))
            self.end_headers()
            self.wfile.write(encoded)

        do_GET = do_PUT = do_POST = do_DELETE = _answer

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api.url = f"http://127.0.0.1:{server.server_address[1]}/dev/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield api
    server.shutdown()
    server.server_close()


def test_the_clients_signatures_are_the_ones_botocore_computes(verifying_api: VerifyingApi) -> None:
    # Given credentials and a region only in the environment (the default provider chain)
    environment = environment_without_aws(
        SIGNING_API_URL=verifying_api.url,
        AWS_ACCESS_KEY_ID=CREDENTIALS.access_key,
        AWS_SECRET_ACCESS_KEY=CREDENTIALS.secret_key,
        AWS_SESSION_TOKEN=CREDENTIALS.token or "",
        AWS_REGION=REGION,
    )
    # When the client sends a GET, a PUT, a confirm and a DELETE, signed
    ran = node_tests([built() / "e2e" / "signing.test.js"], env=environment)
    # Then botocore computes the same signature for each, from what arrived
    assert ran.returncode == 0, ran.stdout[-6000:] + ran.stderr
    assert [(method, problem) for method, _, problem in verifying_api.checked] == [
        ("GET", None),
        ("PUT", None),
        ("POST", None),
        ("DELETE", None),
    ]
    assert verifying_api.checked[0][1] == "/dev/v1/emails/bk%201%2F%C3%B1~x/booking_updated?revision=3"


def test_the_verifier_refuses_a_request_changed_after_signing() -> None:
    # Given a request signed by botocore itself
    request = AWSRequest(
        method="POST",
        url="http://127.0.0.1:9/dev/v1/holds/hld_1/confirm",
        data=b'{"booking_id": "bk_1"}',
        headers={"content-type": "application/json", "idempotency-key": "k-1"},
    )
    SigV4Auth(CREDENTIALS, "execute-api", REGION).add_auth(request)
    headers = {name.lower(): value for name, value in request.headers.items()} | {"host": "127.0.0.1:9"}
    # Then the verifier takes it as sent, and refuses it changed in body, header or path
    assert signature_problem("POST", request.url, headers, request.body) is None
    assert signature_problem("POST", request.url, headers, b'{"booking_id": "bk_2"}') is not None
    assert (
        signature_problem("POST", request.url, headers | {"idempotency-key": "k-2"}, request.body) is not None
    )
    assert signature_problem("POST", request.url.replace("hld_1", "hld_2"), headers, request.body) is not None
