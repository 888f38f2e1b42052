"""Pure geographic functions: H3 cells, area boundaries, point-in-area lookups. No Dash, no DuckDB."""
