"""Job benchmark: each analytics job's run on a dataset, after new data and again on unchanged inputs.

Issue 16's targets: the cluster job <= 5 s and the early-warning job <= 2 s on the 1M-person city, and
no rerun when the inputs are unchanged, at start-up included. The dataset (``--dataset demo``:
var/bench/demo, or ``--dataset scale``: the city bench/scale.py loaded; both have had every job run
once, see bench/pages.py) is copied to a temporary folder so the served copy is never touched, and
each phase runs in a fresh process (a start-up has no warm caches):

* ``catch_up``: every registered job once, in the scheduler's order, on the copy as it is (the dataset's
  stored results may come from older code: a job whose computation changed since recomputes here).
* ``startup``: a new process runs every job again. The inputs have not changed since the jobs last ran,
  so each should say "unchanged" and take little time.
* ``new_case``: one counted case arrives (through the real file ingest: a one-row cases file, the
  newest report day, at the newest case's place), then every job runs: the timings of a real rerun,
  the first after a start (per-area results whose inputs did not change are read back from what the
  job stored with their input digests, jobs.ew_reuse).
* ``second_case``: another case arrives in the same process: what a running server pays for each
  new report once it has computed once (per-area results it can reuse are remembered, jobs.memo).
* ``again``: the same process runs every job once more: unchanged again.

One JSON line per job and phase: dataset, job, phase, status the job returned, seconds, and the
target where the issue gives one (the ceiling is the baseline of the same run: ``over_target``).

Run: ``python bench/jobs.py [--dataset demo|scale] [--folder var/bench/scale-...]``.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_S = {"clusters": 5.0, "early_warning": 2.0}  # issue 16, on the 1M-person city
DEFAULT_SCALE = ROOT / "var" / "bench" / "scale-p1000000-d365-r10000000"


def _bench_module(name: str):
    # bench/ is no package, and its pages.py would hide the app's pages package on sys.path.
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dataset_settings(dataset: str, folder: Path):
    pages = _bench_module("pages")
    return pages.demo_dataset() if dataset == "demo" else pages.scale_dataset(folder)


def copy_settings(settings, into: Path):
    """The dataset's settings with its database (and the audit chain's head beside it) copied into ``into``."""
    db = settings.path(settings.store.path)
    for part in db.parent.glob(db.name + "*"):
        shutil.copy2(part, into / part.name)
    return settings.with_overrides(store=settings.store.model_copy(update={"path": into / db.name}),
                                   mqtt=settings.mqtt.model_copy(update={"mode": "off"}))


def _jobs(store, settings):
    from jobs.scheduler import registered_jobs, registered_sensor_jobs, today_in
    today = today_in(settings.city.timezone)
    found = [(name, run) for name, run, _section in registered_jobs()]
    found += [(name, run) for name, run, _key, _lane in registered_sensor_jobs()]
    return [(name, (lambda run=run: run(store, settings, today))) for name, run in found]


def _new_case(store, settings, folder: Path) -> None:
    """One counted case on the newest report day, at the newest counted case's place, through the file ingest."""
    import pandas as pd

    from demo.files import write_records_csv
    from ingest.context import ContextProvider
    from ingest.files import FileIngestor
    newest = store.read("SELECT reported_date, lat, lng FROM cases WHERE status <> 'suspected' AND lat IS NOT NULL "
                        "ORDER BY reported_date DESC, case_id LIMIT 1").iloc[0]
    path = folder / "cases-bench-new.csv"
    write_records_csv(path, "case", pd.DataFrame({
        "case_id": [f"BENCH-{time.time_ns()}"], "reported_date": [newest["reported_date"]],
        "onset_date": [newest["reported_date"]], "lat": [newest["lat"]], "lng": [newest["lng"]],
        "status": ["confirmed"], "severity": ["mild"], "age_band": ["30-39"], "imported": [False]}))
    result = FileIngestor(store, ContextProvider(store, settings), batch_rows=settings.ingest.batch_max_rows) \
        .ingest_file(path)
    if result.error or result.result.accepted != 1:
        raise SystemExit(f"the bench's new case was not stored: {result.error or result.result}")
    store.flush()


def phase(dataset: str, folder: Path, copy: Path, which: str) -> None:
    """One phase in this process (see the module docstring); prints its JSON lines."""
    from store import Store
    settings = dataset_settings(dataset, folder)
    settings = settings.with_overrides(store=settings.store.model_copy(update={"path": copy}),
                                       mqtt=settings.mqtt.model_copy(update={"mode": "off"}))
    with Store(copy, queue_size=settings.store.queue_size) as store:
        rounds = [which] if which in ("catch_up", "startup") else ["new_case", "second_case", "again"]
        for name in rounds:
            if name in ("new_case", "second_case"):
                _new_case(store, settings, copy.parent)
            for job, run in _jobs(store, settings):
                t0 = time.perf_counter()
                summary = run() or {}
                store.flush()
                seconds = time.perf_counter() - t0
                line = {"bench": "jobs", "dataset": dataset, "job": job, "phase": name,
                        "status": summary.get("status"), "seconds": round(seconds, 3)}
                if job in TARGET_S:
                    line |= {"target_s": TARGET_S[job], "over_target": seconds > TARGET_S[job]}
                print(json.dumps(line), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=("demo", "scale"), default="demo")
    ap.add_argument("--folder", type=Path, default=DEFAULT_SCALE, help="the scale dataset (bench/scale.py's output)")
    ap.add_argument("--phase", choices=("catch_up", "startup", "new_case"), help=argparse.SUPPRESS)  # a child
    ap.add_argument("--copy", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        phase(args.dataset, args.folder, args.copy, args.phase)
        return
    settings = dataset_settings(args.dataset, args.folder)
    with tempfile.TemporaryDirectory(prefix="pheoc-bench-jobs-") as tmp:
        copied = copy_settings(settings, Path(tmp))
        for which in ("catch_up", "startup", "new_case"):
            subprocess.run([sys.executable, __file__, "--dataset", args.dataset, "--folder", str(args.folder),
                            "--phase", which, "--copy", str(copied.path(copied.store.path))], check=True)


if __name__ == "__main__":
    main()
