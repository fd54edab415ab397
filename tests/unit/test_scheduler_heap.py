"""The timer heap: earliest first, one live timer per template, stale ones never fire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduler.heap import Timer, TimerHeap

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_empty_heap_has_nothing_due() -> None:
    heap = TimerHeap()
    assert len(heap) == 0
    assert heap.peek_due() is None
    assert heap.pop_due(at(1000)) == []


def test_pops_every_due_timer_earliest_first() -> None:
    heap = TimerHeap()
    for template_id, seconds in ((1, 30), (2, 10), (3, 20), (4, 40)):
        heap.push(Timer(at(seconds), template_id, "r1"))
    assert heap.peek_due() == at(10)
    assert [t.template_id for t in heap.pop_due(at(30))] == [2, 3, 1]
    assert len(heap) == 1
    assert heap.peek_due() == at(40)


def test_due_exactly_now_is_due() -> None:
    heap = TimerHeap()
    heap.push(Timer(at(5), 1, "r1"))
    assert heap.pop_due(at(5) - timedelta(microseconds=1)) == []
    assert heap.pop_due(at(5)) == [Timer(at(5), 1, "r1")]


def test_replacing_a_timer_hides_the_old_one() -> None:
    heap = TimerHeap()
    heap.push(Timer(at(5), 1, "r1"))
    heap.push(Timer(at(50), 1, "r2"))
    assert len(heap) == 1
    assert heap.peek_due() == at(50)
    assert heap.pop_due(at(10)) == []
    assert heap.pop_due(at(50)) == [Timer(at(50), 1, "r2")]


def test_replacing_with_an_earlier_timer_wins_too() -> None:
    heap = TimerHeap()
    heap.push(Timer(at(50), 1, "r1"))
    heap.push(Timer(at(5), 1, "r2"))
    assert heap.pop_due(at(100)) == [Timer(at(5), 1, "r2")]


def test_same_revision_pushed_twice_fires_once() -> None:
    heap = TimerHeap()
    heap.push(Timer(at(5), 1, "r1"))
    heap.push(Timer(at(5), 1, "r1"))
    assert heap.pop_due(at(5)) == [Timer(at(5), 1, "r1")]


def test_removed_timer_never_fires() -> None:
    heap = TimerHeap()
    heap.push(Timer(at(5), 1, "r1"))
    heap.push(Timer(at(6), 2, "r1"))
    assert heap.remove(1) == Timer(at(5), 1, "r1")
    assert heap.remove(1) is None
    assert 1 not in heap
    assert len(heap) == 1
    assert heap.peek_due() == at(6)
    assert [t.template_id for t in heap.pop_due(at(100))] == [2]


def test_get_returns_the_live_timer() -> None:
    heap = TimerHeap()
    heap.push(Timer(at(5), 1, "r1"))
    heap.push(Timer(at(7), 1, "r2"))
    assert heap.get(1) == Timer(at(7), 1, "r2")
    assert heap.get(2) is None


def test_ties_pop_in_push_order() -> None:
    heap = TimerHeap()
    for template_id in (3, 1, 2):
        heap.push(Timer(at(5), template_id, "r"))
    assert [t.template_id for t in heap.pop_due(at(5))] == [3, 1, 2]


def test_churn_does_not_grow_the_heap() -> None:
    heap = TimerHeap()
    for n in range(10_000):
        heap.push(Timer(at(n), n % 10, f"r{n}"))
    assert len(heap) == 10
    assert len(heap._heap) < 200
    assert sorted(t.template_id for t in heap.pop_due(at(10_000))) == list(range(10))


def test_a_retry_timer_keeps_its_slot_while_waiting() -> None:
    heap = TimerHeap()
    heap.push(Timer(at(12), 1, "r1", retry_of=at(10)))
    (timer,) = heap.pop_due(at(12))
    assert (timer.due, timer.slot) == (at(12), at(10))
    assert Timer(at(5), 2, "r1").slot == at(5)


def test_count_until_counts_without_taking() -> None:
    heap = TimerHeap()
    for template_id in range(1, 1001):
        heap.push(Timer(at(template_id % 10), template_id, "r1"))
    assert heap.count_until(at(-1)) == 0
    assert heap.count_until(at(0)) == 100
    assert heap.count_until(at(4)) == 500
    assert heap.count_until(at(9)) == 1000
    assert len(heap) == 1000 and len(heap.pop_due(at(4))) == 500
