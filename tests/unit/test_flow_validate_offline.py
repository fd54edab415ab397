"""`flow validate --offline` says what it did not check: the store's part."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_cli_offline import FLOW, jetjobs


def test_an_offline_check_says_applications_and_templates_were_not_checked(tmp_path: Path) -> None:
    path = tmp_path / "nightly.yaml"
    path.write_text(FLOW)
    done = jetjobs("flow", "validate", "--offline", str(path))
    assert done.returncode == 0, done
    assert done.stdout.splitlines()[0] == (
        "flow nightly: 2 nodes, no cycles, conditions parse "
        "(applications and templates are not checked offline)"
    )
