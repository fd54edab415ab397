"""Working directories: empty for every attempt, reused only when left clean."""

from __future__ import annotations

import os
from pathlib import Path

from executor.workdirs import Workdirs


async def test_clean_directory_is_reused_and_closed(tmp_path: Path) -> None:
    pool = Workdirs(keep=2, base=str(tmp_path))
    async with pool.attempt() as first:
        assert os.listdir(first.path) == [] and (os.stat(first.path).st_mode & 0o777) == 0o700
    async with pool.attempt() as second:
        assert second.path == first.path
    assert pool.idle == 1
    pool.close()
    assert pool.idle == 0 and os.listdir(tmp_path) == []


async def test_directory_with_files_or_opened_up_is_removed(tmp_path: Path) -> None:
    pool = Workdirs(keep=2, base=str(tmp_path))
    async with pool.attempt() as dirty:
        (Path(dirty.path) / "sub").mkdir()
        (Path(dirty.path) / "sub" / "left").write_text("x")
    async with pool.attempt() as opened:
        os.chmod(opened.path, 0o777)
    assert pool.idle == 0 and os.listdir(tmp_path) == []
    async with pool.attempt() as fresh:
        assert fresh.path not in (dirty.path, opened.path) and os.listdir(fresh.path) == []


async def test_left_clean_is_looked_at_once_and_decides_the_pooling(tmp_path: Path) -> None:
    pool = Workdirs(keep=2, base=str(tmp_path))
    async with pool.attempt() as used:
        (Path(used.path) / "result").write_text("x")
        assert not used.left_clean()
    assert pool.idle == 0 and os.listdir(tmp_path) == []
    async with pool.attempt() as clean:
        assert clean.left_clean()
    assert pool.idle == 1


async def test_pool_keeps_at_most_keep(tmp_path: Path) -> None:
    pool = Workdirs(keep=1, base=str(tmp_path))
    async with pool.attempt() as one, pool.attempt() as two:
        assert one.path != two.path
    assert pool.idle == 1 and len(os.listdir(tmp_path)) == 1
    pool.close()
