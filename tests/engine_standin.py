"""A recording stand-in for podman/docker, for tests on machines without a working engine.

Written to a file with a shebang and put where the executor looks for its
engine. Each call appends one JSON line to $FAKE_ENGINE_LOG (argv, and for
`run` the env file's mode and the variables it passed). `run` then becomes
the "container": it execs the command with only the passed variables, in the
mounted working directory; `stop` and `rm --force` signal it by name."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

SCRIPT = r"""
import json, os, signal, stat, sys, time

log, state = os.environ["FAKE_ENGINE_LOG"], os.environ["FAKE_ENGINE_STATE"]
args = sys.argv[1:]


def record(**extra):
    with open(log, "a") as handle:
        handle.write(json.dumps({"argv": sys.argv, **extra}) + "\n")


def pid_of(name):
    try:
        return int(open(os.path.join(state, name)).read())
    except (OSError, ValueError):
        return None


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


command = args[0]
if command == "version":
    record()
    if os.environ.get("FAKE_ENGINE_DOWN"):
        print("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
              "Is the docker daemon running?", file=sys.stderr)
        sys.exit(1)
    print("Version: 0.0-standin")
elif command == "run":
    takes_value = {"--name", "--label", "--user", "--volume", "--workdir", "--env-file", "--env"}
    options, i = {}, 1
    while args[i].startswith("--"):
        if args[i] in takes_value:
            options.setdefault(args[i], []).append(args[i + 1])
            i += 2
        else:
            options.setdefault(args[i], []).append(True)
            i += 1
    image, argv = args[i], args[i + 1:]
    env_file = options["--env-file"][0]
    env = dict(line.rstrip("\n").split("=", 1) for line in open(env_file) if line.strip())
    for name in options.get("--env", []):
        env[name] = os.environ[name]
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    name = options["--name"][0]
    with open(os.path.join(state, name), "w") as handle:
        handle.write(str(os.getpid()))
    record(image=image, command=argv, env_file_mode=oct(stat.S_IMODE(os.stat(env_file).st_mode)),
           env=env, engine_env_names=sorted(os.environ))
    os.chdir(options["--workdir"][0])
    os.execvpe(argv[0], argv, env)
elif command == "stop":
    name, grace = args[-1], float(args[args.index("--time") + 1])
    record()
    pid = pid_of(name)
    if pid is not None and alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
elif command == "rm":
    record()
    for name in [a for a in args[1:] if not a.startswith("--")]:
        pid = pid_of(name)
        if pid is not None and alive(pid):
            os.kill(pid, signal.SIGKILL)
        try:
            os.remove(os.path.join(state, name))
        except OSError:
            pass
else:
    record()
    sys.exit(125)
"""


def install(folder: Path, name: str = "docker") -> Path:
    """Write the stand-in as an executable `folder/name`; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!{sys.executable}\n{SCRIPT}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    (folder / "state").mkdir(exist_ok=True)
    return path


def environment(folder: Path) -> dict[str, str]:
    """The variables the stand-in needs (set them in the executor's environment)."""
    return {"FAKE_ENGINE_LOG": str(folder / "calls.jsonl"), "FAKE_ENGINE_STATE": str(folder / "state")}


def calls(folder: Path) -> list[dict[str, object]]:
    """Every call recorded so far, oldest first."""
    try:
        text = (folder / "calls.jsonl").read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line]
