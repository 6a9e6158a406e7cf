"""Jittered exponential backoff."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Before retry ``n`` (1-based) sleep a uniformly random time in
    ``[0, min(max, initial * 2**(n-1))]`` seconds ("full jitter"), which spreads
    contending clients apart fastest."""

    initial: float = 0.01
    max: float = 1.0

    def delay(self, n: int) -> float:
        cap = min(self.max, self.initial * (2 ** min(n - 1, 32)))
        return random.uniform(0, max(cap, 0.0))
