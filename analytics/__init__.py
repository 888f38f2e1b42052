"""Pure epidemiological analytics on arrays and DataFrames (no Dash, no DuckDB, no I/O)."""
