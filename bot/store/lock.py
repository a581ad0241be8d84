"""One process per SQLite file: an OS lock beside the database.

`<db>.lock` is held with `flock` for the life of the process (and of the
children it hands the descriptor to), and names the pid that holds it. The
kernel lets go of the lock when the last holder dies, however it dies, so a
lock file left by a killed process never blocks a restart. The file itself
stays: deleting it would let a starting process lock a file nobody else can
see any more.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from bot.config import StorageConfig


class StoreInUse(Exception):
    """Another wagate process holds the database."""

    def __init__(self, db: str, pid: int | None) -> None:
        self.db = db
        self.pid = pid
        holder = f"wagate pid {pid}" if pid else "another wagate process"
        super().__init__(f"{db} is in use by {holder} (SQLite allows one process; use "
                         "PostgreSQL to run several)")


class StoreLock:
    """The held lock; `fd` stays open (and locked) until `release` or exit."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def acquire(cls, db: str) -> StoreLock:
        """Lock `db` for this process or raise StoreInUse, before the store is
        opened: a refused process reads nothing and writes nothing but the lock
        file's own descriptor."""
        path = Path(f"{db}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise StoreInUse(db, pid) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the last descriptor lets go of the lock
            self.fd = -1


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None  # the holder has not written it yet


def lock_for(storage: StorageConfig) -> StoreLock | None:
    """The lock a store needs: SQLite's file lock; none for a database server."""
    if not storage.url.startswith("sqlite:"):
        return None
    return StoreLock.acquire(storage.sqlite_path)
