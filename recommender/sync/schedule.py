"""Running sync again and again: ``--every 15m`` until SIGTERM or SIGINT.

parse_duration(text)   "30s", "15m", "1h", "1d", "1h30m" -> seconds
stop_on_signals()      a stop flag that SIGTERM and SIGINT set (the run in progress ends)
run_every(job, ...)    job, then wait, until the flag is set
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from recommender.errors import IndexLockedError, InvalidArgumentError, StoreError

__all__ = ["parse_duration", "run_every", "stop_on_signals"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?[smhd])+")


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``30s``, ``15m``, ``1h``, ``1d`` or ``1h30m``."""
    value = text.strip().lower()
    if not _WHOLE.fullmatch(value):
        raise InvalidArgumentError(
            f"bad duration {text!r}; expected a number and a unit (s, m, h, d), e.g. 30s, "
            "15m, 1h or 1h30m",
            field="every",
        )
    seconds = sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(value))
    if seconds <= 0:
        raise InvalidArgumentError(f"bad duration {text!r}: must be above zero", field="every")
    return seconds


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """A flag SIGTERM and SIGINT set instead of ending the process; handlers restored after.

    The signal only sets the flag, so a run in progress finishes and its state is saved.
    """
    stop = threading.Event()

    def handle(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_every(
    job: Callable[[], None],
    every: float,
    stop: threading.Event,
    *,
    on_error: Callable[[Exception], None],
) -> None:
    """Call ``job`` every ``every`` seconds (start to start) until ``stop`` is set.

    A locked index or an unreachable vector engine skips one round (``on_error`` hears of
    it): both pass, and a daemon should not die of them. Other errors end the loop.
    """
    while not stop.is_set():
        started = time.monotonic()
        try:
            job()
        except (IndexLockedError, StoreError) as exc:
            on_error(exc)
        stop.wait(max(0.0, every - (time.monotonic() - started)))
