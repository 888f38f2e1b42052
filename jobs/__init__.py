"""Periodic analytics jobs: read the store, run analytics, write results (detections, zones, alerts).

A job is a function ``run(store, settings, today) -> dict`` (a short summary for /healthz). Jobs run
in the serving process (one DuckDB owner) on a scheduler thread; writes go through store.submit().
"""
