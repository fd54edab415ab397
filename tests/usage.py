"""Running a command's `main` on arguments argparse must refuse."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest


def usage_error(
    main: Callable[[Sequence[str]], Any], argv: Sequence[str], capsys: pytest.CaptureFixture[str]
) -> str:
    """What `main(argv)` printed on stderr when it exited with argparse's usage status (2)."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    return capsys.readouterr().err
