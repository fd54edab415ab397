"""Projecting slot records into `schedule_slot`: every scheduled slot of a
template, fired or skipped, becomes a row."""

from __future__ import annotations

from collections.abc import Sequence

from bus import Delivery
from contracts.schedule import SlotOutcome, SlotRecord

from .queries import Queries
from .recorded import NOTHING, Recorded


def strongest(records: Sequence[SlotRecord]) -> list[SlotRecord]:
    """One record per (template, slot) and company, as the table keeps them: the first
    run wins over any skip; otherwise the first record stays. Per company, so that a
    record of another company's template, which the store refuses, never stands in
    for the template's own."""
    kept: dict[tuple[int, object, str], SlotRecord] = {}
    for record in records:
        key = (record.template_id, record.slot, record.company)
        known = kept.get(key)
        if known is None or (
            known.outcome is SlotOutcome.SKIPPED and record.outcome is not SlotOutcome.SKIPPED
        ):
            kept[key] = record
    return list(kept.values())


async def project_slots(queries: Queries, batch: Sequence[Delivery[SlotRecord]]) -> Recorded:
    """Write one batch of slot records (which no counter counts); those naming another
    company's template are refused."""
    foreign = await queries.record_slots(strongest([delivery.payload for delivery in batch]))
    if not foreign:
        return NOTHING
    refused = [
        (d.payload, f"company '{d.payload.company}' has no template {d.payload.template_id}")
        for d in batch
        if (d.payload.template_id, d.payload.company) in foreign
    ]
    return Recorded(refused=refused)
