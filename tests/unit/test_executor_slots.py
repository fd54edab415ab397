"""Slot accounting of the executor: a job holds its slot until its process is
gone; reporting its outcome holds none, but the jobs in hand stay bounded."""

from __future__ import annotations

import asyncio

from executor import ExecutorConfig
from executor.control import Control
from executor.service import ExecutorService


async def test_a_job_reporting_its_outcome_holds_no_slot_and_jobs_in_hand_stay_bounded() -> None:
    service = ExecutorService(ExecutorConfig(nats_url="nats://127.0.0.1:1", slots=2))
    woken: list[str] = []
    controls = [
        Control(received=0.0, job_id=f"j{i}", on_release=lambda: woken.append("wake")) for i in range(4)
    ]
    tasks = [asyncio.create_task(asyncio.sleep(60)) for _ in controls]
    try:
        for task, control in zip(tasks[:2], controls[:2], strict=True):
            service._jobs[task] = control
        assert (service.running, service._room(2)) == (2, 0)

        controls[0].release()
        controls[0].release()  # once only
        assert woken == ["wake"]
        assert (service.running, service._room(2)) == (1, 1)

        service._jobs[tasks[2]] = controls[2]
        controls[1].release()
        assert (service.running, service._room(2)) == (1, 1)

        service._jobs[tasks[3]] = controls[3]
        controls[2].release()
        # one process running, three jobs reporting: a free slot, but twice the slots in hand
        assert (service.running, service._room(2)) == (1, 0)
        assert service._job_ids() == ["j3"]  # what the heartbeat announces as running
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
