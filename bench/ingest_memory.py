"""File ingest memory benchmark: pheoc's streaming FileIngestor against reading the whole file first.

For each size, a readings CSV of about that many MB is generated into a temporary folder (and
deleted afterwards) and ingested into a fresh DuckDB file twice, each time in a fresh child
process so that the peak RSS belongs to that one ingest:

- ``streaming``: ``FileIngestor.ingest_file`` (SHA-256 and UTF-8 check in a first streaming read,
  then the CSV line by line in batches of ``--batch-rows``).
- ``naive`` (the baseline): what the file ingestor did before issue 11 — ``path.read_bytes()``,
  the SHA-256 of those bytes, ``list(csv.reader(...))`` of the decoded text into records, then the
  same validation and the same batched writes.
- ``parse_only``: the streaming read, parse and validation of ``streaming``, each batch built but
  not written: what the ingest side holds, apart from the store (DuckDB), which keeps some memory
  for every row it inserts.

Peak RSS is the kernel's count for the child (``wait4``'s ``ru_maxrss``); ``idle_rss_mb`` is the
child's RSS after imports and opening the store, before the file is touched. The naive child is
stopped if its RSS passes ``--naive-limit-mb`` (it grows with the file; other work shares this
machine): its line then says ``stopped_at_rss_mb``. Prints one JSON line per file.

Run: ``python bench/ingest_memory.py [--sizes 50,200,1000]`` (the 1 GB case takes several minutes).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SENSORS = 200
BATCH_ROWS = 5000
POLL_S = 0.2


# ---- the files ---------------------------------------------------------------------------------------
def write_sensors(path: Path) -> None:
    with path.open("w") as f:
        f.write("sensor_id,kind,name,lat,lng\n")
        for i in range(SENSORS):
            f.write(f"WW-{i:03d},wastewater,Outfall {i},{2.90 + i * 0.0004:.5f},{101.65 + i * 0.0002:.5f}\n")


def write_readings(path: Path, size_mb: float) -> int:
    """A readings CSV of about ``size_mb`` MB (10^6 bytes); returns its number of rows."""
    target = int(size_mb * 1_000_000)
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=300)
    header = "sensor_id,seq,ts,metric,value,unit\n"
    rows, written, block = 0, len(header), 20_000
    with path.open("w", buffering=1 << 20) as f:
        f.write(header)
        while written < target:
            lines = []
            for i in range(rows, rows + block):
                ts = (start + timedelta(seconds=i)).isoformat()
                lines.append(f"WW-{i % SENSORS:03d},{i},{ts},sars_cov_2_rna,{(i * 7919) % 100_003 / 10},copies/L\n")
            text = "".join(lines)
            f.write(text)
            written += len(text)
            rows += block
    return rows


# ---- the children --------------------------------------------------------------------------------------
def _settings(db: Path):
    from settings import Settings
    return Settings.model_validate({"city": {"name": "Bench", "slug": "bench"}, "mqtt": {"mode": "off"},
                                    "store": {"path": str(db)}})


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(mode: str, readings: Path, sensors: Path, db: Path) -> None:
    from ingest.context import ContextProvider
    from ingest.files import FileIngestor
    from store import Store

    settings = _settings(db)
    with Store(db) as store:
        contexts = ContextProvider(store, settings)
        files = FileIngestor(store, contexts, batch_rows=BATCH_ROWS)
        assert files.ingest_file(sensors).error is None
        idle = _rss_mb()
        t0 = time.perf_counter()
        if mode == "streaming":
            done = files.ingest_file(readings)
            assert done.error is None, done.error
            result = done.result
        elif mode == "parse_only":
            result = parse_only(contexts, readings, settings.ingest.max_payload_bytes)
        else:
            result = naive_ingest(store, contexts, readings)
        seconds = time.perf_counter() - t0
    print(json.dumps({"accepted": result.accepted, "rejected": result.rejected, "seconds": seconds,
                      "idle_rss_mb": round(idle, 1)}))


def parse_only(contexts, path: Path, record_cap: int):
    """FileIngestor's streaming CSV parse and validation, batches built and dropped instead of stored."""
    from ingest.batch import BatchBuilder
    from ingest.files import _csv_records  # the ingestor's own reader, so that this measures the same code
    from store import BatchResult

    accepted, ctx = 0, contexts.get()
    builder = BatchBuilder(f"file:{path.name}", "file")
    with path.open(encoding="utf-8-sig", newline="") as text:
        for record, raw in _csv_records(text, record_cap):
            accepted += builder.add("reading", record, raw, ctx, from_text=True)
            if len(builder) >= BATCH_ROWS:
                builder.build()
                builder = BatchBuilder(f"file:{path.name}", "file")
    builder.build()
    return BatchResult(accepted=accepted)


def naive_ingest(store, contexts, path: Path):
    """The file ingestor before issue 11: the whole file in memory, then the same validation and writes."""
    from ingest.batch import BatchBuilder
    from store import BatchResult

    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    header = next(reader)
    records = [(dict(zip(header, values)), ",".join(values).encode()) for values in reader if values]
    total, ctx = BatchResult(), contexts.get()
    builder = BatchBuilder(f"file:{path.name}", "file")
    for record, raw in records:
        builder.add("reading", record, raw, ctx, from_text=True)
        if len(builder) >= BATCH_ROWS:
            total = total + store.write_batch(builder.build()).result()
            builder = BatchBuilder(f"file:{path.name}", "file")
    return total + store.write_batch(builder.build(file_sha256=sha, file_name=path.name)).result()


# ---- the parent ------------------------------------------------------------------------------------------
def measure(mode: str, readings: Path, sensors: Path, db: Path, limit_mb: float | None) -> dict:
    """Run one child; its peak RSS from wait4, stopping it if it passes ``limit_mb``."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", mode, str(readings), str(sensors), str(db)],
                            stdout=subprocess.PIPE, text=True)
    stopped_at = None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        rss = _child_rss_mb(proc.pid)
        if limit_mb is not None and rss > limit_mb and stopped_at is None:
            stopped_at = rss
            os.kill(proc.pid, signal.SIGKILL)
        time.sleep(POLL_S)
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = proc.stdout.read()
    peak = round(usage.ru_maxrss / 1024, 1)  # Linux: KiB
    if stopped_at is not None:
        return {"stopped_at_rss_mb": round(stopped_at, 1), "peak_rss_mb": peak}
    if proc.returncode != 0:
        return {"failed": f"exit code {proc.returncode}", "peak_rss_mb": peak}
    done = json.loads(out.strip().splitlines()[-1])
    return {"rows": done["accepted"], "rejected": done["rejected"], "seconds": round(done["seconds"], 1),
            "rows_per_s": round(done["accepted"] / done["seconds"]), "peak_rss_mb": peak,
            "idle_rss_mb": done["idle_rss_mb"]}


def _child_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


def bench_size(size_mb: float, naive_limit_mb: float | None) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="pheoc-bench-mem-"))
    try:
        sensors, readings = folder / "sensors.csv", folder / "readings-bench.csv"
        write_sensors(sensors)
        rows = write_readings(readings, size_mb)
        line = {"bench": "ingest_memory", "format": "csv", "file_mb": round(readings.stat().st_size / 1e6, 1),
                "rows": rows}
        line["streaming"] = measure("streaming", readings, sensors, folder / "streaming.duckdb", None)
        line["parse_only"] = measure("parse_only", readings, sensors, folder / "parse-only.duckdb", None)
        line["naive"] = measure("naive", readings, sensors, folder / "naive.duckdb", naive_limit_mb)
        s, n = line["streaming"], line["naive"]
        line["naive_over_streaming_peak_rss"] = round(n["peak_rss_mb"] / s["peak_rss_mb"], 2)
        line["stored_all"] = s.get("rows") == rows
        return line
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="50,200,1000", help="file sizes in MB, comma-separated (default 50,200,1000)")
    parser.add_argument("--naive-limit-mb", type=float, default=6000,
                        help="stop the naive child above this RSS (default 6000; 0 = no limit)")
    parser.add_argument("--child", nargs=4, metavar=("MODE", "READINGS", "SENSORS", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, readings, sensors, db = args.child
        child(mode, Path(readings), Path(sensors), Path(db))
        return 0
    for size in (float(s) for s in args.sizes.split(",")):
        print(json.dumps(bench_size(size, args.naive_limit_mb or None)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
