"""The local API server runs each function as Lambda does: warm execution environments, one request
at a time each, several at once, failures answered as API Gateway answers them.

Against ``scripts/devstack/api_server.py`` started on its own, with a hand-made template whose one
route serves a test handler (so the handler can wait at a barrier, raise, crash or hang).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devstack.api_gateway import MAX_REQUEST_BYTES, api_spec
from devstack.api_server import READY_MARKER
from devstack.local_resources import LocalResources

from .harness import REPO_ROOT, ApiResponse, call_api, eventually, free_port, pid_alive, processes_mentioning

pytestmark = pytest.mark.e2e

CONCURRENCY = 4
FUNCTION_TIMEOUT_SECONDS = 2

HANDLER = textwrap.dedent(
    """
    import json
    import os
    import time
    from pathlib import Path

    INVOCATIONS = 0  # module state: survives between invocations of a warm environment


    def handler(event, context):
        global INVOCATIONS
        INVOCATIONS += 1
        action = event["pathParameters"]["action"]
        query = event["queryStringParameters"] or {}
        if action == "echo":
            return {"statusCode": 200, "body": json.dumps({
                "pid": os.getpid(),
                "invocation": INVOCATIONS,
                "event": event,
                "greeting": os.environ["GREETING"],
                "region": os.environ["AWS_REGION"],
                "context": {
                    "function_name": context.function_name,
                    "aws_request_id": context.aws_request_id,
                    "invoked_function_arn": context.invoked_function_arn,
                    "memory_limit_in_mb": context.memory_limit_in_mb,
                    "remaining_ms": context.get_remaining_time_in_millis(),
                },
            })}
        if action == "barrier":  # wait until `parties` invocations are inside at once
            folder = Path(query["folder"])
            (folder / str(os.getpid())).touch()
            deadline = time.monotonic() + 20
            while len(list(folder.iterdir())) < int(query["parties"]) and time.monotonic() < deadline:
                time.sleep(0.01)
            inside = len(list(folder.iterdir()))
            return {"statusCode": 200, "body": json.dumps({"pid": os.getpid(), "inside": inside})}
        if action == "log":
            print(json.dumps({"level": "INFO", "message": "handler line", "marker": query["marker"]}))
            return {"statusCode": 204, "body": ""}
        if action == "raise":
            raise RuntimeError("the handler failed")
        if action == "crash":
            os._exit(3)
        if action == "hang":
            time.sleep(60)
        if action == "malformed":
            return {"statusCode": 200, "body": {"not": "a string"}}
        return {"statusCode": 418, "body": "{}"}
    """
)


def template(code_dir: Path) -> dict[str, Any]:
    """One REST API: ``ANY /test/{action}`` → the test function; a gateway response of its own."""
    api = {"Ref": "Api"}
    return {
        "Resources": {
            "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "test"}},
            "Test": {
                "Type": "AWS::ApiGateway::Resource",
                "Properties": {
                    "ParentId": {"Fn::GetAtt": ["Api", "RootResourceId"]},
                    "PathPart": "test",
                    "RestApiId": api,
                },
            },
            "Action": {
                "Type": "AWS::ApiGateway::Resource",
                "Properties": {"ParentId": {"Ref": "Test"}, "PathPart": "{action}", "RestApiId": api},
            },
            "ActionAny": {
                "Type": "AWS::ApiGateway::Method",
                "Properties": {
                    "HttpMethod": "ANY",
                    "ResourceId": {"Ref": "Action"},
                    "RestApiId": api,
                    "Integration": {
                        "Type": "AWS_PROXY",
                        "Uri": {
                            "Fn::Sub": "arn:aws:apigateway:${AWS::Region}:lambda:path/functions/${Fn.Arn}"
                        },
                    },
                },
            },
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Handler": "handler.handler",
                    "Runtime": "python3.13",
                    "Timeout": FUNCTION_TIMEOUT_SECONDS,
                    "MemorySize": 256,
                    "Environment": {"Variables": {"GREETING": "hola", "WHERE": {"Ref": "AWS::Region"}}},
                },
                "Metadata": {"aws:asset:path": str(code_dir)},
            },
            "Stage": {
                "Type": "AWS::ApiGateway::Stage",
                "Properties": {"RestApiId": api, "StageName": "test"},
            },
            "TooLarge": {
                "Type": "AWS::ApiGateway::GatewayResponse",
                "Properties": {
                    "RestApiId": api,
                    "ResponseType": "REQUEST_TOO_LARGE",
                    "StatusCode": "413",
                    "ResponseParameters": {
                        "gatewayresponse.header.Content-Type": "'application/problem+json'"
                    },
                    "ResponseTemplates": {"application/json": '{"status":413,"code":"PAYLOAD_TOO_LARGE"}'},
                },
            },
        }
    }


@dataclass
class ApiServerProcess:
    process: subprocess.Popen[bytes]
    url: str
    folder: Path
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    def call(self, method: str, path: str, **kwargs: Any) -> ApiResponse:
        return call_api(self.url, method, path, **kwargs)

    def environments(self) -> set[int]:
        """The pids of the server's execution environments (its live child processes)."""
        return {pid for pid in processes_mentioning(str(self.folder)) if pid != self.process.pid}


def _collect(stream: Any, lines: list[str], ready: threading.Event | None) -> None:
    for raw in stream:
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        lines.append(line)
        if ready is not None and READY_MARKER in line:
            ready.set()


def start_api_server(folder: Path) -> ApiServerProcess:
    code_dir = folder / "code"
    code_dir.mkdir()
    (code_dir / "handler.py").write_text(HANDLER)
    resources = LocalResources(region="eu-west-1", stack_name="test")
    resources.function_names["Fn"] = "test-fn"
    spec = api_spec(
        template(code_dir),
        resources,
        assembly_dir=folder,
        local_environment={},
        warn=print,
    )
    assert spec is not None
    spec_file = folder / "api.json"
    spec_file.write_text(spec.to_json())
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "scripts/devstack/api_server.py", str(spec_file)),
            *("--port", str(port), "--concurrency", str(CONCURRENCY)),
        ],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    server = ApiServerProcess(process, f"http://127.0.0.1:{port}", folder)
    threading.Thread(target=_collect, args=(process.stdout, server.stdout, None), daemon=True).start()
    threading.Thread(target=_collect, args=(process.stderr, server.stderr, server.ready), daemon=True).start()
    if not server.ready.wait(60):
        stop_api_server(server)
        pytest.fail("the API server did not start:\n" + "\n".join(server.stderr))
    return server


def stop_api_server(server: ApiServerProcess) -> None:
    """SIGTERM to the server alone (not its group): it must stop its environments itself."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
        pytest.fail("the API server did not stop within 20 s of SIGTERM")


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServerProcess]:
    server = start_api_server(tmp_path_factory.mktemp("api"))
    yield server
    stop_api_server(server)
    eventually(lambda: not server.environments(), what="the environments to end")


def barrier_folder(server: ApiServerProcess) -> Path:
    folder = server.folder / f"barrier-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    return folder


def test_the_server_starts_one_warm_environment_per_concurrent_request(api_server: ApiServerProcess) -> None:
    # Given the server, started and listening
    # Then each function has its environments running already, their handlers imported
    assert len(api_server.environments()) == CONCURRENCY


def test_concurrent_requests_run_at_once_each_in_its_own_process(api_server: ApiServerProcess) -> None:
    # Given as many requests as the function has environments, each waiting inside the handler
    # until all of them are inside (a barrier: it only opens if they run at the same time)
    folder = barrier_folder(api_server)
    params = {"folder": str(folder), "parties": CONCURRENCY}

    # When they are sent at once
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        answers = list(
            pool.map(lambda _: api_server.call("GET", "/test/barrier", params=params), range(CONCURRENCY))
        )

    # Then every one got through the barrier, each in a process of its own
    assert [answer.status for answer in answers] == [200] * CONCURRENCY
    assert all(answer.body["inside"] == CONCURRENCY for answer in answers)
    assert len({answer.body["pid"] for answer in answers}) == CONCURRENCY


def test_an_environment_stays_warm_between_requests(api_server: ApiServerProcess) -> None:
    # When requests follow one another
    answers = [api_server.call("GET", "/test/echo") for _ in range(6)]

    # Then each environment counts on from its previous invocation: the handler was imported once
    by_pid: dict[int, list[int]] = {}
    for answer in answers:
        by_pid.setdefault(answer.body["pid"], []).append(answer.body["invocation"])
    for invocations in by_pid.values():
        assert invocations == list(range(invocations[0], invocations[0] + len(invocations)))
    assert set(by_pid) <= api_server.environments()


def test_the_handler_gets_a_rest_proxy_event_context_and_its_template_environment(
    api_server: ApiServerProcess,
) -> None:
    # When the booking app sends a request with a query, headers and a JSON body
    status, headers, body = api_server.call(
        "POST", "/test/echo", params={"revision": "2"}, json={"booking_id": "b-1"}, headers={"X-Trace": "t-1"}
    )

    # Then the handler saw the event API Gateway sends for it
    assert status == 200
    event = body["event"]
    assert event["resource"] == "/test/{action}"
    assert event["path"] == "/test/echo"
    assert event["httpMethod"] == "POST"
    assert event["pathParameters"] == {"action": "echo"}
    assert event["queryStringParameters"] == {"revision": "2"}
    assert json.loads(event["body"]) == {"booking_id": "b-1"}
    assert event["isBase64Encoded"] is False
    assert event["headers"]["X-Trace"] == "t-1"
    assert event["requestContext"]["stage"] == "test"
    assert event["requestContext"]["resourcePath"] == "/test/{action}"
    assert event["requestContext"]["identity"]["sourceIp"] == "127.0.0.1"
    # And the answer carries API Gateway's request id
    assert headers["x-amzn-RequestId"] == event["requestContext"]["requestId"]
    # And a Lambda context from the template's function
    context = body["context"]
    assert context["function_name"] == "test-fn"
    assert context["invoked_function_arn"].endswith(":function:test-fn")
    assert context["memory_limit_in_mb"] == 256
    assert 0 < context["remaining_ms"] <= FUNCTION_TIMEOUT_SECONDS * 1000
    assert context["aws_request_id"]
    # And the function's environment variables, references resolved
    assert body["greeting"] == "hola"
    assert body["region"] == "eu-west-1"


def test_the_handlers_lines_reach_stdout_unchanged_one_line_each(api_server: ApiServerProcess) -> None:
    marker = uuid.uuid4().hex

    status, _, _ = api_server.call("GET", "/test/log", params={"marker": marker})

    assert status == 204
    expected = json.dumps({"level": "INFO", "message": "handler line", "marker": marker})
    assert eventually(lambda: expected in api_server.stdout, what="the handler's line")


@pytest.mark.parametrize("action", ["raise", "crash", "malformed"])
def test_a_failing_handler_is_a_502_and_the_next_request_is_served(
    api_server: ApiServerProcess, action: str
) -> None:
    # When the handler raises, takes its process down, or answers no proxy response
    status, headers, body = api_server.call("GET", f"/test/{action}")

    # Then the gateway answers 502 as a problem, and nothing hangs
    assert status == 502
    assert headers["content-type"] == "application/problem+json"
    assert body["status"] == 502
    # And the function goes on serving
    assert api_server.call("GET", "/test/echo").status == 200


def test_a_handler_past_its_timeout_is_stopped_and_its_environment_replaced(
    api_server: ApiServerProcess,
) -> None:
    before = api_server.environments()

    status, _, body = api_server.call("GET", "/test/hang")

    assert status == 502
    assert body["status"] == 502
    # (the server's log and its process table are read as they come: on a loaded machine both
    # may trail the answer a little)
    eventually(
        lambda: any("Task timed out after 2.00 seconds" in line for line in api_server.stderr),
        what="the timeout's log line",
    )
    # The hung environment is gone: Lambda does not reuse an environment it timed out
    eventually(lambda: len(before - api_server.environments()) == 1, what="the hung environment to go")
    assert api_server.call("GET", "/test/echo").status == 200


def test_a_body_above_api_gateways_limit_is_refused_with_the_templates_answer(
    api_server: ApiServerProcess,
) -> None:
    status, headers, body = api_server.call("POST", "/test/echo", content=b"x" * (MAX_REQUEST_BYTES + 1))

    assert status == 413
    assert headers["content-type"] == "application/problem+json"
    assert body == {"status": 413, "code": "PAYLOAD_TOO_LARGE"}


def test_an_unknown_path_reaches_no_function(api_server: ApiServerProcess) -> None:
    # When a path no resource has is requested (the test template defines no 404 of its own)
    status, headers, body = api_server.call("GET", "/nowhere")

    # Then the gateway answers a 404 problem itself
    assert status == 404
    assert headers["content-type"] == "application/problem+json"
    assert body["code"] == "NOT_FOUND"


def test_stopping_the_server_stops_its_environments(tmp_path: Path) -> None:
    # Given a server with its warm environments
    server = start_api_server(tmp_path)
    environments = server.environments()
    assert len(environments) == CONCURRENCY

    # When it is stopped (SIGTERM to it alone)
    stop_api_server(server)

    # Then none of its environments is left
    assert server.process.returncode == 0
    eventually(lambda: not any(pid_alive(pid) for pid in environments), what="the environments to end")


def test_environments_end_by_themselves_when_their_server_is_killed(tmp_path: Path) -> None:
    # Given a server with its warm environments
    server = start_api_server(tmp_path)
    environments = server.environments()

    # When the server alone is killed, with no chance to stop them
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()

    # Then they notice and end
    eventually(
        lambda: not any(pid_alive(pid) for pid in environments), what="the orphaned environments to end"
    )
