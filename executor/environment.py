"""What a job's process sees: a small environment (its working directory is in `workdirs`)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from contracts.base import ATTEMPT_VAR, COMPANY_VAR, JOB_ID_VAR
from contracts.messages import JobMessage

INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
"""The only variables a job inherits from its executor: enough to find programs
and format text, and nothing that leaks the executor's own credentials."""


def job_env(own: Mapping[str, str], message: JobMessage, attempt: int) -> dict[str, str]:
    """The executor's basics, then the message's env, then the job's identity
    (last, so a job can always rely on them to be idempotent; their names are
    refused in any env given, see contracts.base.RESERVED_ENV)."""
    env = {name: own[name] for name in INHERITED if name in own}
    env.setdefault("PATH", os.defpath)
    env.update(message.env)
    env.update({JOB_ID_VAR: message.job_id, ATTEMPT_VAR: str(attempt), COMPANY_VAR: message.company})
    return env
