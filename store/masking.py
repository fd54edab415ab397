"""Secret values in what the store shows: a variable the application declares secret
(MultiFlexi `"type": "password"`) is shown as `********` to every caller, admins
included, wherever a template's env or a job message is shown, as `template env`
shows it. Over the API its value is write-only, like a credential's: only the job
gets it (fetched just in time when the template set it, in its message when a run or a
flow did), and the executor masks it in what the job prints. So a
reader learns nothing from `--json` that the text view hides, and an admin who must
change it sets it again."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from contracts.flows import FlowRun
from contracts.lifecycle import DeadLetterRecord
from contracts.masks import MASK, maskable
from contracts.messages import JobMessage
from contracts.models import RunTemplate

from .board import secret_fields
from .rows import TemplateRow


def hidden_env(env: Mapping[str, Any], secret: Collection[str]) -> dict[str, Any]:
    """`env` with the value of each `secret` variable that has one masked."""
    return {name: MASK if name in secret and value else value for name, value in env.items()}


def hidden_text(text: str, values: Iterable[str]) -> str:
    """`text` with every secret value in it masked, the longest first."""
    for value in maskable(values):
        text = text.replace(value, MASK)
    return text


def shown_template(row: TemplateRow) -> RunTemplate:
    """The template as an API reply gives it: its env without the values of its
    application's secret fields, those it keeps sealed included (a flow template's
    env is its nodes' to judge)."""
    template = row.template
    secret = secret_fields(row.app) if row.app is not None else []
    if not row.sealed and not any(template.env.get(name) for name in secret):
        return template
    env = {**template.env, **dict.fromkeys(sorted(row.sealed), MASK)}
    return template.model_copy(update={"env": hidden_env(env, secret)})


def recorded_argv(message: JobMessage) -> list[str]:
    """The job's argv as its record keeps it: a secret variable placed in its command
    line (`{PASSWORD}` in `cmdparams`) was filled in, and is masked."""
    values = [message.env[name] for name in message.masked or () if message.env.get(name)]
    if not values:
        return message.argv
    return [hidden_text(word, values) for word in message.argv]


def shown_letter(letter: DeadLetterRecord) -> DeadLetterRecord:
    """The dead letter as `dlq.get` gives it: a job message's secret variables masked
    in its env and argv. What it holds is kept as it came, so a replay runs the job
    as it was sent."""
    try:
        message = json.loads(letter.payload)
    except (ValueError, RecursionError):  # not JSON: nothing in it is known to be secret
        return letter
    if not isinstance(message, dict) or not isinstance(env := message.get("env"), dict):
        return letter
    names = message.get("masked")
    secret = [n for n in names if isinstance(n, str)] if isinstance(names, list) else []
    values = [v for n, v in env.items() if n in secret and isinstance(v, str) and v]
    if not values:
        return letter
    message["env"] = hidden_env(env, secret)
    if isinstance(argv := message.get("argv"), list):
        message["argv"] = [hidden_text(w, values) if isinstance(w, str) else w for w in argv]
    return letter.model_copy(update={"payload": json.dumps(message, ensure_ascii=False)})


def shown_flow(run: FlowRun, secret: Mapping[str, Collection[str]]) -> FlowRun:
    """The flow run as an API reply gives it: in its definition, each node's env without
    the values of its application's secret fields (`secret`, by node), and the flow's
    own env without those of any of its nodes (it reaches every node)."""
    spec = run.spec
    if spec is None or not any(secret.values()):
        return run
    nodes = [
        node.model_copy(update={"env": hidden_env(node.env, secret.get(node.name, ()))})
        for node in spec.nodes
    ]
    every = {name for names in secret.values() for name in names}
    shown = spec.model_copy(update={"nodes": nodes, "env_vars": hidden_env(spec.env_vars, every)})
    return run.model_copy(update={"spec": shown})
