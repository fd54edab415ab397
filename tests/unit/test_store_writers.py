"""What the events projection keeps of each event: the bytes as received unless a NUL had to go."""

from __future__ import annotations

from bus import encode
from contracts.enums import Status
from contracts.messages import JobEvent
from store.writers import event_payloads


def event(**fields: object) -> JobEvent:
    values = {
        "job_id": "j1",
        "company": "acme",
        "attempt": 1,
        "status": Status.STARTED,
        "at": "2026-01-01T00:00:00Z",
    }
    return JobEvent.model_validate({**values, **fields})


def test_an_event_without_nul_is_kept_as_received() -> None:
    raw = b'{"job_id":"j1","company":"acme","attempt":1,"status":"started","at":"2026-01-01T00:00:00Z","stdout":"a\\\\u0000b"}'
    received = JobEvent.model_validate_json(raw)
    assert received.stdout == "a\\u0000b", "an escaped backslash, then text: no NUL"
    [kept], [payload] = event_payloads([received], [raw])
    assert kept is received and payload == raw.decode()


def test_an_event_with_nul_is_cleaned_and_encoded_again() -> None:
    dirty = event(stdout="a\x00b", results={"k\x00": "v\x00"})
    [kept], [payload] = event_payloads([dirty], [encode(dirty)])
    assert kept.stdout == "a\ufffdb" and kept.results == {"k\ufffd": "v\ufffd"}
    assert "\\u0000" not in payload and JobEvent.model_validate_json(payload) == kept
