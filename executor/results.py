"""Results a job publishes: a JSON object written to the file `JETJOBS_RESULT_FILE` names.

The file is read only when it is a regular file, opened without following a link
or waiting on a FIFO, and never past the size limit (`jobfiles`): whatever the
job left there, the executor goes on and the job gets its outcome."""

from __future__ import annotations

import json
import os

from contracts.flows import RESULT_FILE_VAR

from . import jobfiles

RESULT_NAME = ".jetjobs-result.json"
MAX_BYTES = 64 * 1024
"""Results travel in the result event: keep them small."""
MAX_KEYS = 100


def with_result_file(env: dict[str, str], cwd: str) -> dict[str, str]:
    """The job's environment with the path of its results file."""
    return {**env, RESULT_FILE_VAR: os.path.join(cwd, RESULT_NAME)}


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _content(cwd: str) -> bytes | dict[str, str]:
    """The file's bytes, or the results that say why there are none."""
    try:
        fd = jobfiles.open_file(os.path.join(cwd, RESULT_NAME))
    except FileNotFoundError:
        return {}
    except jobfiles.NotRegular as wrong:
        return {"error": f"results file is not a regular file ({wrong.kind}): ignored"}
    except OSError as error:
        return {"error": f"results file cannot be read: {error.strerror or error}: ignored"}
    try:
        content = jobfiles.read_at_most(fd, MAX_BYTES)
    except OSError as error:
        return {"error": f"results file cannot be read: {error.strerror or error}: ignored"}
    finally:
        os.close(fd)
    if len(content) > MAX_BYTES:
        return {"error": f"results file larger than {MAX_BYTES} bytes: ignored"}
    return content


def read_results(cwd: str) -> dict[str, str]:
    """The key-value results the job left, values as text; nothing when it wrote
    none, and an `error` saying why when it left something that is not a small
    JSON object in a regular file."""
    content = _content(cwd)
    if isinstance(content, dict):
        return content
    try:
        data = json.loads(content)
    except ValueError as error:
        return {"error": f"results file is not JSON: {error}"[:200]}
    except RecursionError:
        return {"error": "results file nests deeper than JSON can be read here: ignored"}
    if not isinstance(data, dict):
        return {"error": "results file must hold a JSON object"}
    return {str(k): _text(v) for k, v in list(data.items())[:MAX_KEYS]}
