"""The trainer's user-facing errors. The CLI turns every ``GraphproError`` into one line on stderr
and exit code 2 (the traceback goes to ``OUT/log.txt``); anything else is a bug in graphpro.

They derive from ``ValueError`` where library callers already catch that.
"""

from __future__ import annotations

__all__ = ["GraphproError", "DataError", "ConfigError", "RunDirError", "CheckpointError",
           "TrainingDiverged", "ResourceError", "Stopped", "shorten"]


class GraphproError(Exception):
    """Something the user can fix: bad data, flags, output folder or checkpoints."""


class DataError(GraphproError, ValueError):
    """Malformed input; the message starts with ``file:line:`` when a line is to blame."""


class ConfigError(GraphproError, ValueError):
    """Flags that make no sense, or that contradict the checkpoints being resumed."""


class RunDirError(GraphproError):
    """The output folder cannot be used: a previous run there, another writer, not writable."""


class CheckpointError(GraphproError):
    """A checkpoint that cannot be read or holds non-finite values."""


class TrainingDiverged(GraphproError):
    """The training loss became NaN or infinite."""


class ResourceError(GraphproError):
    """The run would need more memory than is available (or allowed by ``--max-memory``)."""


class Stopped(Exception):
    """A stop signal (SIGTERM) honoured at an epoch's end, after its checkpoint: not an error,
    the run resumes from there. The CLI exits 128 + ``signum``."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


def shorten(text: str, limit: int = 300) -> str:
    """First line of ``text``, at most ``limit`` characters: messages stay one short line even
    when a library error quotes a whole buffer."""
    first = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return first if len(first) <= limit else first[: limit - 3] + "..."
