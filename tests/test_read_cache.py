"""The pages' caches: a read model's answer is shared only between equal privacy views and one data
version, is audited again when served from the cache, and a figure is rebuilt when its inputs change."""
from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd

from auth.ledger import note_release, start_ledger, take_releases
from auth.principal import principal_for
from components.figcache import cached_component, cached_figure
from services.read_cache import cached_read, data_version
from store import Store
from store import queries_indicators as qi


def _counting_read(calls: list, principal):
    def compute():
        calls.append(principal.user)
        note_release("overview.case_cells", "cells", 7)  # as services.privacy.disclose does
        return {"for": principal.role, "n": len(calls)}
    return compute


def test_a_cached_read_is_shared_by_equal_views_only_and_audited_each_time(tmp_path):
    with Store(tmp_path / "cache.duckdb") as store:
        calls: list = []
        ann, bob = principal_for("ann", "operator"), principal_for("bob", "operator")
        police = principal_for("pc", "police", ("p-1",))
        other_precinct = principal_for("pd", "police", ("p-2",))

        start_ledger()
        first = cached_read(store, ann, "t.view", ("citywide",), _counting_read(calls, ann), with_readings=False)
        assert take_releases()[0].rows == 7
        start_ledger()
        again = cached_read(store, bob, "t.view", ("citywide",), _counting_read(calls, bob), with_readings=False)
        assert again is first and calls == ["ann"]  # two operators see the same figures
        assert [(r.resource, r.rows) for r in take_releases()] == [("overview.case_cells", 7)]  # audited again

        # Another view (police, each precinct scope), another question: computed for itself.
        cached_read(store, police, "t.view", ("citywide",), _counting_read(calls, police), with_readings=False)
        cached_read(store, other_precinct, "t.view", ("citywide",), _counting_read(calls, other_precinct), with_readings=False)
        cached_read(store, ann, "t.view", ("area-1",), _counting_read(calls, ann), with_readings=False)
        assert calls == ["ann", "pc", "pd", "ann"]

        # A job's run is a new data version: the next read computes again.
        before = data_version(store)
        store.submit(lambda con: qi.save_job_run_in(con, "indicators", None, datetime.now(timezone.utc), "f", "1",
                                                    {}, 0.1, {})).result()
        assert data_version(store) != before
        cached_read(store, ann, "t.view", ("citywide",), _counting_read(calls, ann), with_readings=False)
        assert calls[-1] == "ann" and len(calls) == 5


def test_a_batch_of_readings_is_news_only_to_read_models_that_read_readings(tmp_path):
    """A live city's readings arrive every second: they make the sensor views compute again, not the
    others (which read what the jobs made of them); a batch of cases is news to every read model."""
    from ingest.batch import BatchBuilder
    from ingest.context import ContextProvider
    from settings import Settings

    settings = Settings.model_validate({"city": {"name": "Cache", "slug": "cache"}})
    with Store(tmp_path / "versions.duckdb") as store:
        contexts = ContextProvider(store, settings)

        def ingest(kind: str, record: dict) -> None:
            builder = BatchBuilder("test", "mqtt")
            assert builder.add(kind, record, b"{}", contexts.get())
            store.write_batch(builder.build()).result()
            contexts.invalidate()

        ingest("sensor", {"sensor_id": "ww-1", "kind": "wastewater", "lat": 2.93, "lng": 101.72})
        calls: list = []
        ann = principal_for("ann", "operator")

        def read_both():
            return (cached_read(store, ann, "t.cases", (), _counting_read(calls, ann), with_readings=False),
                    cached_read(store, ann, "t.sensors", (), _counting_read(calls, ann), with_readings=True))

        read_both()
        assert len(calls) == 2
        ingest("reading", {"sensor_id": "ww-1", "seq": 1, "ts": "2026-11-30T08:00:00+08:00",
                           "metric": "copies_per_l", "value": 12.5})
        read_both()
        assert len(calls) == 3, "a reading batch recomputed a read model that does not read readings"
        ingest("case", {"case_id": "c-1", "reported_date": "2026-11-30", "status": "confirmed",
                        "lat": 2.93, "lng": 101.72})
        read_both()
        assert len(calls) == 5, "a case batch must be news to every read model"


def test_a_figure_is_rebuilt_only_when_its_inputs_change():
    built: list = []

    def chart(frame: pd.DataFrame, *, title: str) -> dict:
        built.append(title)
        return {"data": [{"type": "bar", "y": frame["v"].tolist()}], "layout": {"title": title}}

    a = pd.DataFrame({"v": [1, 2, 3]})
    first = cached_figure(chart, a, title="t")
    assert cached_figure(chart, a.copy(), title="t") is first and built == ["t"]
    changed = cached_figure(chart, pd.DataFrame({"v": [1, 2, 4]}), title="t")
    assert changed["data"][0]["y"] == [1, 2, 4] and len(built) == 2
    cached_figure(chart, a, title="other")
    assert len(built) == 3
    # Components go through the same cache, unconverted.
    assert cached_component(lambda rows: [str(r) for r in rows], [1, 2]) == ["1", "2"]
