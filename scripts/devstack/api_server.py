"""The local HTTP API: API Gateway's REST API in front of the real Lambda handlers
(docs/reference/local-stack.md#components).

    python scripts/devstack/api_server.py API_SPEC.json --host 127.0.0.1 --port 3000 [--concurrency 4]

The local stack writes the spec from the synthesized template (routes, functions, stage, gateway
responses: see ``api_gateway.py``). Each request is matched to its route, turned into the proxy
event API Gateway sends (payload format 1.0), and handed to the route's function; the function's
proxy response becomes the HTTP answer. No authorization locally.

Like Lambda, each function runs in execution environments that take one invocation at a time:
a pool of up to ``--concurrency`` worker processes per function, each of which imports the
handler once, with the function's environment (``execution_environment.py``). They are all
started, warm, before the server says it is listening; a request finding every environment busy
waits for one. A handler that raises, answers something that is not a proxy response, outlives
the function's timeout, or takes its process down, gets the gateway's 502 (504 past API
Gateway's 29 s); an environment that timed out or died is replaced, as Lambda replaces it. A
handler that fails to import fails each request (502) and is imported again on the next.

The handlers' own lines (their Powertools JSON) reach this process's stdout one line each,
unchanged; this server's lines, and the runtime's error reports, go to stderr. The local stack's
supervisor reads both and prefixes every line with ``api | ``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import IO, Any, BinaryIO

from devstack.api_gateway import (
    INTEGRATION_FAILURE,
    INTEGRATION_TIMEOUT,
    INTEGRATION_TIMEOUT_SECONDS,
    MAX_REQUEST_BYTES,
    REQUEST_TOO_LARGE,
    RESOURCE_NOT_FOUND,
    ApiSpec,
    HttpAnswer,
    HttpRequest,
    MalformedProxyResponse,
    MethodNotAllowed,
    RouteTable,
    gateway_answer,
    method_not_allowed,
    proxy_answer,
    proxy_event,
)
from devstack.serving import LINE_FORMAT, ConnectionTrackingServer, serve_until_signalled
from devstack.worker import FunctionSpec

log = logging.getLogger("devstack.api_server")

#: Logged (to stderr) once every environment is warm and requests are served.
READY_MARKER = "listening on http://"
DEFAULT_CONCURRENCY = 4
#: How long a warm-up may take to import a handler (a loaded machine starts many at once).
WARM_UP_SECONDS = 60.0
#: A body declared larger than API Gateway takes is still read (and dropped) up to this size, so
#: the client reads the 413 instead of a reset connection; beyond it the connection is closed.
DRAIN_LIMIT_BYTES = 4 * MAX_REQUEST_BYTES
ENVIRONMENT_SCRIPT = Path(__file__).with_name("execution_environment.py")


class LogRelay:
    """Writes whole lines to this process's stdout or stderr, from many threads and processes."""

    def __init__(self, stdout: BinaryIO, stderr: BinaryIO) -> None:
        self._targets = {id(stdout): threading.Lock(), id(stderr): threading.Lock()}
        self.stdout = stdout
        self.stderr = stderr

    def write(self, target: BinaryIO, line: bytes) -> None:
        with self._targets[id(target)]:
            target.write(line if line.endswith(b"\n") else line + b"\n")
            target.flush()

    def follow(self, stream: IO[bytes], target: BinaryIO) -> None:
        """Relay ``stream`` (a child's output) line by line until it ends."""

        def relay() -> None:
            with stream:
                for line in iter(stream.readline, b""):
                    with contextlib.suppress(ValueError, OSError):  # our own output closed: stopping
                        self.write(target, line)

        threading.Thread(target=relay, daemon=True).start()


class RelayHandler(logging.Handler):
    """This server's own log lines, through the relay, so they never cut into a handler's."""

    def __init__(self, relay: LogRelay) -> None:
        super().__init__()
        self._relay = relay

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._relay.write(self._relay.stderr, self.format(record).encode("utf-8", errors="replace"))
        except Exception:
            self.handleError(record)


# --- Execution environments -------------------------------------------------------------------


class InvocationFailed(Exception):
    """The function gave no usable answer; API Gateway answers with ``response_type``."""

    def __init__(self, response_type: str, reason: str) -> None:
        super().__init__(reason)
        self.response_type = response_type
        self.reason = reason


class _EnvironmentGone(Exception):
    pass


class _FunctionError(Exception):
    pass


class ExecutionEnvironment:
    """One worker process running one function's handler (``execution_environment.py``)."""

    def __init__(self, spec_file: Path, function: FunctionSpec, relay: LogRelay) -> None:
        self.function = function
        parent, child = socket.socketpair()
        try:
            self.process = subprocess.Popen(
                [sys.executable, str(ENVIRONMENT_SCRIPT), str(spec_file), function.name, str(child.fileno())],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        self._channel = parent
        self._reader = parent.makefile("rb")
        if self.process.stdout is None or self.process.stderr is None:
            raise RuntimeError("the API server was started without its output pipes")
        relay.follow(self.process.stdout, relay.stdout)
        relay.follow(self.process.stderr, relay.stderr)

    @property
    def pid(self) -> int:
        return self.process.pid

    def initialize(self, deadline: float) -> None:
        """Wait for the handler's import (the cold start). Raises :class:`InvocationFailed`."""
        try:
            reply = self._receive(deadline)
        except TimeoutError:
            raise InvocationFailed(INTEGRATION_TIMEOUT, "the handler did not load in time") from None
        except _EnvironmentGone as gone:
            raise InvocationFailed(
                INTEGRATION_FAILURE, f"the environment exited while loading ({gone})"
            ) from None
        if "init_error" in reply:
            raise InvocationFailed(INTEGRATION_FAILURE, f"the handler failed to load ({reply['init_error']})")

    def invoke(self, event: Mapping[str, Any], deadline: float) -> Any:
        """The handler's response. Raises ``TimeoutError``, :class:`_FunctionError` (the handler
        raised; the environment stays usable) or :class:`_EnvironmentGone`."""
        message = json.dumps({"event": event}, separators=(",", ":")).encode("utf-8") + b"\n"
        try:
            self._channel.settimeout(max(0.001, deadline - time.monotonic()))
            self._channel.sendall(message)
        except TimeoutError:
            raise
        except OSError:
            raise _EnvironmentGone(self._exit_description()) from None
        reply = self._receive(deadline)
        if "error" in reply:
            raise _FunctionError(str(reply["error"]))
        return reply["response"]

    def _receive(self, deadline: float) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        try:
            self._channel.settimeout(remaining)
            line = self._reader.readline()
        except TimeoutError:
            raise
        except OSError:
            line = b""
        if not line:
            raise _EnvironmentGone(self._exit_description())
        try:
            reply: dict[str, Any] = json.loads(line)
        except ValueError:
            raise _EnvironmentGone("an unreadable reply") from None
        return reply

    def _exit_description(self) -> str:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=2)
        code = self.process.returncode
        return "still running" if code is None else f"exit code {code}"

    def close(self) -> None:
        """End the process (Lambda does not wait for an environment it gives up on)."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait()
        self._reader.close()
        self._channel.close()


class FunctionPool:
    """Up to ``size`` execution environments of one function, each serving one request at a time."""

    def __init__(self, function: FunctionSpec, size: int, start: Callable[[], ExecutionEnvironment]) -> None:
        self.function = function
        self.size = size
        self._start = start
        self._free = threading.Semaphore(size)
        self._idle: list[ExecutionEnvironment] = []
        self._live: set[ExecutionEnvironment] = set()
        self._lock = threading.Lock()
        self._closed = False

    def warm_up(self, timeout: float = WARM_UP_SECONDS) -> None:
        """Start every environment and wait for their handlers to load (failures are logged: a
        request then tries a cold start of its own)."""
        environments = []
        deadline = time.monotonic() + timeout
        for _ in range(self.size):
            try:
                environments.append(self._started())
            except InvocationFailed as failure:
                log.warning("%s: %s", self.function.name, failure.reason)
                break
        for environment in environments:
            try:
                environment.initialize(deadline)
            except InvocationFailed as failure:
                log.warning("%s: an environment could not start: %s", self.function.name, failure.reason)
                self._discard(environment)
            else:
                self._give_back(environment)

    def invoke(self, event: Mapping[str, Any], deadline: float) -> Any:
        """The function's response to ``event``; raises :class:`InvocationFailed`."""
        if not self._free.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise InvocationFailed(INTEGRATION_TIMEOUT, "no execution environment became free in time")
        try:
            environment = self._take_idle()
            if environment is None:  # a cold start: the first use, or one after a crash
                environment = self._started()
                try:
                    environment.initialize(deadline)
                except InvocationFailed:
                    self._discard(environment)
                    raise
            return self._invoke_on(environment, event, deadline)
        finally:
            self._free.release()

    def _invoke_on(self, environment: ExecutionEnvironment, event: Mapping[str, Any], deadline: float) -> Any:
        function_deadline = time.monotonic() + self.function.timeout_seconds
        try:
            response = environment.invoke(event, min(function_deadline, deadline))
        except _FunctionError as error:
            self._give_back(environment)  # Lambda keeps an environment whose handler raised
            raise InvocationFailed(INTEGRATION_FAILURE, f"the handler raised {error}") from None
        except TimeoutError:
            self._discard(environment)
            if function_deadline <= deadline:
                timeout = self.function.timeout_seconds
                raise InvocationFailed(
                    INTEGRATION_FAILURE, f"Task timed out after {timeout:.2f} seconds"
                ) from None
            raise InvocationFailed(INTEGRATION_TIMEOUT, "API Gateway's integration timeout passed") from None
        except _EnvironmentGone as gone:
            self._discard(environment)
            raise InvocationFailed(INTEGRATION_FAILURE, f"the environment died ({gone})") from None
        self._give_back(environment)
        return response

    def _started(self) -> ExecutionEnvironment:
        try:
            environment = self._start()
        except OSError as error:
            raise InvocationFailed(INTEGRATION_FAILURE, f"no environment could start ({error})") from None
        with self._lock:
            self._live.add(environment)
            closed = self._closed
        if closed:
            self._discard(environment)
            raise InvocationFailed(INTEGRATION_FAILURE, "the server is stopping")
        return environment

    def _take_idle(self) -> ExecutionEnvironment | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _give_back(self, environment: ExecutionEnvironment) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(environment)
                return
        self._discard(environment)

    def _discard(self, environment: ExecutionEnvironment) -> None:
        with self._lock:
            self._live.discard(environment)
        environment.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            environments = list(self._live)
            self._idle.clear()
        for environment in environments:
            self._discard(environment)


# --- The gateway ------------------------------------------------------------------------------


class LocalApiGateway:
    """Routes a request, invokes its function, and says what to answer."""

    def __init__(self, spec: ApiSpec, pools: Mapping[str, FunctionPool]) -> None:
        self.spec = spec
        self.routes = RouteTable(spec.routes)
        self.pools = pools

    def answer(self, request: HttpRequest, started: float) -> HttpAnswer:
        resolved = self.routes.resolve(request.method, request.path)
        if resolved is None:
            log.info("%s (no route) -> 404", request.method)
            return gateway_answer(self.spec, RESOURCE_NOT_FOUND, request.request_id)
        if isinstance(resolved, MethodNotAllowed):
            log.info("%s (not a method of this path) -> 405", request.method)
            return method_not_allowed(resolved.allowed)
        route = resolved.route
        try:
            response = self.pools[route.function].invoke(
                proxy_event(self.spec, resolved, request), started + INTEGRATION_TIMEOUT_SECONDS
            )
            answer = proxy_answer(response)
        except InvocationFailed as failure:
            log.warning("%s %s: %s", request.method, route.resource_path, failure.reason)
            answer = gateway_answer(self.spec, failure.response_type, request.request_id)
        except MalformedProxyResponse as malformed:
            log.warning(
                "%s %s: malformed Lambda proxy response: %s", request.method, route.resource_path, malformed
            )
            answer = gateway_answer(self.spec, INTEGRATION_FAILURE, request.request_id)
        # The route's template, never the path's values or the query
        # (docs/reference/http-api.md#personal-data).
        elapsed_ms = (time.monotonic() - started) * 1000
        log.info(
            "%s %s -> %d (%s, %.0f ms)",
            request.method,
            route.resource_path,
            answer.status,
            route.function,
            elapsed_ms,
        )
        return answer

    def too_large(self, request_id: str) -> HttpAnswer:
        log.info("request body above %d bytes -> 413", MAX_REQUEST_BYTES)
        return gateway_answer(self.spec, REQUEST_TOO_LARGE, request_id)


def _header_safe(value: str) -> str:
    # Header values are latin-1 on the wire, and a line break would start a header of its own.
    return value.replace("\r", " ").replace("\n", " ").encode("latin-1", errors="replace").decode("latin-1")


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the booking app pools its connections
    server: _Server
    timeout = 120  # an idle keep-alive connection gives its thread back eventually

    def _serve(self) -> None:
        started = time.monotonic()
        received_at = datetime.now(UTC)
        request_id = str(uuid.uuid4())
        gateway = self.server.gateway
        body = self._read_body()
        if body is None:
            self._send(gateway.too_large(request_id), request_id)
            return
        path, _, query = self.path.partition("?")
        request = HttpRequest(
            method=self.command,
            path=path,
            query=query,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            received_at=received_at,
            request_id=request_id,
        )
        self._send(gateway.answer(request, started), request_id)

    do_DELETE = do_GET = do_HEAD = do_OPTIONS = do_PATCH = do_POST = do_PUT = _serve

    def __getattr__(self, name: str) -> Any:
        # Any other method (TRACE, or one made up) is the gateway's to answer too, never
        # http.server's 501: a client's request never gets a 5xx (docs/reference/http-api.md#server-errors).
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def handle_expect_100(self) -> bool:
        # Refuse a body too large before the client sends it.
        if self._declared_length() > MAX_REQUEST_BYTES:
            request_id = str(uuid.uuid4())
            self.close_connection = True
            self._send(self.server.gateway.too_large(request_id), request_id)
            return False
        return super().handle_expect_100()

    def _declared_length(self) -> int:
        try:
            return max(0, int(self.headers.get("Content-Length") or 0))
        except ValueError:
            return 0

    def _read_body(self) -> bytes | None:
        """The request body; ``None`` when it is larger than API Gateway takes (the connection is
        then closed, unless the body could be read and dropped)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = self._declared_length()
        if length > MAX_REQUEST_BYTES:
            if length > DRAIN_LIMIT_BYTES:
                self.close_connection = True
                return None
            remaining = length
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                remaining -= len(chunk)
            return None
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes | None:
        body = bytearray()
        while True:
            size = int(self.rfile.readline(1024).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(body)
            if len(body) + size > MAX_REQUEST_BYTES:
                self.close_connection = True  # the rest is left unread
                return None
            body += self.rfile.read(size)
            self.rfile.readline(1024)

    def _send(self, answer: HttpAnswer, request_id: str) -> None:
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(_header_safe(name), _header_safe(value))
        self.send_header("x-amzn-RequestId", request_id)
        self.send_header("Content-Length", str(len(answer.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    def log_message(self, format: str, *args: Any) -> None:
        # The default line names the client and the full path; the gateway logs its own.
        return


class _Server(ConnectionTrackingServer):
    request_queue_size = 128  # the booking app sends requests in parallel

    def __init__(self, address: tuple[str, int], gateway: LocalApiGateway) -> None:
        super().__init__(address, _RequestHandler)
        self.gateway = gateway


class ApiServer:
    """The local API as an object: ``start()`` listens, warms every function, then serves."""

    def __init__(
        self,
        spec: ApiSpec,
        spec_file: Path,
        *,
        relay: LogRelay,
        host: str = "127.0.0.1",
        port: int = 0,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self.host = host
        self.port = port
        self.pools = {
            name: FunctionPool(
                function,
                concurrency,
                functools.partial(ExecutionEnvironment, spec_file, function, relay),
            )
            for name, function in spec.functions.items()
        }
        self.gateway = LocalApiGateway(spec, self.pools)
        self._server: _Server | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ApiServer:
        # The port first: a port in use fails at once, before any environment starts.
        self._server = _Server((self.host, self.port), self.gateway)
        self.port = self._server.server_address[1]
        warm_ups = [threading.Thread(target=pool.warm_up, daemon=True) for pool in self.pools.values()]
        for thread in warm_ups:
            thread.start()
        for thread in warm_ups:
            thread.join()
        self._server.serve_in_background("api")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        for pool in self.pools.values():
            pool.close()


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description="The local API: API Gateway in front of the real handlers.")
    parser.add_argument("spec", type=Path, help="the API spec the local stack wrote")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument(
        "--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="execution environments per function"
    )
    args = parser.parse_args(argv)

    relay = LogRelay(sys.stdout.buffer, sys.stderr.buffer)
    handler = RelayHandler(relay)
    handler.setFormatter(logging.Formatter(LINE_FORMAT))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False

    spec = ApiSpec.from_json(args.spec.read_text(encoding="utf-8"))
    server = ApiServer(
        spec,
        args.spec.resolve(),
        relay=relay,
        host=args.host,
        port=args.port,
        concurrency=max(1, args.concurrency),
    )
    try:
        server.start()
    except OSError as error:
        log.error("cannot listen on %s:%d: %s", args.host, args.port, error.strerror or error)
        server.stop()
        return 1
    return serve_until_signalled(server, log, server.url)


if __name__ == "__main__":
    sys.exit(main())
