"""Progress of a long job, for whoever shows it (the command line's spinner on a terminal).

Jobs call `step("validate")`; nothing happens unless a caller installed a listener with
`listening(callback)`. The steps' texts are `xlcrm.messages` keys `step_<name>`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

Listener = Callable[[str, dict[str, Any]], None]
_listener: ContextVar[Listener | None] = ContextVar("xlcrm_progress", default=None)


def step(key: str, /, **params: Any) -> None:
    """Say that the job has reached step `key`."""
    listener = _listener.get()
    if listener is not None:
        listener(key, params)


@contextmanager
def listening(callback: Listener) -> Iterator[None]:
    token = _listener.set(callback)
    try:
        yield
    finally:
        _listener.reset(token)
