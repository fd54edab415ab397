"""An application's command line: `cmdparams` split into words as a shell would,
with `{VAR}` / `${VAR}` placeholders for values from the job's environment."""

from __future__ import annotations

import re
import shlex

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


class CommandLineError(ValueError):
    """`cmdparams` cannot be split into words; the message says why and how to fix it."""


def words(cmdparams: str) -> list[str]:
    """The words of `cmdparams`, quotes removed; no shell ever sees them."""
    try:
        return shlex.split(cmdparams)
    except ValueError as error:
        raise CommandLineError(
            f"cmdparams {cmdparams!r} cannot be split into words ({str(error).lower()}): "
            "balance its quotes, or escape a literal quote with a backslash"
        ) from None


def placeholders(cmdparams: str) -> list[str]:
    """The variables `cmdparams` names, in order, each once."""
    names = (m.group(1) or m.group(2) for m in PLACEHOLDER.finditer(cmdparams))
    return list(dict.fromkeys(names))
