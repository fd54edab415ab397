"""`jetjobs credentials …`, `actor …`, `audit`, `template env`, `job artifacts`, `app export`."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
from pathlib import Path
from typing import Any, get_args

from bus import Layout
from bus.infra import ensure_consumer
from contracts import api
from contracts import subjects as s
from contracts import tenants as t
from contracts.base import INT4_MAX
from contracts.records import JobRecord

from . import commands, render, settings
from .cli_common import add_command, add_group, call, check_code, most, sendable
from .cli_numbers import count
from .commands import CommandError
from .pages import every_page, every_page_after
from .replies import ArtifactSaved, ConsumerMade, KeyRotated, NewKey


def _pairs(values: list[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(
                f"expected KEY=VALUE, got {item!r} (values may also come from --from-env NAME)"
            )
        pairs[key] = sendable(key, value, "credential field")
    return pairs


async def cmd_credentials_set(args: argparse.Namespace, conf: settings.Settings) -> None:
    values = _pairs(args.values)
    for name in args.from_env or []:
        if name not in os.environ:
            raise CommandError(f"--from-env {name}: the variable is not set in this shell")
        values[name] = sendable(name, os.environ[name], "--from-env")
    if not values:
        raise CommandError(
            f"no values for {args.company}/{args.name}: give at least one KEY=VALUE or --from-env NAME"
        )
    request = t.CredentialSet(company=args.company, name=args.name, kind=args.kind or "", values=values)

    async def action(ses: commands.Session) -> None:
        info = await ses.api.call("credential.set", request, t.CredentialInfo)
        ses.show(info, f"stored credential set {info.company}/{info.name}: {', '.join(info.fields)}")

    await call(args, conf, action)


async def cmd_credentials_list(args: argparse.Namespace, conf: settings.Settings) -> None:
    async def action(ses: commands.Session) -> None:
        reply = await ses.api.call(
            "credential.list", t.CredentialFilter(company=args.company), t.CredentialList
        )
        rows = [(c.name, c.kind, ", ".join(c.fields), c.updated_at) for c in reply.credentials]
        ses.show(reply.credentials, render.table(rows, ["name", "kind", "fields", "updated"]))

    await call(args, conf, action)


async def cmd_credentials_assign(args: argparse.Namespace, conf: settings.Settings) -> None:
    async def action(ses: commands.Session) -> None:
        request = t.CredentialAssign(template_id=args.template, name=args.name)
        reply = await ses.api.call("credential.assign", request, t.Assigned)
        ses.show(reply, _assigned_text(reply))

    await call(args, conf, action)


def _assigned_text(reply: t.Assigned) -> str:
    if not reply.credentials:
        return f"template {reply.template_id} uses no credentials"
    return f"template {reply.template_id} uses credentials: {', '.join(reply.credentials)}"


async def cmd_credentials_unassign(args: argparse.Namespace, conf: settings.Settings) -> None:
    async def action(ses: commands.Session) -> None:
        request = t.CredentialAssign(template_id=args.template, name=args.name)
        reply = await ses.api.call("credential.unassign", request, t.Assigned)
        ses.show(reply, _assigned_text(reply))

    await call(args, conf, action)


async def cmd_credentials_delete(args: argparse.Namespace, conf: settings.Settings) -> None:
    async def action(ses: commands.Session) -> None:
        request = t.CredentialRef(company=args.company, name=args.name)
        info = await ses.api.call("credential.delete", request, t.CredentialInfo)
        ses.show(info, f"deleted credential set {info.company}/{info.name} ({', '.join(info.fields)})")

    await call(args, conf, action)


async def cmd_credentials_new_key(args: argparse.Namespace, conf: settings.Settings) -> None:
    from store.credentials import new_key  # here: client commands start faster without the store

    key = new_key()
    commands.show(args.json, NewKey(key=key), key)


async def cmd_credentials_rotate(args: argparse.Namespace, conf: settings.Settings) -> None:
    """Re-encrypt under the first configured key; the others must open what is stored.
    With no key and no database configured, the key file and the database are those of
    the `jetjobs up` in --home, as `up` itself uses them."""
    # here: client commands start faster without the store
    from store.credentials import Keyring, SecretKeyError
    from store.rotation import RotationError, rotate_key

    from .home import SECRET_KEY_FILE, found_key

    key_file = conf.secret_key_file
    if not (key_file or conf.secret_key or conf.database_url):
        key_file = str(found) if (found := found_key(conf.home)) else None
    try:
        ring = Keyring.load(conf.secret_key, key_file)
    except SecretKeyError as error:
        raise CommandError(str(error)) from None
    if ring is None:
        raise CommandError(
            "no keys given: set JETJOBS_SECRET_KEY_FILE to a file with the new key first, then the old "
            f"key(s); with neither a key nor a database URL set, {conf.home.resolve() / SECRET_KEY_FILE} "
            "is used, the key `jetjobs up` makes in --home"
        )
    try:
        rotated = await rotate_key(conf.require_database(), ring)
    except RotationError as error:
        raise CommandError(str(error)) from None
    human = (
        f"re-encrypted {rotated.credentials} credential set(s), {rotated.template_secrets} "
        f"template secret value(s) and {rotated.job_secrets} job secret value(s) under key {ring.primary}"
    )
    reply = KeyRotated(
        reencrypted=rotated.credentials,
        template_secrets=rotated.template_secrets,
        job_secrets=rotated.job_secrets,
        key=ring.primary,
    )
    commands.show(args.json, reply, human)


async def cmd_template_env(args: argparse.Namespace, conf: settings.Settings) -> None:
    async def action(ses: commands.Session) -> None:
        reply = await ses.api.call("template.env", api.TemplateRef(id=args.id), t.TemplateEnv)
        rows = [
            (e.name, "" if e.value is None else e.value, e.source, "yes" if e.required else "")
            for e in reply.entries
        ]
        human = render.table(rows, ["variable", "value", "source", "required"])
        if reply.missing:
            human += f"\nmissing required: {', '.join(reply.missing)} (runs will fail as invalid)"
        ses.show(reply, human)

    await call(args, conf, action)


def _save(out: Path, info: t.ArtifactInfo, content: str | None) -> tuple[ArtifactSaved, bool]:
    """The artifact written under `out`, or skipped and why; and whether it could not be
    written there (the others still are; the command fails at the end)."""
    saved = ArtifactSaved(name=info.name, attempt=info.attempt, size=info.size)
    if content is None:
        return saved.model_copy(update={"skipped": info.note or "not stored"}), False
    target = (out / info.name).resolve()
    if not target.is_relative_to(out.resolve()):
        return saved.model_copy(update={"skipped": f"its name points outside {out}"}), False
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(content))
    except OSError as error:
        return saved.model_copy(update={"skipped": f"cannot write {target}: {error.strerror}"}), True
    return saved.model_copy(update={"file": str(target)}), False


def _saved_text(saved: ArtifactSaved) -> str:
    if saved.file is None:
        return f"skipped {saved.name} (attempt {saved.attempt}): {saved.skipped}"
    return f"wrote {saved.file} ({saved.size} bytes, attempt {saved.attempt})"


async def _artifacts(ses: commands.Session, job_id: str) -> list[t.ArtifactInfo]:
    """Every artifact record of the job, page by page."""

    async def page(after: str | None) -> tuple[list[t.ArtifactInfo], str | None]:
        reply = await ses.api.call("artifact.list", t.ArtifactQuery(id=job_id, after=after), t.ArtifactList)
        return reply.artifacts, reply.next

    return await every_page_after(page)


async def _attempt_made(ses: commands.Session, job_id: str, attempt: int | None) -> None:
    """A CommandError when `--attempt` names an attempt the job never made: its empty
    listing would read as an attempt that left no artifacts."""
    if attempt is None:
        return
    job = await ses.api.call("job.get", api.JobRef(id=job_id), JobRecord)
    if attempt > job.attempt:
        made = f"{job.attempt} attempt" + ("" if job.attempt == 1 else "s")
        raise CommandError(f"job {job_id} has no attempt {attempt}: it has {made}")


async def _download(ses: commands.Session, job_id: str, out: Path, attempt: int | None) -> None:
    listed = await _artifacts(ses, job_id)
    names = {a.name for a in listed if attempt is None or a.attempt == attempt}
    if not names:
        await _attempt_made(ses, job_id, attempt)
    written, unwritten = [], []
    for name in sorted(names):  # without --attempt, the store hands out a name's latest file
        ref = t.ArtifactRef(job_id=job_id, name=name, attempt=attempt)
        got = await ses.api.call("artifact.get", ref, t.ArtifactContent)
        saved, failed = await asyncio.to_thread(_save, out, got.info, got.content)
        if not ses.as_json:
            print(_saved_text(saved))
        written.append(saved)
        unwritten += [name] if failed else []
    if ses.as_json:
        print(render.as_json(written))
    if unwritten:
        raise CommandError(
            f"{len(unwritten)} artifact(s) not written ({', '.join(unwritten)}): see why above; "
            "give --out a folder you can write, where no file stands in their way"
        )
    if ses.as_json:
        return
    if not written:
        print(f"job {job_id} left no artifacts" + ("" if attempt is None else f" in attempt {attempt}"))
    elif attempt is None and (older := _superseded(listed)):
        print(
            f"not written, as a later attempt left a file of the same name: {older}; --attempt N writes N's"
        )


def _superseded(artifacts: list[t.ArtifactInfo]) -> str:
    """The files of earlier attempts whose name a later attempt's file took (a later
    attempt that left no such file takes nothing)."""
    left = [info for info in artifacts if not info.missing]
    latest: dict[str, int] = {}
    for info in left:
        latest[info.name] = max(latest.get(info.name, 0), info.attempt)
    return ", ".join(f"{a.name} (attempt {a.attempt})" for a in left if a.attempt < latest[a.name])


async def cmd_job_artifacts(args: argparse.Namespace, conf: settings.Settings) -> None:
    if args.out is not None:
        settings.make_folder(Path(args.out), "--out")  # before connecting, like every local check
        await call(args, conf, lambda ses: _download(ses, args.id, Path(args.out), args.attempt))
        return

    async def action(ses: commands.Session) -> None:
        listed = await _artifacts(ses, args.id)
        shown = [a for a in listed if args.attempt is None or a.attempt == args.attempt]
        if not shown:
            await _attempt_made(ses, args.id, args.attempt)
        rows = [(a.attempt, a.name, a.content_type, a.size, a.sha256[:12], a.note or "") for a in shown]
        ses.show(shown, render.table(rows, ["attempt", "name", "type", "size", "sha256", "note"]))

    await call(args, conf, action)


async def cmd_app_export(args: argparse.Namespace, conf: settings.Settings) -> None:
    async def action(ses: commands.Session) -> None:
        reply = await ses.api.call("app.export", t.AppRef(id=args.id), t.AppDocument)
        print(json.dumps(reply.document, indent=2, ensure_ascii=False))

    await call(args, conf, action)


def _show_actors(ses: commands.Session, reply: t.ActorList) -> None:
    """The company's actors; what the change did beyond them (closing or opening the
    company) on stderr, so it is seen whatever reads stdout."""
    ses.show(reply, render.table([(a.actor, a.role) for a in reply.actors], ["actor", "role"]))
    for warning in reply.warnings:
        print(f"warning: {warning}", file=sys.stderr)


async def cmd_actor_grant(args: argparse.Namespace, conf: settings.Settings) -> None:
    async def action(ses: commands.Session) -> None:
        grant = t.ActorGrant(company=args.company, actor=args.actor, role=args.role, close=args.close)
        _show_actors(ses, await ses.api.call("actor.grant", grant, t.ActorList))

    await call(args, conf, action)


async def cmd_actor_revoke(args: argparse.Namespace, conf: settings.Settings) -> None:
    async def action(ses: commands.Session) -> None:
        revoke = t.ActorRevoke(company=args.company, actor=args.actor, role=args.role)
        _show_actors(ses, await ses.api.call("actor.revoke", revoke, t.ActorList))

    await call(args, conf, action)


async def cmd_actor_list(args: argparse.Namespace, conf: settings.Settings) -> None:
    async def action(ses: commands.Session) -> None:
        reply = await ses.api.call("actor.list", t.CredentialFilter(company=args.company), t.ActorList)
        ses.show(reply, render.table([(a.actor, a.role) for a in reply.actors], ["actor", "role"]))

    await call(args, conf, action)


def _token_rows(tokens: list[t.TokenInfo]) -> str:
    rows = [
        (i.id, i.actor, "yes" if i.admin else "", i.note, i.created_by, i.created_at, i.revoked_at or "")
        for i in tokens
    ]
    return render.table(rows, ["id", "actor", "admin", "note", "by", "created", "revoked"])


async def cmd_token_create(args: argparse.Namespace, conf: settings.Settings) -> None:
    request = t.TokenCreate(actor=args.actor, admin=args.admin, note=args.note or "")
    if args.bootstrap:
        from store.tokens import bootstrap_token  # here: client commands start faster without the store

        issued = await bootstrap_token(conf.require_database(), request)
        print(render.as_json(issued) if args.json else _issued_text(issued))
        return

    async def action(ses: commands.Session) -> None:
        issued = await ses.api.call("token.create", request, t.TokenIssued)
        ses.show(issued, _issued_text(issued))

    await call(args, conf, action)


def _issued_text(issued: t.TokenIssued) -> str:
    kind = "admin token" if issued.info.admin else "token"
    return (
        f"{issued.token}\n"
        f"(this is {issued.info.actor}'s {kind} {issued.info.id}: it is not shown again; "
        "give it to them to set as JETJOBS_API_TOKEN)"
    )


async def cmd_token_revoke(args: argparse.Namespace, conf: settings.Settings) -> None:
    async def action(ses: commands.Session) -> None:
        info = await ses.api.call("token.revoke", t.TokenRef(id=args.id), t.TokenInfo)
        ses.show(info, f"revoked token {info.id} of {info.actor}")

    await call(args, conf, action)


async def cmd_token_list(args: argparse.Namespace, conf: settings.Settings) -> None:
    async def action(ses: commands.Session) -> None:
        async def page(after: str | None) -> tuple[list[t.TokenInfo], str | None]:
            reply = await ses.api.call(
                "token.list", t.TokenFilter(actor=args.actor, after=after), t.TokenList
            )
            return reply.tokens, reply.next

        tokens = await every_page_after(page)
        ses.show(tokens, _token_rows(tokens))

    await call(args, conf, action)


async def cmd_audit(args: argparse.Namespace, conf: settings.Settings) -> None:
    async def action(ses: commands.Session) -> None:
        async def page(got: list[t.AuditEntry]) -> tuple[list[t.AuditEntry], bool]:
            before = got[-1].id if got else None
            query = t.AuditQuery(company=args.company, limit=args.limit - len(got), before=before)
            reply = await ses.api.call("audit.list", query, t.AuditList)
            return reply.entries, reply.more

        entries = await every_page(page, args.limit)
        rows = [(e.at, e.actor, e.action, e.company or "", json.dumps(e.detail)[:80]) for e in entries]
        ses.show(entries, render.table(rows, ["at", "actor", "action", "company", "detail"]))

    await call(args, conf, action)


async def cmd_company_consumer(args: argparse.Namespace, conf: settings.Settings) -> None:
    """An operator's step before a per-company executor starts with --bind-only."""
    check_code(args.code, "company code")
    check_code(args.pool, "pool")
    wanted = Layout(replicas=conf.replicas, ack_wait=conf.ack_wait).company_consumer(args.code, args.pool)
    assert wanted.durable_name is not None
    made = ConsumerMade(
        company=args.code, pool=args.pool, stream=s.DISPATCH_STREAM, consumer=wanted.durable_name
    )

    async def action(ses: commands.Session) -> None:
        await commands.known_company(ses, args.code)
        await ensure_consumer(ses.bus.js, s.DISPATCH_STREAM, wanted)
        ses.show(
            made,
            f"consumer {made.consumer} serves jobs of company {made.company}, pool {made.pool}: "
            f"start its executors with --company {made.company} --pool {made.pool} --bind-only",
        )

    await call(args, conf, action)


ROLES = list(get_args(t.Role))


def register(sub: Any) -> None:
    """`credentials`, `actor` and `audit`."""
    creds = add_group(sub, "credentials", "company credential sets")
    put = add_command(
        creds, "set", cmd_credentials_set, "create or replace a credential set (values stored encrypted)"
    )
    put.add_argument("company")
    put.add_argument("name")
    put.add_argument(
        "values", nargs="*", metavar="KEY=VALUE", help="a value to store (before or after the options)"
    )
    put.add_argument(
        "--from-env",
        action="append",
        metavar="NAME",
        help="take variable NAME's value from this shell (repeatable)",
    )
    put.set_defaults(trailing="values")
    put.add_argument("--kind", help="credential type, e.g. abraflexi")
    add_command(creds, "list", cmd_credentials_list, "list a company's credential sets").add_argument(
        "company"
    )
    assign = add_command(creds, "assign", cmd_credentials_assign, "let a template use a credential set")
    assign.add_argument("template", type=int)
    assign.add_argument("name")
    unassign = add_command(
        creds, "unassign", cmd_credentials_unassign, "stop a template using a credential set"
    )
    unassign.add_argument("template", type=int)
    unassign.add_argument("name")
    delete = add_command(
        creds, "delete", cmd_credentials_delete, "delete a credential set (refused while a template uses it)"
    )
    delete.add_argument("company")
    delete.add_argument("name")
    add_command(
        creds, "new-key", cmd_credentials_new_key, "print a fresh secret key for a key file (--json: {key})"
    )
    add_command(
        creds,
        "rotate-key",
        cmd_credentials_rotate,
        "re-encrypt every credential under the first key of JETJOBS_SECRET_KEY_FILE "
        "(beside `jetjobs up`: of its secret.key)",
    )
    actor = add_group(sub, "actor", "who may do what in a company")
    grant = add_command(actor, "grant", cmd_actor_grant, "give an actor a role in a company")
    grant.add_argument("company")
    grant.add_argument("actor")
    grant.add_argument("role", choices=ROLES)
    grant.add_argument(
        "--close",
        action="store_true",
        help="the first grant closes a company open to all: do it even if it locks you out",
    )
    revoke = add_command(actor, "revoke", cmd_actor_revoke, "take a role away from an actor in a company")
    revoke.add_argument("company")
    revoke.add_argument("actor")
    revoke.add_argument("role", choices=ROLES)
    add_command(actor, "list", cmd_actor_list, "list a company's actors").add_argument("company")
    token = add_group(actor, "token", "API tokens that prove who an actor is")
    create = add_command(token, "create", cmd_token_create, "issue an API token to an actor (shown once)")
    create.add_argument("actor")
    create.add_argument("--admin", action="store_true", help="the token may issue and revoke tokens")
    create.add_argument("--note", help="what the token is for")
    create.add_argument(
        "--bootstrap",
        action="store_true",
        help="write it straight to the database (needs JETJOBS_DATABASE_URL): for the first admin",
    )
    add_command(token, "revoke", cmd_token_revoke, "revoke an API token for good").add_argument(
        "id", type=int
    )
    add_command(token, "list", cmd_token_list, "list API tokens (never their values)").add_argument("--actor")
    audit = add_command(sub, "audit", cmd_audit, "read the audit log, newest first")
    audit.add_argument("--company")
    audit.add_argument("--limit", type=count(1, most(t.AuditQuery, "limit")), default=50)


def register_company(company: Any) -> None:
    consumer = add_command(
        company,
        "consumer",
        cmd_company_consumer,
        "create the dispatch consumer a company's own (bind-only) executors pull from",
    )
    consumer.add_argument("code")
    consumer.add_argument("--pool", default="default", help="pool its templates use (default 'default')")


def register_template(template: Any) -> None:
    add_command(
        template, "env", cmd_template_env, "show a template's merged environment, secrets masked"
    ).add_argument("id", type=int)


def register_job(job: Any) -> None:
    arts = add_command(
        job,
        "artifacts",
        cmd_job_artifacts,
        "list a job's artifacts (of every attempt), or download them with --out",
    )
    arts.add_argument("id")
    arts.add_argument(
        "--out",
        metavar="DIR",
        help="folder to write the artifacts into: each name once, the file of the latest attempt "
        "that left it (the listing without --out shows every attempt's)",
    )
    arts.add_argument(
        "--attempt",
        type=count(1, INT4_MAX),
        metavar="N",
        help="only attempt N's artifacts: listed, or with --out written instead of the latest files",
    )


def register_app(app: Any) -> None:
    add_command(app, "export", cmd_app_export, "print an application as MultiFlexi app JSON").add_argument(
        "id"
    )
