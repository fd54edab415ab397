"""Results a job publishes: a JSON object written to the file `JETJOBS_RESULT_FILE` names."""

from __future__ import annotations

import json
import os

from contracts.flows import RESULT_FILE_VAR

RESULT_NAME = ".jetjobs-result.json"
MAX_BYTES = 64 * 1024
"""Results travel in the result event: keep them small."""
MAX_KEYS = 100


def with_result_file(env: dict[str, str], cwd: str) -> dict[str, str]:
    """The job's environment with the path of its results file."""
    return {**env, RESULT_FILE_VAR: os.path.join(cwd, RESULT_NAME)}


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def read_results(cwd: str) -> dict[str, str]:
    """The key-value results the job left, values as text; nothing when it wrote
    none or wrote something that is not a small JSON object."""
    path = os.path.join(cwd, RESULT_NAME)
    try:
        if os.path.getsize(path) > MAX_BYTES:
            return {"error": f"results file larger than {MAX_BYTES} bytes: ignored"}
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        return {"error": f"results file is not JSON: {error}"[:200]}
    if not isinstance(data, dict):
        return {"error": "results file must hold a JSON object"}
    return {str(k): _text(v) for k, v in list(data.items())[:MAX_KEYS]}
