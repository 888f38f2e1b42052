"""jobs.memo.digest: the key under which per-area results are remembered in the process and stored with
them (jobs.ew_reuse). It must see every change of a value and none of the last-bit noise of a parallel
aggregate, or an unchanged area would be computed again (or a changed one answered from the past)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from jobs import memo

DAYS = pd.date_range("2025-06-01", periods=5, freq="D", name="date")


@dataclass(frozen=True)
class Parameters:
    share: float
    lag: int


def test_digest_ignores_last_bit_noise_and_the_sign_of_zero_but_sees_every_change():
    frame = pd.DataFrame({"cases": [0.0, 1.0, 2.0, 3.0, 4.0], "rate": [0.1, 0.2, 0.3, np.nan, 0.5]}, index=DAYS)
    noisy = frame.copy()
    noisy["rate"] = noisy["rate"] + 1e-14
    noisy.loc[DAYS[0], "cases"] = -0.0
    assert memo.digest(frame) == memo.digest(noisy)
    changed = frame.copy()
    changed.loc[DAYS[4], "cases"] = 5.0
    assert memo.digest(frame) != memo.digest(changed)
    # The days are part of the inputs: the same values a day later are another series.
    assert memo.digest(frame) != memo.digest(frame.set_axis(DAYS + pd.Timedelta(days=1)))
    series = frame["rate"]
    assert memo.digest(series) == memo.digest(noisy["rate"]) != memo.digest(series.rename("other"))


def test_digest_rounds_the_floats_of_dataclasses_and_tells_parts_apart():
    assert memo.digest(Parameters(0.1 + 0.2, 3)) == memo.digest(Parameters(0.3, 3))
    assert memo.digest(Parameters(0.3, 3)) != memo.digest(Parameters(0.3, 4))
    assert memo.digest("a", "bc") != memo.digest("ab", "c")
    mixed = pd.DataFrame({"name": ["x", "y"], "value": [1.0, 2.0]})
    assert memo.digest(mixed) != memo.digest(mixed.assign(name=["x", "z"]))


def test_recall_and_keep():
    key = memo.digest("test_memo", 1)
    assert memo.recall("test_memo", key) is None
    assert memo.keep("test_memo", key, ("kept",)) == ("kept",)
    assert memo.recall("test_memo", key) == ("kept",)
    assert memo.remembered("test_memo", key, lambda: ("computed",)) == ("kept",)
