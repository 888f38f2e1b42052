"""DDL for the clusters feature; applied by store.schema.apply_schema after the core tables.

One scan per analysis day (``cluster_runs``, keyed by the day so a rerun replaces rather than
adds), the clusters it reported (``detected_clusters``), the zone history as an append-only
list of decisions (``zone_events``: entered / escalated / reviewed / lifted, each with the rule
id and version that made it) and ``zones``, the history folded into one row per zone (in force
while ``lifted_on`` is NULL). Cell lists are VARCHAR[] so "which zone holds this cell" is one
``list_contains`` in SQL.

Each run scans with both methods where it can: ``cluster_runs.method`` is the one whose clusters
drive the zones (the scan rulebook's, or the permutation scan as a labelled fallback where tests
are not reported per cell, ``method_note`` saying why); ``detected_clusters.method`` and
``max_window_days`` say which scan and which analysis found each cluster, and ``rank`` orders all
of a run's clusters (the zone-driving method's first).

``area_cell_shares`` keeps each area's share of the grid's cells (geo.grid.population_grid), written
by the cluster job for the areas' current version: spreading the areas onto the grid is the slow part of
reading a day's inputs (about a second at a city of 100 areas), and after a restart the job and the
cluster page read the shares back instead of spreading again.
"""
from __future__ import annotations

DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS cluster_runs (
        run_id VARCHAR PRIMARY KEY, as_of DATE NOT NULL UNIQUE, computed_at TIMESTAMPTZ NOT NULL,
        input_fingerprint VARCHAR NOT NULL, study_start DATE NOT NULL, study_end DATE NOT NULL,
        resolution INTEGER NOT NULL, max_radius_m DOUBLE NOT NULL, max_share DOUBLE NOT NULL,
        max_window_days INTEGER NOT NULL, replications INTEGER NOT NULL, seed BIGINT NOT NULL,
        min_cases INTEGER NOT NULL, report_p_max DOUBLE NOT NULL,
        total_cases INTEGER NOT NULL, locations INTEGER NOT NULL, clusters INTEGER NOT NULL,
        significant INTEGER NOT NULL, critical_llr_05 DOUBLE, critical_llr_01 DOUBLE, scan_s DOUBLE,
        rule_id VARCHAR NOT NULL, rule_version VARCHAR NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS detected_clusters (
        run_id VARCHAR NOT NULL, rank INTEGER NOT NULL, cluster_id VARCHAR NOT NULL, as_of DATE NOT NULL,
        centre_cell VARCHAR NOT NULL, centre_lat DOUBLE NOT NULL, centre_lng DOUBLE NOT NULL,
        radius_m DOUBLE NOT NULL, cells VARCHAR[] NOT NULL, n_cells INTEGER NOT NULL,
        start_date DATE NOT NULL, end_date DATE NOT NULL, observed INTEGER NOT NULL, expected DOUBLE NOT NULL,
        relative_risk DOUBLE, llr DOUBLE NOT NULL, p_value DOUBLE NOT NULL, recurrence_interval_days DOUBLE NOT NULL,
        significant BOOLEAN NOT NULL, PRIMARY KEY (run_id, rank))""",
    "CREATE SEQUENCE IF NOT EXISTS zone_events_seq",
    """CREATE TABLE IF NOT EXISTS zone_events (
        event_id BIGINT PRIMARY KEY DEFAULT nextval('zone_events_seq'),
        as_of DATE NOT NULL,
        kind VARCHAR NOT NULL CHECK (kind IN ('entered','escalated','reviewed','lifted')),
        zone_id VARCHAR NOT NULL, cluster_id VARCHAR NOT NULL, role VARCHAR NOT NULL,
        tier VARCHAR, previous_tier VARCHAR, cells VARCHAR[] NOT NULL, reason VARCHAR,
        rule_id VARCHAR NOT NULL, rule_version VARCHAR NOT NULL, run_id VARCHAR NOT NULL,
        recorded_at TIMESTAMPTZ NOT NULL, UNIQUE (as_of, zone_id, kind))""",
    """CREATE TABLE IF NOT EXISTS zones (
        zone_id VARCHAR PRIMARY KEY, cluster_id VARCHAR NOT NULL, role VARCHAR NOT NULL,
        tier VARCHAR NOT NULL, cells VARCHAR[] NOT NULL, reason VARCHAR,
        rule_id VARCHAR NOT NULL, rule_version VARCHAR NOT NULL,
        entered_on DATE NOT NULL, since DATE NOT NULL, reviewed_on DATE, lifted_on DATE,
        updated_on DATE NOT NULL)""",
    # Two scans (tests-adjusted Poisson and case-only permutation), several windows, a lag and a
    # recurrence-interval bar from the scan rulebook. Runs stored before that were permutation scans.
    *(f"ALTER TABLE cluster_runs ADD COLUMN IF NOT EXISTS {c}" for c in (
        "method VARCHAR DEFAULT 'permutation'", "method_note VARCHAR", "methods_run VARCHAR",
        "windows_days VARCHAR", "lag_days INTEGER DEFAULT 0", "min_recurrence_days DOUBLE",
        "scan_rule_id VARCHAR", "scan_rule_version VARCHAR", "hotspot_window_days INTEGER")),
    *(f"ALTER TABLE detected_clusters ADD COLUMN IF NOT EXISTS {c}" for c in (
        "method VARCHAR DEFAULT 'permutation'", "max_window_days INTEGER")),
    """CREATE TABLE IF NOT EXISTS area_cell_shares (
        areas_version VARCHAR NOT NULL, resolution INTEGER NOT NULL, area_id VARCHAR NOT NULL,
        h3_cell VARCHAR NOT NULL, share DOUBLE NOT NULL, PRIMARY KEY (resolution, area_id, h3_cell))""",
)
