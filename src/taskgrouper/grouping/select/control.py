"""What a caller asks of a long selection: a time limit, a gap to stop at, progress reports.

:class:`_Control` holds, for the budget being solved, its deadline, the relative gap at which
the proof may stop, the best selection found so far and the best lower bound proved, and hands
:class:`Progress` reports to a callback: at each step of the solve, and every
``interval`` seconds from a heartbeat thread while a long MILP runs (HiGHS releases the GIL,
so the thread keeps its pace). The solver reads ``remaining()`` and ``stop_at(value, lower)``;
select_many reads the incumbent when Ctrl-C strikes (:mod:`~taskgrouper.grouping.select`).

Standard library only.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Progress"]

#: Seconds between heartbeat reports while a budget is being solved.
HEARTBEAT_S = 2.0


@dataclass(frozen=True)
class Progress:
    """One report on the budget being solved.

    Attributes:
        budget: The budget.
        stage: What the solver is doing (``"incumbent"``, ``"lp bound"``, ``"core milp"``,
            ``"milp"``, ``"ties"``, ``"done"``, ``"working"`` from the heartbeat).
        incumbent: Objective of the best selection found so far (None before the first).
        bound: Best lower bound on the optimum proved so far (None before the first).
        seconds: Seconds since this budget's solve began.
    """

    budget: float
    stage: str
    incumbent: float | None
    bound: float | None
    seconds: float

    @property
    def gap(self) -> float | None:
        """``(incumbent - bound) / |bound|``, the relative gap; None without both."""
        if self.incumbent is None or self.bound is None:
            return None
        return max(0.0, self.incumbent - self.bound) / max(abs(self.bound), 1e-12)

    def line(self) -> str:
        """The report as one terminal line."""
        inc = "-" if self.incumbent is None else f"{self.incumbent:.6g}"
        bound = "-" if self.bound is None else f"{self.bound:.6g}"
        gap = "-" if self.gap is None else f"{100 * self.gap:.3g}%"
        return (f"budget {self.budget:g}: {self.stage}, incumbent {inc}, bound {bound}, "
                f"gap {gap}, {self.seconds:.1f} s")


class _Control:
    """Limits and reports for one ``select_many`` call (one budget at a time).

    Args:
        time_limit: Seconds each budget may take (None: no limit).
        gap: Relative gap at which a proof may stop (0: prove optimality).
        progress: Called with a :class:`Progress` at each step and every ``interval``
            seconds while a budget is solved (None: no reports, no thread).
        interval: Heartbeat period in seconds.
    """

    def __init__(self, time_limit: float | None = None, gap: float = 0.0,
                 progress: Callable[[Progress], None] | None = None,
                 interval: float = HEARTBEAT_S) -> None:
        self.time_limit = time_limit
        self.gap = float(gap)
        self.progress = progress
        self.interval = interval
        self.budget = math.nan
        self.start = time.monotonic()
        self.incumbent: list[int] | None = None
        self.value: float | None = None
        self.lower: float | None = None
        self.stage = "idle"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one budget -------------------------------------------------------------------------
    def begin(self, budget: float) -> None:
        """Start the clock of ``budget`` (and the heartbeat, when reporting)."""
        with self._lock:
            self.budget, self.start = float(budget), time.monotonic()
            self.incumbent, self.value, self.lower, self.stage = None, None, None, "start"
        if self.progress is not None and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._beat, name="taskgrouper-select",
                                            daemon=True)
            self._thread.start()

    def end(self) -> None:
        """Stop the heartbeat (the next ``begin`` restarts it); safe to call again."""
        self._stop.set()
        thread, self._thread = self._thread, None
        # A start cut short by Ctrl-C leaves a thread that may never have started: it sees
        # the stop flag if it does, and cannot be joined if it did not.
        if thread is not None and thread.ident is not None and (
                thread is not threading.current_thread()):
            thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            self.report("working", heartbeat=True)

    # -- what the solver tells and asks -----------------------------------------------------
    def found(self, idx: Sequence[int], value: float, stage: str) -> None:
        """A selection of objective ``value`` was found (kept when it is the best)."""
        with self._lock:
            if self.value is None or value < self.value:
                self.incumbent, self.value = sorted(int(i) for i in idx), float(value)
        self.report(stage)

    def bound(self, lower: float | None, stage: str) -> None:
        """A lower bound on this budget's optimum was proved (kept when it is the best)."""
        if lower is not None and math.isfinite(lower):
            with self._lock:
                self.lower = float(lower) if self.lower is None else max(self.lower, lower)
        self.report(stage)

    def remaining(self) -> float | None:
        """Seconds left for this budget (None: no limit; never below 0)."""
        if self.time_limit is None:
            return None
        return max(0.0, self.time_limit - (time.monotonic() - self.start))

    def out_of_time(self) -> bool:
        left = self.remaining()
        return left is not None and left <= 0.0

    def close_enough(self, value: float, lower: float) -> bool:
        """May the proof stop: is ``value`` within the requested gap of ``lower``?"""
        return self.gap > 0 and max(0.0, value - lower) <= self.gap * max(abs(lower), 1e-12)

    def report(self, stage: str, heartbeat: bool = False) -> None:
        if self.progress is None:
            return
        with self._lock:
            if not heartbeat:
                self.stage = stage
            state = Progress(self.budget, self.stage if heartbeat else stage, self.value,
                             self.lower, time.monotonic() - self.start)
        self.progress(state)
