"""Ajv, as the booking app runs it, from pytest: JSON Schema 2020-12 in strict mode with
ajv-formats (``date-time``, ``email``, ``uuid``... checked as Ajv checks them), and nothing else
added, so a schema that needs an extra keyword or a looser mode fails to load here as it would
there.

One ``node`` process serves a test session: each call writes one JSON line (the schema's path and
the instance) and reads one verdict back, so property tests can ask it thousands of times.
Node and Ajv come from ``make install`` (the TypeScript client's dependencies).
"""

from __future__ import annotations

import atexit
import functools
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

_SERVER = r"""
const { Ajv2020 } = require("ajv/dist/2020.js");
const addFormats = require("ajv-formats");
const { readFileSync } = require("node:fs");
const readline = require("node:readline");

const validators = new Map();
function validator(path) {
  if (!validators.has(path)) {
    const ajv = new Ajv2020({ strict: true, allErrors: true });
    addFormats(ajv);
    validators.set(path, ajv.compile(JSON.parse(readFileSync(path, "utf8"))));
  }
  return validators.get(path);
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  let answer;
  try {
    const { schema, instance } = JSON.parse(line);
    const validate = validator(schema);
    const valid = validate(instance);
    const errors = (validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.keyword}`);
    answer = { valid, errors };
  } catch (error) {
    answer = { refusedToLoad: String(error && error.message) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
});
"""


class SchemaNotLoaded(AssertionError):
    """Ajv's strict mode refused the schema itself."""


@dataclass(frozen=True)
class Verdict:
    valid: bool
    errors: tuple[str, ...]  # "<instance path> <keyword>" of each error, never a value


class Ajv:
    def __init__(self) -> None:
        self._process = subprocess.Popen(
            ["node", "-e", _SERVER],
            cwd=ROOT,  # node_modules/ajv and ajv-formats
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="surrogatepass",
        )
        atexit.register(self.close)

    def validate(self, schema: Path, instance: Any) -> Verdict:
        """Ajv's verdict on ``instance`` (any JSON value, lone surrogates included)."""
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        # ASCII, lone surrogates as \uXXXX escapes; never NaN, which is no JSON
        line = json.dumps({"schema": str(schema), "instance": instance}, allow_nan=False)
        self._process.stdin.write(line + "\n")
        self._process.stdin.flush()
        answer = json.loads(self._process.stdout.readline())
        if "refusedToLoad" in answer:
            raise SchemaNotLoaded(f"Ajv 2020 (strict) refused {schema.name}: {answer['refusedToLoad']}")
        return Verdict(answer["valid"], tuple(answer["errors"]))

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.stdin.close()  # type: ignore[union-attr]
            self._process.wait(timeout=10)


@functools.cache
def ajv() -> Ajv:
    """The session's Ajv."""
    return Ajv()
