"""The config file on disk: atomic 0600 writes, a lock across threads and processes, broken files kept.

``config`` decides what the file means; this module only reads, locks and writes it. Two ComfyUI
processes (or a script beside ComfyUI) may write at once, so every read-modify-write holds an
exclusive lock; a file that cannot be parsed is never overwritten unseen: it is moved aside first.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

try:
    import fcntl
except ImportError:  # Windows: msvcrt, best effort
    fcntl = None
    import msvcrt

log = logging.getLogger("3dlabs")
_thread_lock = threading.RLock()


def read_config_file(path: Path) -> dict:
    """The config file as a dict; a missing or broken file reads as empty (logged, never raised)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("3DLabs: cannot read %s (%s); using defaults", path, type(exc).__name__)
        return {}
    return data if isinstance(data, dict) else {}


def write_config_file(data: dict, path: Path) -> None:
    """Write atomically, in a 0700 folder, with mode 0600 (mkstemp's): the file can hold a token."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with suppress(OSError):
        os.chmod(path.parent, 0o700)
    fd, tmp = tempfile.mkstemp(prefix=".config-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def _lock_posix(folder: Path, lock_file: Path) -> int:
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return fd
        except OSError:
            os.close(fd)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _lock_windows(lock_file: Path) -> int | None:
    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    for _ in range(200):  # LK_LOCK itself gives up after 10 s; keep trying a little longer
        with suppress(OSError):
            msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
            return fd
        time.sleep(0.05)
    log.warning("3DLabs: could not lock %s; writing the config without the lock", lock_file)
    return fd


def free_name(path: Path, suffix: str) -> Path:
    """``path`` + ``suffix``, or with ``-2``, ``-3``... after it: a file moved aside never overwrites one."""
    target, n = path.with_name(path.name + suffix), 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}{suffix}-{n}")
    return target


def _read_for_update(path: Path) -> tuple[dict, Path | None]:
    """The file's data for a rewrite; a broken file is kept aside (never overwritten unseen)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}, None
    except OSError as exc:
        raise ConfigError(f"Cannot read {path} ({exc.strerror or type(exc).__name__}); nothing was written") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError:
        data = None
    if isinstance(data, dict):
        return data, None
    aside = free_name(path, f".corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(path, aside)
    with suppress(OSError):
        os.chmod(aside, 0o600)
    log.warning("3DLabs: the config file %s could not be read (not a JSON object); it was kept as %s and a new "
                "one written. Profiles in it are not in the new file: copy them back from %s if needed.",
                path, aside.name, aside.name)
    return {}, aside


@dataclass(frozen=True)
class ConfigWrite:
    path: Path
    set_aside: Path | None = None  # where an unreadable old file was kept, if there was one

    def notice(self) -> str | None:
        if self.set_aside is None:
            return None
        return (f"The config file could not be read, so it was kept as {self.set_aside.name} beside the new one; "
                "other profiles in it were not carried over.")


def modify_config(mutate: Callable[[dict], None], path: Path) -> ConfigWrite:
    """Read, change with ``mutate(data)`` and write the file, under a lock across threads and processes.

    The lock is taken on the config's folder (no extra file to leave behind), or on a ``.lock``
    file beside the config where the folder cannot be locked; on Windows, best effort with msvcrt.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_file = path.with_name(path.name + ".lock")
    with _thread_lock:
        fd = _lock_posix(path.parent, lock_file) if fcntl else _lock_windows(lock_file)
        try:
            data, aside = _read_for_update(path)
            mutate(data)
            write_config_file(data, path)
        finally:
            if fd is not None:
                with suppress(OSError):
                    if fcntl:
                        fcntl.flock(fd, fcntl.LOCK_UN)
                    else:
                        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
                os.close(fd)
    return ConfigWrite(path, aside)
