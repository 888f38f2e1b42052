"""How far apart points on the Earth are, and where the points a given distance away lie."""
from __future__ import annotations

import math

import numpy as np

EARTH_RADIUS_KM = 6371.0  # mean radius, rounded: the sphere itself is off the ellipsoid by up to ~0.5 %
# Metres in a degree of latitude, rounded for drawing: it runs from 110.6 km at the equator to
# 111.7 km at the poles, so a circle drawn with this is true to about 1 %.
M_PER_DEG_LAT = 111_320.0


def great_circle_distance_km(lat1, lng1, lat2, lng2) -> np.ndarray:
    """Great-circle distance (km) by the haversine formula, degrees in; arrays broadcast."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.asarray(lng2) - np.asarray(lng1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def circle_to_ring_lnglat(lat: float, lng: float, radius_m: float, n_points: int = 72) -> np.ndarray:
    """(n_points x 2) (lng, lat) of a circle of ``radius_m`` metres around (lat, lng), for drawing.

    The first point is repeated at the end, so the ring is closed. Degrees per metre are
    taken at the centre's latitude: fine for a circle of a few km, not for a continent.
    """
    t = np.linspace(0, 2 * np.pi, n_points)
    dlat = radius_m / M_PER_DEG_LAT * np.sin(t)
    dlng = radius_m / (M_PER_DEG_LAT * math.cos(math.radians(lat))) * np.cos(t)
    return np.column_stack((lng + dlng, lat + dlat))


def lat_north_of(lat: float, distance_m: float) -> float:
    """The latitude ``distance_m`` metres north of ``lat`` (same rounding as circle_to_ring_lnglat)."""
    return lat + distance_m / M_PER_DEG_LAT
