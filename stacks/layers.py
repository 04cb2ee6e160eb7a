"""The Lambda layers every function of the service shares."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Both built by scripts/build_layer.py (app.py runs it before synthesizing), with bytecode for
#: the runtime's CPython.
DEPENDENCIES_LAYER_DIR = REPO_ROOT / ".build" / "layers" / "dependencies"
#: The domain package: layers/booking_durability/python/booking_durability, staged here with its
#: bytecode -> /opt/python.
DOMAIN_LAYER_DIR = REPO_ROOT / ".build" / "layers" / "domain"


class SharedLayers(Construct):
    """Third-party dependencies and the ``booking_durability`` domain package, as two layers.

    Two layers, because they change at different paces: a domain code change uploads the small
    domain layer only.
    """

    def __init__(self, scope: Construct, construct_id: str, *, runtime: lambda_.Runtime) -> None:
        super().__init__(scope, construct_id)
        for built in (DEPENDENCIES_LAYER_DIR, DOMAIN_LAYER_DIR):
            if not (built / "python").is_dir():
                raise FileNotFoundError(f"{built} is missing: run `.venv/bin/python scripts/build_layer.py`")
        self.dependencies = lambda_.LayerVersion(
            self,
            "Dependencies",
            code=lambda_.Code.from_asset(str(DEPENDENCIES_LAYER_DIR)),
            description="Third-party packages of booking_durability (arm64 wheels)",
            compatible_runtimes=[runtime],
            compatible_architectures=[lambda_.Architecture.ARM_64],
        )
        self.domain = lambda_.LayerVersion(
            self,
            "Domain",
            code=lambda_.Code.from_asset(str(DOMAIN_LAYER_DIR)),
            description="booking_durability domain package",
            compatible_runtimes=[runtime],
            compatible_architectures=[lambda_.Architecture.ARM_64],
        )

    @property
    def all(self) -> list[lambda_.ILayerVersion]:
        return [self.dependencies, self.domain]
