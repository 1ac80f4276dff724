"""Decodes the error details in `buf curl`'s error output, which shows them as base64.

`buf curl` does not decode details (not even with their schema given by --schema), so pipe its
error output through this: every google.rpc detail gets a "decoded" field beside its "value".

    node_modules/.bin/buf curl ... 2>&1 | .venv/bin/python scripts/error_details.py
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys

from google.protobuf import json_format, symbol_database
from google.rpc import error_details_pb2  # noqa: F401  (registers the google.rpc detail types)


def decode(detail: dict) -> dict:
    message_class = symbol_database.Default().GetSymbol(detail["type"])
    value = detail["value"].replace("-", "+").replace("_", "/")  # either base64 alphabet
    raw = base64.b64decode(value + "=" * (-len(value) % 4))
    return json_format.MessageToDict(message_class.FromString(raw))


def main() -> int:
    text = sys.stdin.read()
    start = text.find("{")
    try:
        error, _ = json.JSONDecoder().raw_decode(text[start:]) if start >= 0 else ({}, 0)
    except json.JSONDecodeError:
        error = {}
    if "details" not in error:
        sys.stdout.write(text)  # a success, or not buf curl's error: pass it on unchanged
        return 0
    for detail in error["details"]:
        with contextlib.suppress(KeyError):  # not a google.rpc type: left as base64
            detail["decoded"] = decode(detail)
    print(json.dumps(error, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
