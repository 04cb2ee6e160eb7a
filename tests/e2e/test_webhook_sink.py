"""The local webhook sink (docs/reference/local-stack.md#webhook-sink): one JSON line per request, written
before it answers 2xx."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.webhook_sink import WebhookSink

pytestmark = pytest.mark.e2e


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_each_request_is_one_line_with_its_path_lower_case_headers_and_raw_body(tmp_path: Path) -> None:
    webhooks = tmp_path / "webhooks.jsonl"
    body = '{"type": "policy_drift.recovered",  "venue_id": "añejo"}'  # as sent: spacing, UTF-8
    with WebhookSink(webhooks) as sink:
        # When a notifier posts a signed event
        response = httpx.post(
            f"{sink.url}/webhooks/policy-drift?attempt=1",
            content=body.encode("utf-8"),
            headers={"Content-Type": "application/json", "Webhook-Id": "msg_1", "webhook-signature": "v1,x"},
        )
        # Then it is accepted, and the line is there as soon as the answer is
        assert response.status_code // 100 == 2
        [line] = lines(webhooks)

    assert line["path"] == "/webhooks/policy-drift?attempt=1"
    assert line["body"] == body
    assert line["headers"]["webhook-id"] == "msg_1"
    assert line["headers"]["content-type"] == "application/json"
    assert all(name == name.lower() for name in line["headers"])
    assert line["received_at"].endswith("Z")


def test_a_restarted_sink_appends_to_the_runs_file(tmp_path: Path) -> None:
    # Given a sink that received a webhook, then stopped
    webhooks = tmp_path / "webhooks.jsonl"
    with WebhookSink(webhooks) as sink:
        httpx.post(f"{sink.url}/hook", content=b"first")
    # When another starts on the same file and receives one
    with WebhookSink(webhooks) as sink:
        httpx.post(f"{sink.url}/hook", content=b"second")

    # Then the file holds both, in order
    assert [line["body"] for line in lines(webhooks)] == ["first", "second"]


def test_while_the_down_file_exists_every_request_is_answered_503_and_kept_nowhere(tmp_path: Path) -> None:
    webhooks = tmp_path / "webhooks.jsonl"
    down = tmp_path / "webhook-down"  # the default: beside the webhooks file, as .local/webhook-down
    with WebhookSink(webhooks) as sink:
        assert httpx.post(f"{sink.url}/hook", content=b"before").status_code == 204
        # When the receiver is taken down
        down.touch()
        answers = [httpx.post(f"{sink.url}/hook", content=b"during").status_code for _ in range(3)]
        # Then every request is refused as by a receiver that is down, and none is recorded
        assert answers == [503, 503, 503]
        assert [line["body"] for line in lines(webhooks)] == ["before"]
        # And when it is brought back, without a restart, requests land again
        down.unlink()
        assert httpx.post(f"{sink.url}/hook", content=b"after").status_code == 204
    assert [line["body"] for line in lines(webhooks)] == ["before", "after"]


def test_the_down_file_can_be_named(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "receiver-down"
    elsewhere.parent.mkdir()
    elsewhere.touch()
    with WebhookSink(tmp_path / "webhooks.jsonl", down_file=elsewhere) as sink:
        assert httpx.post(f"{sink.url}/hook", content=b"x").status_code == 503
        (tmp_path / "webhook-down").touch()  # the default name, ignored when another is named
        elsewhere.unlink()
        assert httpx.post(f"{sink.url}/hook", content=b"x").status_code == 204
