"""Work done in a forked second process while this one goes on (`Background`): the
matcher's identifier keys, sync's field checks and duplicates, an import's change log and deal
titles, the mirror's stage history. Each caller says from how many records it pays."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing import get_context
from typing import Any


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector paused for a big job: an import of 100k rows makes
    millions of objects (cells, records, their JSON) and next to no reference cycles, yet the
    collector's full passes over them took a tenth of its time (1.3 s of 12). Whatever cycles
    there are go at the first pass after it. A second process forked meanwhile inherits the
    pause."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Background:
    """`func(*args)` computed in a forked child process while this one goes on with other
    work: the inputs are shared by the fork (never copied or pickled), the result comes back
    pickled through a pipe. On Linux only, from `start_from` records (`size`) and with a
    second core; elsewhere (Windows, macOS, inside Excel), or if the child fails, computed here
    when the result is asked for. Use it in a `with` block, which ends the child.

    With `then`, the child keeps what `func` made instead of sending it, and waits: `finish(m)`
    has it compute `then(made, m)` and send that back (an import's change log is made and
    staged in the history while the workbook is written, then committed with the written
    file's hash). Left without `finish`, the child is ended and `then` never runs."""

    def __init__(self, size: int, func: Any, *args: Any, start_from: int,
                 then: Any = None) -> None:
        self.func, self.args, self.then = func, args, then
        self.process: Any = None
        self._done, self._value = False, None
        if size >= start_from and (os.cpu_count() or 1) > 1 and sys.platform == "linux":
            context = get_context("fork")
            self.receive, send = context.Pipe(duplex=then is not None)
            # frozen objects are never scanned by the collector, so the child does not
            # touch (and copy) every page of this process the first time it collects
            gc.freeze()
            self.process = context.Process(target=_send_result,
                                           args=(send, func, args, then), daemon=True)
            try:
                self.process.start()
            except OSError:  # no fork (out of memory, a process limit): all of it here
                self.process = None
                self.receive.close()
                gc.unfreeze()
            send.close()

    def result(self) -> Any:
        """The value (computed once; asking again gives the same value)."""
        if not self._done:
            self._value = self._compute()
            self._done = True
        return self._value

    def finish(self, message: Any) -> Any:
        """`then(func(*args), message)`, computed by the child (or here: see the class)."""
        assert self.then is not None and not self._done
        if self.process is not None:
            try:
                self.receive.send(message)
                status, value = self.receive.recv()
            except (EOFError, OSError):  # the child died (killed, out of memory)
                status, value = "failed", None
            self._close()
            if status == "ok":
                self._done, self._value = True, value
                return value
        self._done, self._value = True, self.then(self.func(*self.args), message)
        return self._value

    def _compute(self) -> Any:
        assert self.then is None, "finish() a Background with `then`"
        if self.process is not None:
            try:
                status, value = self.receive.recv()
            except (EOFError, OSError):  # the child died (killed, out of memory)
                status, value = "failed", None
            self._close()
            if status == "ok":
                return value
        return self.func(*self.args)  # here, or again here after the child failed

    def _close(self) -> None:
        if self.process.is_alive():  # left early (an error here): not wanted any more
            self.process.kill()
        self.receive.close()
        self.process.join()
        self.process = None
        gc.unfreeze()

    def __enter__(self) -> Background:
        return self

    def __exit__(self, *_: object) -> None:
        if self.process is not None:
            self._close()


def _send_result(send: Any, func: Any, args: tuple[Any, ...], then: Any) -> None:
    try:
        result = ("ok", func(*args))
        if then is not None:
            result = ("ok", then(result[1], send.recv()))
    except Exception:  # noqa: BLE001 - the parent computes it again and sees the error
        result = ("failed", None)
    send.send(result)
    send.close()
