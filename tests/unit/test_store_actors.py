"""The store's table of who may do what: every API operation has a rule, each rule
finds its company in fields its request has, the guard refuses to serve an
operation without one, and every list leaves out unreadable companies alike."""

from __future__ import annotations

import re

import pytest
from pydantic import BaseModel

from contracts import api
from contracts import schedule as sc
from contracts.api import OPERATIONS
from contracts.flows import FlowNode, FlowRunRequest, FlowSpec
from contracts.models import Company
from store.actors import OWNERS, RULES, Of, guard_all, summary
from store.flow_queries import flows_sql
from store.loader import queries
from store.tenant_queries import tenant_sql


def test_every_operation_has_exactly_one_rule() -> None:
    assert set(RULES) == set(OPERATIONS), "add the operation's rule to store.actors.RULES"


@pytest.mark.parametrize("op", sorted(RULES))
def test_a_rule_finds_its_company_in_its_request(op: str) -> None:
    rule, fields = RULES[op], OPERATIONS[op].request.model_fields
    for where in rule.of:
        assert where.path.split(".")[0] in fields, f"{op}: {where.path} is not a field of its request"
        assert where.owner is None or where.owner in OWNERS, f"{op}: no lookup for {where.owner}"
    if rule.need is not None and rule.checker == "guard":
        assert rule.of, f"{op} needs {rule.need} but names no company to check it in"
    if rule.need is None or rule.checker == "handler":
        assert rule.why, f"{op}: say why it is open or why its handler checks it"
    if rule.need == "change":
        assert rule.audit is not None, f"{op} changes something: the guard or its handler audits it"
    assert not (rule.checker == "handler" and rule.audit == "guard"), f"{op}: the guard skips it"
    assert not rule.listing or rule.of == (Of("company"),), f"{op}: a list is filtered by `company`"


def test_the_guard_refuses_to_serve_an_operation_without_a_rule() -> None:
    async def handler(request: BaseModel) -> BaseModel:
        return request

    with pytest.raises(LookupError, match=r"without a rule in store\.actors\.RULES: job\.purge"):
        guard_all(None, {"job.get": handler, "job.purge": handler})


NODE = FlowNode(name="a", app="x")


@pytest.mark.parametrize(
    ("where", "request_", "company"),
    [
        (Of("code"), Company(code="acme", name="Acme"), "acme"),
        (Of("code"), sc.CompanyRef(code="acme"), "acme"),
        (Of("company"), api.JobQuery(), None),
        (Of("spec.company"), FlowRunRequest(spec=FlowSpec(name="f", company="acme", nodes=[NODE])), "acme"),
        (Of("spec.company"), FlowRunRequest(company="beta", name="f"), None),
        (Of("changes.company"), api.TemplateUpdate(id=1, changes={"company": "beta"}), "beta"),
        (Of("changes.company"), api.TemplateUpdate(id=1, changes={"company": 7}), None),
        (Of("changes.company"), api.TemplateUpdate(id=1, changes={}), None),
    ],
)
async def test_named_companies_are_read_from_the_request(
    where: Of, request_: BaseModel, company: str | None
) -> None:
    assert await where.company(None, request_) == company


def test_the_audit_summary_keeps_no_values() -> None:
    run = api.RunNow(id=3, env={"TOKEN": "s3cret"})
    assert summary(run) == {"id": 3, "launched_by": "api"}
    update = api.TemplateUpdate(
        id=3, changes={"env": {"PASSWORD": "pw"}, "retries": 2}, set_env={"TOKEN": "t"}, unset_env=["OLD"]
    )
    kept = summary(update)
    assert kept == {
        "id": 3,
        "changes": {"retries": 2, "env": ["PASSWORD"]},
        "set_env": ["TOKEN"],
        "unset_env": ["OLD"],
    }
    assert "pw" not in str(kept) and "'t'" not in str(kept)


HIDDEN = re.compile(
    r"<> ALL \(ARRAY\(\s+SELECT co\.code FROM company co JOIN company_actor ca ON ca\.company_id = co\.id"
    r"\s+GROUP BY co\.code HAVING NOT bool_or\(ca\.actor = \$\d AND ca\.role = ANY \(\$\d::text\[\]\)\)\)\)"
)
LISTS = {
    "list_companies": queries,
    "templates": queries,
    "list_jobs": queries,
    "dead_letter_records": queries,
    "audit_entries": tenant_sql,
    "list_runs": flows_sql,
}


@pytest.mark.parametrize("name", sorted(LISTS))
def test_every_list_leaves_out_unreadable_companies_alike(name: str) -> None:
    assert HIDDEN.search(LISTS[name]()[name].sql), f"{name}: see store/visibility.py"
