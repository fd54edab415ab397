"""Finding and opening what a job left in its directory, never anything outside it.

Everything in a job's directory is the job's to make: a name there may be a
FIFO (opening it would wait for a writer forever), a link to /dev/zero (reading
it would never end) or a link to a file or directory of the host (which a
container job could not read itself). So a name is opened only when it is a
regular file, without following a link and without waiting, a directory on the
way is entered only when it is a real one (by descriptor, so nothing can swap it
for a link in between), and a file is never read past a cap."""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
CHUNK = 64 * 1024
MAGIC = "*?["
MAX_DEPTH = 64
"""Directory levels a glob searches: a job's deeper tree is not walked."""

KINDS = {
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFDIR: "a directory",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFREG: "a regular file",
}

Names = tuple[str, ...]
"""A path below the job's directory, name by name."""


class NotRegular(Exception):
    """A name is there, but is not what it must be: `kind` says what it is, and
    `where` which directory on the way it is ('' when it is the file itself)."""

    def __init__(self, kind: str, where: str = "") -> None:
        super().__init__(kind)
        self.kind = kind
        self.where = where


def kind(mode: int) -> str:
    """What a file of this mode is, in words."""
    return KINDS.get(stat.S_IFMT(mode), "a special file")


def _open(name: str, flags: int, wanted: int, dir_fd: int | None) -> int:
    """`name` opened, when it is (before, and once open) of type `wanted`: a link
    is never followed and a device never opened."""
    found = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    if stat.S_IFMT(found) != wanted:
        raise NotRegular(kind(found))
    fd = os.open(name, flags, dir_fd=dir_fd)
    found = os.fstat(fd).st_mode
    if stat.S_IFMT(found) != wanted:
        os.close(fd)
        raise NotRegular(kind(found))
    return fd


def open_file(name: str, dir_fd: int | None = None) -> int:
    """A regular file's descriptor; `NotRegular` for anything else."""
    return _open(name, FILE, stat.S_IFREG, dir_fd)


def open_directory(name: str, dir_fd: int | None = None) -> int:
    """A real directory's descriptor (not a link to one); `NotRegular` for anything else."""
    return _open(name, DIRECTORY, stat.S_IFDIR, dir_fd)


def read_at_most(fd: int, limit: int) -> bytes:
    """The file's bytes, but never more than `limit` + 1: one more than allowed
    tells that it is too big, whatever its size said."""
    chunks: list[bytes] = []
    left = limit + 1
    while left > 0:
        chunk = os.read(fd, min(left, CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def open_below(root: int, names: Names) -> int:
    """The regular file at `names` below the directory `root`, reached through
    real directories only; `NotRegular` (with `where`) when something on the way
    is not one."""
    folder = root
    try:
        for depth, name in enumerate(names[:-1]):
            try:
                inner = open_directory(name, folder)
            except NotRegular as wrong:
                raise NotRegular(wrong.kind, "/".join(names[: depth + 1])) from None
            if folder != root:
                os.close(folder)
            folder = inner
        return open_file(names[-1], folder)
    finally:
        if folder != root:
            os.close(folder)


def globbed(pattern: str) -> bool:
    return any(c in pattern for c in MAGIC)


def names_of(path: str) -> Names:
    """A relative path name by name; nothing for one that could lead out (absolute, or with `..`)."""
    parts = PurePosixPath(path).parts
    return () if path.startswith("/") or ".." in parts else parts


@dataclass(frozen=True)
class Matches:
    """What a glob matches: the regular files, and the entries it neither reads
    nor enters (links, FIFOs, devices, sockets; a link a part of the pattern names
    where it would go into a directory, followed by the rest of the pattern), so
    that they can be reported rather than lost. `**` goes into real directories
    only and reports no link on its way: it cannot tell one to a directory from
    one to a file without following it."""

    files: list[Names]
    unread: list[Names]


@dataclass(frozen=True)
class Found:
    """What a glob has matched so far; sets, as `**` can reach an entry twice."""

    files: set[Names]
    unread: set[Names]


def glob(root: int, pattern: str) -> Matches:
    """What `pattern` matches below the directory `root`, as `Path.glob` would match
    it (`**` for any directories), sorted; without entering a link, so nothing
    outside is even listed."""
    found = Found(set(), set())
    parts = names_of(pattern)
    if parts:
        _expand(root, parts, (), found)
    return Matches(sorted(found.files), sorted(found.unread))


def _expand(folder: int, parts: Names, at: Names, found: Found) -> None:
    """Add the matches of `parts` in the directory `folder` (which is `at`) to `found`."""
    head, rest = parts[0], parts[1:]
    if head == "**":
        if not rest:
            return  # a last `**` matches directories only, never a file
        _expand(folder, rest, at, found)
        for name in _entries(folder, lambda entry: entry.is_dir(follow_symlinks=False)):
            _descend(folder, name, parts, at, found)
        return
    for name in _matching(folder, head):
        if rest:
            _descend(folder, name, rest, at, found)
            continue
        mode = _mode(folder, name)
        if mode is None or stat.S_ISDIR(mode):
            continue
        (found.files if stat.S_ISREG(mode) else found.unread).add((*at, name))


def _matching(folder: int, part: str) -> list[str]:
    """The names in `folder` that one part of a pattern matches."""
    if not globbed(part):
        return [part]
    return _entries(folder, lambda entry: fnmatch.fnmatchcase(entry.name, part))


def _entries(folder: int, wanted: Callable[[os.DirEntry[str]], bool]) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return [entry.name for entry in entries if wanted(entry)]
    except OSError:
        return []


def _mode(folder: int, name: str) -> int | None:
    """The mode of `name` itself (not of what a link points to); None when it is not there."""
    try:
        return os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode
    except OSError:
        return None


def _descend(folder: int, name: str, parts: Names, at: Names, found: Found) -> None:
    """Go on matching in the subdirectory `name`, if it is a real directory not too
    deep; a link is not entered but kept, with the rest of the pattern, as unread."""
    if len(at) >= MAX_DEPTH:
        return
    mode = _mode(folder, name)
    if mode is not None and stat.S_ISLNK(mode):
        found.unread.add((*at, name, *parts))
        return
    try:
        inner = open_directory(name, folder)
    except (OSError, NotRegular):
        return
    try:
        _expand(inner, parts, (*at, name), found)
    finally:
        os.close(inner)
