"""Lat/lng in degrees -> planar metres, for geometry that needs a flat map.

Two projections, each chosen for what its caller measures:
* ``lnglats_to_equal_area_xy_m``: Lambert's cylindrical equal-area map, for area shares;
* ``latlngs_to_local_xy_m``: a city-scale equirectangular plane, for distances between points.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

# Authalic (equal-area) radius of the WGS84 ellipsoid, metres.
AUTHALIC_EARTH_RADIUS_M = 6_371_007.2
MEAN_EARTH_RADIUS_M = 6_371_008.8  # IUGG mean radius; a city-scale equirectangular projection is fine


def lnglats_to_equal_area_xy_m(lnglat_deg: np.ndarray, standard_parallel_rad: float) -> np.ndarray:
    """(n x 2) (lng, lat) degrees -> metres on Lambert's cylindrical equal-area map.

    x = R·lng·cos φ0, y = R·sin(lat)/cos φ0 on the authalic sphere. Why this choice rather
    than a UTM/local CRS: an equal-area map preserves every area ratio exactly, so shares
    do not depend on the projection's centre and need no CRS database (pyproj) at run
    time; choosing the standard parallel φ0 at the area's own latitude keeps the shapes
    nearly true, so edges that are straight in lng/lat (GeoJSON) and H3 edges stay nearly
    straight. A conformal UTM would distort areas by up to ~0.1 % across a zone.
    Takes and returns (lng, lat)-ordered columns, as shapely.transform passes x, y.
    """
    lng = np.radians(lnglat_deg[:, 0])
    lat = np.radians(lnglat_deg[:, 1])
    cos_sp = np.cos(standard_parallel_rad)
    return np.column_stack(
        (AUTHALIC_EARTH_RADIUS_M * lng * cos_sp, AUTHALIC_EARTH_RADIUS_M * np.sin(lat) / cos_sp)
    )


def latlngs_to_local_xy_m(lat_deg: ArrayLike, lng_deg: ArrayLike) -> NDArray[np.float64]:
    """Project lat/lng to (n x 2) x, y metres on a plane tangent at the mean latitude (equirectangular).

    Over a city (tens of km) the distance error is well under 1%, far below the
    resolution that matters for a 1 km scanning radius.
    """
    lat = np.radians(np.asarray(lat_deg, dtype=np.float64))
    lng = np.radians(np.asarray(lng_deg, dtype=np.float64))
    lat0 = lat.mean() if lat.size else 0.0
    x = MEAN_EARTH_RADIUS_M * (lng - (lng.mean() if lng.size else 0.0)) * np.cos(lat0)
    y = MEAN_EARTH_RADIUS_M * (lat - lat0)
    return np.column_stack([x, y])
