"""Per-stage wall-clock timing of one turn (the `timings_ms` of a `TurnResult`)."""

from __future__ import annotations

import time


class StageClock:
    """Laps named stages; `total()` adds the whole turn."""

    def __init__(self) -> None:
        self.t0 = self.last = time.perf_counter()
        self.ms: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.ms[name] = self.ms.get(name, 0.0) + (now - self.last) * 1000
        self.last = now

    def total(self) -> dict[str, float]:
        self.ms["total"] = (time.perf_counter() - self.t0) * 1000
        return self.ms
