"""A stand-alone MQTT ingestor process for the crash tests (``kill -9`` needs a process of its own).

    python tests/ingest_worker.py --db PATH --host H --port P [--exit-when-idle SECONDS]

Prints ``READY`` once subscribed, then one JSON line of MqttStats every 0.1 s. With
``--exit-when-idle`` it stops cleanly (commit, acknowledge, close the store) once nothing new has
arrived for that long; otherwise it runs until it is killed.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingest.context import ContextProvider  # noqa: E402
from ingest.mqtt import MqttIngestor  # noqa: E402
from store import Store  # noqa: E402
from tests.mqtt_helpers import make_settings  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", default="pheoc-test-worker")
    parser.add_argument("--batch-rows", type=int, default=200)
    parser.add_argument("--batch-ms", type=int, default=50)
    parser.add_argument("--exit-when-idle", type=float, default=0.0)
    args = parser.parse_args()

    settings = make_settings(batch_max_rows=args.batch_rows, batch_max_ms=args.batch_ms, client_id=args.client_id)
    store = Store(args.db)
    contexts = ContextProvider(store, settings)
    ingestor = MqttIngestor(store, contexts, settings.mqtt, settings.ingest, host=args.host, port=args.port).start()
    if not ingestor.wait_ready(20):
        print("NOT READY", flush=True)
        return 2
    print("READY", flush=True)
    last_received, last_change = -1, time.monotonic()
    while True:
        stats = ingestor.stats()
        print(json.dumps(asdict(stats)), flush=True)
        if stats.received != last_received or stats.queued:
            last_received, last_change = stats.received, time.monotonic()
        elif args.exit_when_idle and time.monotonic() - last_change > args.exit_when_idle:
            break
        time.sleep(0.1)
    ingestor.stop()
    print(json.dumps(asdict(ingestor.stats())), flush=True)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
