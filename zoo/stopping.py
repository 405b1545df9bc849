"""A run stopped by a signal says so, in one line: which signal, the last complete checkpoint,
and the command that resumes it.

Without this, SIGTERM (a scheduler, ``kill``) ended ``zoo finetune`` silently at its last epoch
line, and Ctrl-C with a KeyboardInterrupt traceback. :func:`reporting_stops` installs a handler
for SIGINT and SIGTERM around a run that raises :class:`Stop`, a ``BaseException`` like
KeyboardInterrupt, so no ``except Exception`` in the pipeline swallows it and every ``finally``
(locks, temp files, a half-written checkpoint's temp) runs as the stack unwinds. The run's
files are all written atomically, so what the run folder holds is what a resume starts from:
:func:`zoo.train.folders.stopped_run` reads it (``checkpoints/epoch-NNNN.pt``) to say where that is. The stop
leaves as :class:`Interrupted`, whose exit code is the shell's for the signal (130 for SIGINT,
143 for SIGTERM). The trainer itself knows nothing of signals.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from zoo.errors import ZooError

__all__ = ["Stop", "Interrupted", "reporting_stops", "SIGNALS"]

#: The signals that stop a run politely: Ctrl-C, and what schedulers and ``kill`` send.
SIGNALS = (signal.SIGINT, signal.SIGTERM)
_DEFAULTS = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}


class Stop(BaseException):
    """Raised in the main thread by the handler when ``signum`` arrives (not a ZooError: it must
    pass every ``except Exception`` on its way out)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Interrupted(ZooError):
    """The run was stopped by a signal; the message says where it stopped and how to resume.
    An empty message: another process (rank 0 of a distributed run) says it."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum  # as a shell reports a process the signal ended


@contextmanager
def reporting_stops(describe: Callable[[str], str]) -> Iterator[None]:
    """Turn SIGINT and SIGTERM during the block into :class:`Interrupted` with the message
    ``describe(SIGNAL_NAME)`` (read after the stack unwound: the run folder is final by then).

    Handlers are installed only from the main thread, and only over Python's defaults: a program
    that handles these signals itself keeps its handlers. The first signal stops the block; the
    ones after it are ignored while the stack unwinds, which takes moments: Ctrl-C reaches every
    process of a distributed run, and torch's launcher then sends each rank SIGTERM too, which
    would otherwise kill rank 0 before it says where the run stopped."""
    installable = threading.current_thread() is threading.main_thread()
    previous = {s: signal.getsignal(s) for s in SIGNALS} if installable else {}
    ours = [s for s, handler in previous.items() if handler is _DEFAULTS[s]]

    def stop(signum: int, frame: object) -> None:
        for s in ours:
            signal.signal(s, signal.SIG_IGN)
        raise Stop(signum)

    for s in ours:
        signal.signal(s, stop)
    try:
        yield
    except Stop as stopped:
        raise Interrupted(describe(stopped.args[0]), stopped.signum) from None
    finally:
        for s in ours:
            signal.signal(s, previous[s])
