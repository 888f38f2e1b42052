"""Pure geographic functions, and the only package that imports h3. No Dash, no DuckDB.

cells (H3 ids one at a time), cell_ints (H3 ids as uint64 arrays), neighbours (neighbour
graphs for local statistics), buffers (k-ring zones), population (areal weighting onto
cells), projection (lat/lng -> metres), distance (great-circle distance, circles to draw),
areas (area polygons, point-in-area), containment (which cells lie in which areas).
"""
