"""`up --demo` says which of its templates will run, from how they are now."""

from __future__ import annotations

from contracts import api
from contracts import schedule as sc
from contracts.models import RunTemplate
from jetjobs import demo
from tests.stack import running_stack


async def test_the_announcement_follows_the_templates_as_they_were_left(
    nats_url: str, database_url: str
) -> None:
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        hello, grumpy = await demo.install(stack.client)
        assert await demo.announce(stack.client, [hello, grumpy]) == (
            "demo: company 'demo', templates 'hello' (every 5 s) and 'grumpy' (every 20 s, fails)"
        )
        changes = {"cron": "0 * * * *", "timezone": "Europe/Prague"}
        await stack.client.call(
            "template.update", api.TemplateUpdate(id=hello.id, changes=changes), RunTemplate
        )
        await stack.client.call("template.pause", api.TemplateRef(id=grumpy.id), RunTemplate)
        again = await demo.install(stack.client)
        assert [t.id for t in again] == [hello.id, grumpy.id]
        assert await demo.announce(stack.client, again) == (
            "demo: company 'demo', template 'hello' (cron '0 * * * *' in Europe/Prague)\n"
            "demo: 'grumpy' paused: slots are recorded as skipped"
        )
        await stack.client.call("company.pause", sc.CompanyRef(code="demo"), sc.CompanyPaused)
        assert await demo.announce(stack.client, again) == (
            "demo: company 'demo', no template will run\n"
            "demo: 'hello' paused with its company demo: slots are recorded as skipped\n"
            "demo: 'grumpy' paused with its company demo: slots are recorded as skipped"
        )


async def test_a_deleted_demo_template_stays_deleted(nats_url: str, database_url: str) -> None:
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        hello, grumpy = await demo.install(stack.client)
        await stack.client.call("template.delete", api.TemplateRef(id=hello.id), RunTemplate)
        again = await demo.install(stack.client)
        assert [t.id for t in again] == [hello.id, grumpy.id], "nothing is made anew"
        announced = await demo.announce(stack.client, again)
        assert announced.startswith("demo: company 'demo', template 'grumpy' (every 20 s, fails)\n")
        assert "demo: 'hello' " in announced and "deleted" in announced, announced
        live = await stack.client.call("template.list", api.TemplateQuery(company="demo"), api.TemplateList)
        assert [t.name for t in live.templates] == ["grumpy"]
