"""Where the operator scripts find the stack's resources: the local stack, or a deployed one.

Locally, ``make run`` describes the stack in ``stack.json`` (``aws_endpoint_url``, ``region``
and the resources' names), and clients point at its moto server with dummy credentials. In AWS,
a resource the operator did not name comes from the stack's outputs (CloudFormation
``DescribeStacks``), read with the usual AWS environment's credentials and region.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from booking_durability.adapters import aws
from booking_durability.adapters.aws import error_code

T = TypeVar("T")

# moto takes any credentials; explicit dummies keep real ones out of a local run.
_MOTO_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


class StackNotFound(Exception):
    """The stack, or what was looked for in it, could not be found; the message says where."""


def local_stack(stack_file: Path, service: str, pick: Callable[[Mapping[str, Any]], T]) -> tuple[T, Any]:
    """What ``pick`` reads from the local stack's ``stack_file``, and a ``service`` client on its
    moto server. A missing or unreadable file, or ``pick`` not finding its keys, is ``StackNotFound``."""
    try:
        stack = json.loads(stack_file.read_text(encoding="utf-8"))
        endpoint, region = stack["aws_endpoint_url"], stack["region"]
        picked = pick(stack)
    except (OSError, ValueError, KeyError, TypeError):
        raise StackNotFound(f"no local stack at {stack_file}: start it with `make run`") from None
    session = boto3.session.Session(**_MOTO_CREDENTIALS, region_name=region)
    return picked, session.client(service, endpoint_url=endpoint)


def stack_outputs(stack_name: str, *keys: str) -> list[str]:
    """The values of the deployed stack's outputs ``keys``, in that order."""
    try:
        stacks = aws.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except (ClientError, BotoCoreError) as exc:
        raise StackNotFound(f"stack {stack_name} could not be read ({error_code(exc)})") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for s in stacks for o in s.get("Outputs", [])}
    missing = [key for key in keys if key not in outputs]
    if missing:
        raise StackNotFound(f"stack {stack_name} has no {' or '.join(missing)} output")
    return [str(outputs[key]) for key in keys]
