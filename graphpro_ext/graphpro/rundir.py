"""The output folder of a run: usable, exclusively ours while we write, and never emptied
without being asked.

A run takes an exclusive ``flock`` on ``OUT/.graphpro.lock`` for its whole life: the kernel
releases it on any exit, a crash included, so a lock is never stale; a second writer is refused.
A fresh run (no ``--resume``) refuses an OUT that holds a previous run unless ``--overwrite``
is given, and even then deletes it only after its own input has been validated.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import re
import shutil
import socket
import sys

from .checkpoint import CKPT_DIR
from .serving import MODEL_DIR
from .errors import RunDirError

__all__ = ["RunDir", "ensure_folder"]

LOCK_NAME = ".graphpro.lock"
# What a previous run leaves behind (checkpoints, reports, the id map of a --table run).
RUN_OUTPUTS = (CKPT_DIR, MODEL_DIR, "results.json", "results.md", "recall_per_stage.png",
               "id_map.json")
_TMP = re.compile(r".*\.tmp\d*$")


def ensure_folder(out: str) -> None:
    """Create ``out`` if needed; one clear error when it is a file or not writable."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunDirError(f"--out {out}: is a file, not a folder")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise RunDirError(f"--out {out}: cannot create it ({e.strerror or e})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise RunDirError(f"--out {out}: not writable")


class RunDir:
    """``with RunDir(out) as rd:`` holds the lock on ``out`` for the block."""

    def __init__(self, out: str):
        self.out = out
        self._fd: int | None = None

    def __enter__(self) -> RunDir:
        ensure_folder(self.out)
        path = os.path.join(self.out, LOCK_NAME)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise RunDirError(f"--out {self.out}: cannot write ({e.strerror or e})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 512).decode("utf-8", "replace").strip() or "unknown process"
            os.close(fd)
            raise RunDirError(f"--out {self.out}: in use by another graphpro run ({holder}); "
                              "wait for it to finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, (f"pid {os.getpid()} on {socket.gethostname()}, since "
                      f"{datetime.datetime.now().isoformat(timespec='seconds')}: "
                      f"{' '.join(sys.argv)[:200]}").encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None

    def previous_run(self) -> list[str]:
        """The outputs of an earlier run found in OUT."""
        found = []
        for name in RUN_OUTPUTS:
            p = os.path.join(self.out, name)
            if os.path.isdir(p) and os.listdir(p) or os.path.isfile(p):
                found.append(name)
        return found

    def refuse_previous_run(self) -> None:
        found = self.previous_run()
        if found:
            raise RunDirError(f"--out {self.out}: holds a previous run ({', '.join(found)}); "
                              "continue it with --resume, replace it with --overwrite, or "
                              "choose another --out")

    def remove_previous_run(self) -> list[str]:
        """``--overwrite``: delete the previous run's outputs (only those, never other files)."""
        found = self.previous_run()
        for name in found:
            p = os.path.join(self.out, name)
            if os.path.isdir(p):
                shutil.rmtree(p)
            else:
                os.remove(p)
        return found

    def clean_temporaries(self) -> int:
        """Remove the temp files our own interrupted atomic writes left (``<output>.tmp<pid>``
        in OUT and under OUT/ckpt); other files are never touched. Safe because we hold the lock:
        no other writer can own them."""
        n = 0
        ours = tuple(f"{name}.tmp" for name in RUN_OUTPUTS)
        for root, _, files in os.walk(self.out):
            in_ckpt = os.path.relpath(root, self.out).split(os.sep)[0] in (CKPT_DIR, MODEL_DIR)
            for f in files:
                if _TMP.fullmatch(f) and (in_ckpt or f.startswith(ours)):
                    os.remove(os.path.join(root, f))
                    n += 1
        return n
