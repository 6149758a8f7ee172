"""Numbered progress lines for multi-stage runs, with each stage's wall-clock seconds."""

import contextlib
import time


class StageTimer:
    """Prints `[i/n] title ...` as a stage starts and `done in s` as it ends, and records the seconds.

    Args:
      progress: called with one line of text.
      total: how many stages the run has.

    Examples:
      >>> timer = StageTimer(print, total=2)
      >>> with timer.step("Training"):
      ...     model.fit(x, y)
      >>> timer.seconds["Training"]
    """

    def __init__(self, progress, total: int):
        self._progress, self._total, self._number = progress, total, 0
        self.seconds = {}

    @contextlib.contextmanager
    def step(self, title: str, key: str = None):
        """Times one stage."""
        self._number += 1
        self._progress(f"[{self._number}/{self._total}] {title} ...")
        start = time.perf_counter()
        yield
        self.seconds[key or title] = round(time.perf_counter() - start, 2)
        self._progress(f"{' ' * 6}done in {self.seconds[key or title]:.1f} s")
