"""Looking at the processes a test started, by pid (Linux /proc)."""

from __future__ import annotations

from pathlib import Path

from bench.procinfo import descendants


def alive(pid: int) -> bool:
    """Running or stopped, but not gone and not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def below(pid: int) -> dict[int, str]:
    """The processes below `pid` now, with their command lines."""
    found: dict[int, str] = {}
    for one in descendants(pid)[1:]:
        try:
            found[one] = Path(f"/proc/{one}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
    return found
