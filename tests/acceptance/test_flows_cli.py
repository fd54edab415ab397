"""`jetjobs flow …` against a running system: validate, run --wait, show, list, retry, cancel."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.cli import Result, clean_env, jetjobs
from tests.stack import Stack, running_stack

FLOW = """
name: nightly
company: acme
env_vars:
  GREETING: hello
nodes:
  - name: fetch
    app: "APP"
    env:
      SCRIPT: >-
        echo '{"rows": "7"}' > "$JETJOBS_RESULT_FILE"
  - name: load
    app: "APP"
    env:
      SCRIPT: >-
        test "$JETJOBS_RESULT_FETCH_ROWS" = 7 && echo "$GREETING"
    depends: [fetch]
  - name: alert
    app: "APP"
    env:
      SCRIPT: "true"
    depends:
      - node: load
        on: failure
"""


@pytest.fixture
async def stack(nats_url: str, database_url: str):  # type: ignore[no-untyped-def]
    async with running_stack(nats_url, database_url, scheduler=False) as running:
        await running.company("acme")
        yield running


def one_line_error(result: Result, expected: str) -> None:
    assert result.code == 1, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert expected in lines[0], lines[0]


async def test_a_flow_file_runs_and_is_shown_as_a_dag(stack: Stack, tmp_path: Path) -> None:
    app = await stack.app("-c ${SCRIPT}")
    path = tmp_path / "nightly.yaml"
    path.write_text(FLOW.replace("APP", app.app.uuid))
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)

    checked = await jetjobs("flow", "validate", str(path), env=env)
    assert checked.code == 0, checked
    assert "runs fetch → load → alert" in checked.out

    ran = await jetjobs("flow", "run", str(path), "--wait", env=env)
    assert ran.code == 0, ran
    assert "finished" in ran.out.splitlines()[0]
    assert "✔ load  ← fetch  [succeeded/processed]" in ran.out
    assert "- alert  ← load (failure)  [skipped]" in ran.out
    assert "rows=7" in ran.out

    again = await jetjobs("flow", "run", "acme/nightly", "--wait", "--key", "night-7", env=env)
    assert again.code == 0, again
    run_id = again.out.split("run ", 1)[1].split()[0]
    resent = await jetjobs("flow", "run", "acme/nightly", "--key", "night-7", env=env)
    assert (
        resent.out.strip()
        == f"flow nightly: run {run_id} was started before with key 'night-7': not started again"
    )
    listed = await jetjobs("flow", "list", "--company", "acme", env=env)
    assert listed.out.count("nightly") == 2
    shown = await jetjobs("flow", "show", run_id, env=env)
    assert shown.out == again.out
    retry = await jetjobs("flow", "retry", run_id, env=env)
    one_line_error(retry, "is finished: only an ended run with failures can be retried")


async def test_bad_flow_files_are_refused_naming_the_node(stack: Stack, tmp_path: Path) -> None:
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    cycle = tmp_path / "cycle.yaml"
    cycle.write_text(
        "name: c\ncompany: acme\nnodes:\n"
        "  - {name: a, app: '1', depends: [b]}\n  - {name: b, app: '1', depends: [a]}\n"
    )
    one_line_error(
        await jetjobs("flow", "run", str(cycle), env=env), "node 'a' depends on itself: cycle a -> b -> a"
    )
    unknown = tmp_path / "unknown.json"
    unknown.write_text(
        '{"name": "u", "company": "acme", "nodes": [{"name": "a", "app": "1", "depends": ["zz"]}]}'
    )
    one_line_error(
        await jetjobs("flow", "validate", str(unknown), env=env), "node 'a' depends on unknown node 'zz'"
    )
    bad_app = tmp_path / "app.yaml"
    bad_app.write_text("name: x\ncompany: acme\nnodes: [{name: a, app: '424242'}]\n")
    one_line_error(
        await jetjobs("flow", "validate", str(bad_app), env=env), "node 'a': unknown application '424242'"
    )
    bad_when = tmp_path / "when.yaml"
    bad_when.write_text(
        "name: w\ncompany: acme\nnodes:\n  - {name: a, app: '1'}\n"
        "  - {name: b, app: '1', depends: [{node: a, when: 'a.x = 1'}]}\n"
    )
    one_line_error(
        await jetjobs("flow", "validate", str(bad_when), "--offline", env=env), "node 'b': bad condition"
    )
    assert await stack.jobs(company="acme") == []


async def test_a_broken_yaml_file_is_one_clear_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nnodes:\n  - {name: a\n")
    result = await jetjobs("flow", "validate", str(broken), "--offline", env=clean_env())
    one_line_error(result, "not valid YAML: line")


async def test_a_saved_flow_is_what_a_flow_template_runs(stack: Stack, tmp_path: Path) -> None:
    app = await stack.app("-c ${SCRIPT}")
    path = tmp_path / "nightly.yaml"
    path.write_text(FLOW.replace("APP", app.app.uuid))
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    create = ("template", "create", "--name", "nightly-flow", "--company", "acme", "--interval", "d")

    missing = await jetjobs(*create, "--flow", "nightly", env=env)
    one_line_error(
        missing, "no flow 'nightly' in company 'acme': save it first with `jetjobs flow save FILE`"
    )
    saved = await jetjobs("flow", "save", str(path), env=env)
    assert saved.code == 0 and "saved flow acme/nightly" in saved.out, saved
    created = await jetjobs(*create, "--flow", "nightly", env=env)
    assert created.code == 0, created
    listed = await jetjobs("template", "list", env=env)
    assert "flow nightly" in listed.out, listed
    both = await jetjobs(*create, "--flow", "nightly", "--app", app.app.uuid, env=env)
    assert both.code == 2 and "not allowed with argument" in both.err, both
    run_now = await jetjobs("job", "run", "1", env=env)
    one_line_error(run_now, "template 1 runs flow 'nightly', not a job")


MANY_MISTAKES = """
name: many
company: acme
nodes:
  - {name: a, app: '1', depends: [b]}
  - {name: b, app: '1', depends: [a]}
  - {name: c, app: '1', depends: [ghost]}
  - {name: d}
  - {name: e, app: '1', depends: [{node: c, when: 'c.x ='}]}
  - {name: f, app: '1', depends: [{node: c, when: 'a.x == 1'}]}
  - {name: g-h, app: '1'}
  - {name: g_h, app: '1'}
"""


async def test_every_mistake_of_a_flow_file_is_reported_at_once(stack: Stack, tmp_path: Path) -> None:
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    path = tmp_path / "many.yaml"
    path.write_text(MANY_MISTAKES)
    expected = [
        f"jetjobs: error: {path}: 6 problems:",
        "  nodes.3: node 'd': give exactly one of `app` or `template`",
        "  node 'a' depends on itself: cycle a -> b -> a",
        "  node 'c' depends on unknown node 'ghost'",
        "  node 'e': bad condition 'c.x =': ",
        "  node 'f': condition 'a.x == 1' reads node 'a', which is not one of its prerequisites",
        "  nodes 'g-h' and 'g_h' would both pass their results as JETJOBS_RESULT_G_H_<KEY>: rename one of them",
    ]
    for args in (("--offline",), ()):
        result = await jetjobs("flow", "validate", str(path), *args, env=env)
        assert result.code == 1, result
        lines = result.err.rstrip("\n").splitlines()
        assert len(lines) == len(expected), result.err
        assert all(line.startswith(start) for line, start in zip(lines, expected, strict=True)), result.err

    await stack.company("other")
    app = await stack.app("-c true")
    foreign = await stack.template(name="theirs", app=app.app.uuid, company="other")
    path.write_text(
        "name: many\ncompany: acme\nnodes:\n"
        "  - {name: a-b, app: '424242'}\n"
        f"  - {{name: a_b, app: '{app.app.uuid}'}}\n"
        f"  - {{name: t, template: {foreign.id}, depends: [a-b]}}\n"
        "  - {name: z, app: '434343', depends: [t]}\n"
    )
    result = await jetjobs("flow", "validate", str(path), env=env)
    assert result.code == 1, result
    assert result.err.splitlines() == [
        f"jetjobs: error: {path}: 4 problems:",
        "  nodes 'a-b' and 'a_b' would both pass their results as JETJOBS_RESULT_A_B_<KEY>: rename one of them",
        "  node 'a-b': unknown application '424242': import it with `jetjobs app import FILE`",
        f"  node 't': no template {foreign.id} in company 'acme': a flow runs its own company's "
        "templates (`jetjobs template list --company acme`)",
        "  node 'z': unknown application '434343': import it with `jetjobs app import FILE`",
    ], result.err
    offline = await jetjobs("flow", "validate", str(path), "--offline", env=env)
    one_line_error(offline, "nodes 'a-b' and 'a_b' would both pass their results")
    run = await jetjobs("flow", "run", str(path), env=env)
    assert run.code == 1 and "4 problems:" in run.err and "node 'z': unknown application" in run.err, run
    assert await stack.jobs(company="acme") == []
