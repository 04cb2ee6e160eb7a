"""Write the committed documents generated from the code: the JSON Schemas of the queue message,
the drift webhook's body and a hold export line (schemas/), and the HTTP API's OpenAPI document
(openapi.json).

.venv/bin/python scripts/generate_schemas.py          # rewrite schemas/
.venv/bin/python scripts/generate_schemas.py --check  # exit 1 when schemas/ is stale
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from booking_durability.api.service import openapi_document
from booking_durability.drift_events import drift_event_json_schema
from booking_durability.emails.models import job_json_schema
from operations.migration import import_line_json_schema

ROOT = Path(__file__).resolve().parent.parent

SCHEMA_FILES = {
    ROOT / "schemas" / "booking-email-v1.json": job_json_schema,
    ROOT / "schemas" / "policy-drift-webhook-v1.json": drift_event_json_schema,
    ROOT / "schemas" / "hold-import-line-v1.json": import_line_json_schema,
    ROOT / "openapi.json": openapi_document,
}


def rendered(build) -> str:  # type: ignore[no-untyped-def]
    return json.dumps(build(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None, files: dict[Path, Any] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail instead of writing when a file is stale")
    args = parser.parse_args(argv)
    stale = []
    for path, build in (files or SCHEMA_FILES).items():
        text = rendered(build)
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'}: {path}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    raise SystemExit(main())
