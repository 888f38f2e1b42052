"""The demo city: boundary, population, community areas, police precincts, facilities and sensors.

Everything comes from one seed (a NumPy Generator), so a seed always gives the same city. Geometry is
built in a local metric projection, UTM zone 47N (EPSG:32647, which covers Putrajaya at 101.69°E), so
that distances and areas are in metres; only the outputs are turned into lng/lat.

Method:
- Boundary: a smoothed random radial polygon — an ellipse whose radius is modulated by a few
  low-order Fourier harmonics with random amplitudes and phases (star-shaped, hence always a simple
  polygon) — scaled to CITY_AREA_KM2. A smaller blob of the same kind is the lake.
- Population: a density surface on a 50 m grid — Gaussian residential centres times block-scale
  log-normal texture, zero in the lake, its shore park and a few green spaces — made into whole
  people per cell by largest-remainder rounding, so every area total is an exact sum of cells.
- Areas (communities, precincts, sewer catchments): Voronoi cells (shapely.voronoi_polygons) of
  spread-out seed points, clipped to the boundary. A point lies in the Voronoi cell of its nearest
  seed, so "which area" is a nearest-seed lookup (exact, vectorised, consistent with the polygons).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta, timezone
from functools import lru_cache

import numpy as np
import shapely
from pyproj import Transformer
from scipy.ndimage import gaussian_filter
from scipy.spatial import cKDTree
from shapely import affinity
from shapely.ops import nearest_points

CITY_NAME = "Putrajaya (demo)"
CITY_CENTRE_LAT, CITY_CENTRE_LNG = 2.93, 101.69
METRIC_CRS = "EPSG:32647"  # UTM 47N: metres, < 0.1 % scale error this close to its central meridian
# Asia/Kuala_Lumpur is UTC+8 all year (no daylight saving), so a fixed offset is exact.
CITY_UTC_OFFSET = timezone(timedelta(hours=8), "+08:00")
CITY_POPULATION = 110_000  # Putrajaya's census population is of this order (~110 k in 2020)
CITY_AREA_KM2 = 50.0       # Putrajaya is ~49 km²
GRID_CELL_M = 50.0         # street-block scale: finer than an H3 res-9 cell (~174 m edge)
COORD_DECIMALS = 6         # 1e-6 degree is ~0.11 m: far below any distance the dashboard shows

COMMUNITY_NAMES = (
    "Taman Melati", "Bukit Permai", "Seri Cempaka", "Desa Kenanga", "Kampung Anggerik", "Taman Seroja",
    "Bandar Teratai", "Seri Kemuning", "Taman Mawar", "Desa Tanjung", "Bukit Tembusu", "Seri Jati",
    "Taman Meranti", "Desa Cendana", "Seri Bayu", "Taman Putra", "Bukit Damai", "Desa Pelangi",
    "Seri Intan", "Taman Sentosa")
PRECINCT_NAMES = ("Putra", "Perdana", "Wawasan", "Gemilang", "Harmoni", "Sejahtera", "Cemerlang", "Bestari")

# Sensors per kind (wastewater: one per sewer catchment outfall, set by the catchment count).
SENSOR_COUNTS = {"footfall": 80, "fever_kiosk": 50, "panic_button": 110, "air_quality": 50}
SENSOR_PREFIX = {"wastewater": "WW", "footfall": "FF", "fever_kiosk": "FK", "panic_button": "PB",
                 "air_quality": "AQ"}


# ---- projection -------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _forward() -> Transformer:
    return Transformer.from_crs("EPSG:4326", METRIC_CRS, always_xy=True)


@lru_cache(maxsize=1)
def _inverse() -> Transformer:
    return Transformer.from_crs(METRIC_CRS, "EPSG:4326", always_xy=True)


def lnglat_to_metric(lng, lat) -> tuple[np.ndarray, np.ndarray]:
    x, y = _forward().transform(np.asarray(lng, dtype=float), np.asarray(lat, dtype=float))
    return np.asarray(x), np.asarray(y)


def metric_to_latlng(x, y) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lng) rounded to COORD_DECIMALS, for metric points."""
    lng, lat = _inverse().transform(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    return np.round(np.asarray(lat), COORD_DECIMALS), np.round(np.asarray(lng), COORD_DECIMALS)


def geometry_to_lnglat(geom: shapely.Geometry) -> shapely.Geometry:
    """A metric geometry in lng/lat, snapped to the COORD_DECIMALS grid (and kept valid)."""
    out = shapely.transform(geom, lambda x, y: _inverse().transform(x, y), interleaved=False)
    out = shapely.set_precision(out, 10.0 ** -COORD_DECIMALS)
    # Same grid, but the shortest decimal text for each coordinate in the GeoJSON.
    return shapely.transform(out, lambda coords: np.round(coords, COORD_DECIMALS))


# ---- records of the city ----------------------------------------------------------------------
@dataclass(frozen=True)
class PopulationGrid:
    """Whole people per 50 m cell; cells with people lie wholly inside the boundary and off the water."""
    x0: float               # west edge (metres)
    y0: float               # south edge (metres)
    cell_m: float
    people: np.ndarray      # (ny, nx) int64
    smoothed: np.ndarray    # (ny, nx) people per cell, Gaussian-smoothed over ~300 m (neighbourhood density)

    @property
    def total(self) -> int:
        return int(self.people.sum())

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        ny, nx = self.people.shape
        xs = self.x0 + (np.arange(nx) + 0.5) * self.cell_m
        ys = self.y0 + (np.arange(ny) + 0.5) * self.cell_m
        gx, gy = np.meshgrid(xs, ys)
        return gx.ravel(), gy.ravel()

    def cell_index(self, x, y) -> np.ndarray:
        """Flat index of the cell holding each point, -1 outside the grid."""
        ny, nx = self.people.shape
        col = np.floor((np.asarray(x) - self.x0) / self.cell_m).astype(np.int64)
        row = np.floor((np.asarray(y) - self.y0) / self.cell_m).astype(np.int64)
        ok = (col >= 0) & (col < nx) & (row >= 0) & (row < ny)
        return np.where(ok, row * nx + col, -1)

    def is_populated(self, x, y) -> np.ndarray:
        idx = self.cell_index(x, y)
        flat = self.people.ravel()
        return (idx >= 0) & (flat[np.maximum(idx, 0)] > 0)

    def density_at(self, x, y) -> np.ndarray:
        """Neighbourhood density (people per cell, smoothed) at each point; 0 outside the grid."""
        idx = self.cell_index(x, y)
        return np.where(idx >= 0, self.smoothed.ravel()[np.maximum(idx, 0)], 0.0)

    def sample_points(self, rng: np.random.Generator, n: int, weights: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """n points: a cell drawn in proportion to ``weights`` (default: people), then uniform within it."""
        w = (self.people if weights is None else weights).ravel().astype(float)
        w = np.where(self.people.ravel() > 0, w, 0.0)
        cells = rng.choice(w.size, size=n, p=w / w.sum())
        nx = self.people.shape[1]
        jitter = rng.uniform(0.0, 1.0, size=(2, n))
        x = self.x0 + (cells % nx + jitter[0]) * self.cell_m
        y = self.y0 + (cells // nx + jitter[1]) * self.cell_m
        return x, y


@dataclass(frozen=True)
class Area:
    area_id: str
    name: str
    kind: str               # boundary / community / precinct (AREA_KINDS); "catchment" stays internal
    population: int
    geometry: shapely.Geometry  # metric


@dataclass(frozen=True)
class Partition:
    """Voronoi areas of seed points; a point's area is its nearest seed's."""
    areas: tuple[Area, ...]
    seeds: np.ndarray       # (k, 2) metres

    def locate(self, x, y) -> np.ndarray:
        """Index into ``areas`` for each point."""
        _, idx = cKDTree(self.seeds).query(np.column_stack([np.asarray(x, float), np.asarray(y, float)]))
        return np.asarray(idx, dtype=np.int64)


@dataclass(frozen=True)
class Facility:
    facility_id: str
    name: str
    kind: str               # FACILITY_KINDS
    owner: str
    x: float
    y: float
    beds: int               # potential_site: beds it could hold once converted
    icu_beds: int
    ventilators: int
    staff: int              # staff on the roster for a normal day
    covid_ward_share: float  # share of ward beds designated for COVID-19 patients
    covid_icu_share: float


@dataclass(frozen=True)
class Sensor:
    sensor_id: str
    kind: str               # SENSOR_KINDS
    name: str
    x: float
    y: float
    catchment: int = -1     # wastewater: index into City.catchments.areas


@dataclass(frozen=True)
class City:
    seed: int
    boundary: shapely.Geometry  # metric
    lake: shapely.Geometry      # metric
    grid: PopulationGrid
    communities: Partition
    precincts: Partition
    catchments: Partition
    facilities: tuple[Facility, ...]
    sensors: tuple[Sensor, ...]

    @property
    def population(self) -> int:
        return self.grid.total

    def boundary_area(self) -> Area:
        return Area("city", CITY_NAME, "boundary", self.population, self.boundary)


# ---- construction -----------------------------------------------------------------------------
def _radial_polygon(rng: np.random.Generator, cx: float, cy: float, rx: float, ry: float,
                    roughness: float, n: int = 144) -> shapely.Polygon:
    """A smooth random blob: ellipse radius times 1 + sum of harmonics 2..6 (amplitude ~ roughness/m)."""
    theta = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for m in range(2, 7):
        r += rng.uniform(0.3, 1.0) * roughness / m * np.cos(m * theta + rng.uniform(0, 2 * np.pi))
    r = np.clip(r, 0.55, None)  # stays star-shaped around the centre, hence a simple polygon
    rot = rng.uniform(-0.4, 0.4)
    px, py = rx * r * np.cos(theta), ry * r * np.sin(theta)
    x = cx + px * np.cos(rot) - py * np.sin(rot)
    y = cy + px * np.sin(rot) + py * np.cos(rot)
    return shapely.Polygon(np.column_stack([x, y]))


def _largest_remainder(expected: np.ndarray, total: int) -> np.ndarray:
    """Whole numbers summing exactly to ``total``, each within 1 of ``expected`` (Hamilton's method)."""
    base = np.floor(expected).astype(np.int64)
    short = total - int(base.sum())
    order = np.argsort(-(expected - base), kind="stable")
    base[order[:short]] += 1
    return base


def _population_grid(rng: np.random.Generator, boundary: shapely.Geometry, lake: shapely.Geometry
                     ) -> PopulationGrid:
    minx, miny, maxx, maxy = boundary.bounds
    nx = int(np.ceil((maxx - minx) / GRID_CELL_M))
    ny = int(np.ceil((maxy - miny) / GRID_CELL_M))
    grid0 = PopulationGrid(minx, miny, GRID_CELL_M, np.zeros((ny, nx), np.int64), np.zeros((ny, nx)))
    cx, cy = grid0.centres()

    # A whole cell must lie inside the city and off the water: test the centre against the
    # boundary shrunk (and the lake grown) by more than half a cell diagonal (35 m).
    inner = boundary.buffer(-GRID_CELL_M)
    shore_park = lake.buffer(120.0)  # a lakeside promenade/park with no homes
    habitable = shapely.contains_xy(inner, cx, cy) & ~shapely.contains_xy(shore_park, cx, cy)

    density = np.full(cx.size, 0.12)  # a background of homes everywhere habitable
    centre_area = inner.difference(lake.buffer(600.0))
    n_centres = int(rng.integers(5, 8))
    for _ in range(n_centres):
        px, py = _points_inside(rng, centre_area, 1)
        sigma = rng.uniform(450.0, 1300.0)
        density += rng.uniform(0.5, 1.5) * np.exp(-((cx - px[0]) ** 2 + (cy - py[0]) ** 2) / (2 * sigma ** 2))
    # Block-scale texture: some blocks are flats, some are detached houses, some are shops.
    texture = gaussian_filter(rng.normal(0.0, 1.0, size=(ny, nx)), sigma=1.0).ravel()
    density *= np.exp(0.6 * texture)
    for _ in range(int(rng.integers(3, 6))):  # green spaces and playing fields
        gx, gy = _points_inside(rng, inner, 1)
        radius = rng.uniform(120.0, 320.0)
        density[(cx - gx[0]) ** 2 + (cy - gy[0]) ** 2 < radius ** 2] = 0.0
    density = np.where(habitable, density, 0.0)

    people = _largest_remainder(density / density.sum() * CITY_POPULATION, CITY_POPULATION).reshape(ny, nx)
    # The smoothing defines "neighbourhood" density for transmission: ~300 m, a few streets.
    smoothed = gaussian_filter(people.astype(float), sigma=300.0 / GRID_CELL_M)
    return PopulationGrid(minx, miny, GRID_CELL_M, people, smoothed)


def _points_inside(rng: np.random.Generator, geom: shapely.Geometry, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n uniform random points inside ``geom`` (rejection sampling in its bounding box)."""
    minx, miny, maxx, maxy = geom.bounds
    xs: list[float] = []
    ys: list[float] = []
    while len(xs) < n:
        x = rng.uniform(minx, maxx, size=4 * n)
        y = rng.uniform(miny, maxy, size=4 * n)
        ok = shapely.contains_xy(geom, x, y)
        xs.extend(x[ok])
        ys.extend(y[ok])
    return np.array(xs[:n]), np.array(ys[:n])


def _spread_points(rng: np.random.Generator, grid: PopulationGrid, n: int, weights: np.ndarray,
                   min_dist: float, avoid: np.ndarray | None = None) -> np.ndarray:
    """n populated points drawn by ``weights``, greedily kept at least ``min_dist`` apart (and from ``avoid``).

    The spacing is relaxed by 15 % whenever too few candidates survive, so it always finishes.
    """
    kept = np.empty((0, 2)) if avoid is None else np.asarray(avoid, float).reshape(-1, 2)
    n_avoid = len(kept)
    while True:
        cx, cy = grid.sample_points(rng, 40 * n + 200, weights)
        chosen = kept.copy()
        for x, y in zip(cx, cy):
            if len(chosen) - n_avoid >= n:
                break
            if len(chosen) == 0 or np.min(np.hypot(chosen[:, 0] - x, chosen[:, 1] - y)) >= min_dist:
                chosen = np.vstack([chosen, [x, y]])
        if len(chosen) - n_avoid >= n:
            return chosen[n_avoid:]
        min_dist *= 0.85


def _lloyd(seeds: np.ndarray, grid: PopulationGrid, weight_power: float, iterations: int = 15) -> np.ndarray:
    """Move seeds towards the weighted centroids of their Voronoi cells (Lloyd's algorithm, weights =
    people ** weight_power): areas come out compact, and smaller where people are many, which evens
    out their populations (a planner's wish for service areas)."""
    cx, cy = grid.centres()
    w = grid.people.ravel().astype(float) ** weight_power
    keep = w > 0
    cx, cy, w = cx[keep], cy[keep], w[keep]
    seeds = seeds.copy()
    for _ in range(iterations):
        _, owner = cKDTree(seeds).query(np.column_stack([cx, cy]))
        mass = np.bincount(owner, weights=w, minlength=len(seeds))
        moved = mass > 0
        seeds[moved, 0] = np.bincount(owner, weights=w * cx, minlength=len(seeds))[moved] / mass[moved]
        seeds[moved, 1] = np.bincount(owner, weights=w * cy, minlength=len(seeds))[moved] / mass[moved]
    return seeds


def _voronoi_partition(seeds: np.ndarray, clip_to: shapely.Geometry, grid: PopulationGrid, ids: list[str],
                       names: list[str], kind: str) -> Partition:
    cells = shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=clip_to, ordered=True)
    polys = shapely.intersection(shapely.get_parts(cells), clip_to)
    part = Partition(tuple(Area(i, nm, kind, 0, g) for i, nm, g in zip(ids, names, polys)), seeds)
    cx, cy = grid.centres()
    owner = part.locate(cx, cy)
    pops = np.bincount(owner, weights=grid.people.ravel(), minlength=len(seeds)).astype(np.int64)
    return Partition(tuple(Area(a.area_id, a.name, a.kind, int(p), a.geometry) for a, p in zip(part.areas, pops)),
                     seeds)


def _facilities(rng: np.random.Generator, grid: PopulationGrid, communities: Partition) -> tuple[Facility, ...]:
    def community_name(xy) -> str:
        return communities.areas[int(communities.locate([xy[0]], [xy[1]])[0])].name

    n_general = int(rng.integers(4, 7))  # + field hospital + quarantine centre = 6..8 treating facilities
    # Hospitals sit where people are; the main one in the densest neighbourhood.
    hospitals = _spread_points(rng, grid, n_general, grid.smoothed ** 2, min_dist=1800.0)
    # Field hospital, quarantine centre and idle sites need floor space, not a dense neighbourhood.
    others = _spread_points(rng, grid, 5, np.where(grid.people > 0, 1.0, 0.0), min_dist=1200.0, avoid=hospitals)
    out: list[Facility] = []
    # Sizes follow W.P. Putrajaya's MoH returns (hospital.csv / icu.csv: 385-609 beds, 14-26 ICU beds):
    # one large public hospital and a few small ones, public and private.
    for i, xy in enumerate(hospitals):
        if i == 0:
            beds, icu, name, owner = 360, 16, "Hospital Putrajaya (demo)", "Ministry of Health"
        else:
            beds = int(rng.integers(5, 15)) * 10
            icu = 1 + beds // 40 + int(rng.integers(0, 2))
            place = community_name(xy)
            name = f"Hospital {place}" if i % 2 else f"{place} Specialist Hospital"
            if any(f.name == name for f in out):  # two hospitals in one community: tell them apart
                name = f"{name} {i + 1}"
            owner = "Ministry of Health" if i % 2 else "Private"
        out.append(Facility(f"HOSP-{i + 1:02d}", name, "hospital", owner, float(xy[0]), float(xy[1]), beds, icu,
                            icu + 2, int(beds * 1.1), 0.25 if i == 0 else 0.2, 0.4))
    x, y = others[0]
    out.append(Facility("TEMP-01", f"Field Hospital {community_name(others[0])}", "temporary_hospital",
                        "Armed Forces Medical Services", float(x), float(y), 240, 12, 8, 160, 1.0, 1.0))
    x, y = others[1]
    out.append(Facility("QC-01", f"Quarantine and Treatment Centre {community_name(others[1])}",
                        "quarantine_centre", "National Disaster Management Agency", float(x), float(y), 400, 0, 0,
                        60, 1.0, 0.0))
    sites = (("Stadium", 800, "Ministry of Youth and Sports"), ("Convention Centre", 500, "Putrajaya Corporation"),
             ("School", 160, "Ministry of Education"))
    for i, (what, beds, owner) in enumerate(sites[: int(rng.integers(2, 4))]):
        x, y = others[2 + i]
        name = f"Sekolah Kebangsaan {community_name(others[2 + i])}" if what == "School" \
            else f"{community_name(others[2 + i])} {what}"
        out.append(Facility(f"SITE-{i + 1:02d}", name, "potential_site", owner, float(x), float(y), beds, 0, 0, 0,
                            0.0, 0.0))
    return tuple(out)


def _sensors(rng: np.random.Generator, grid: PopulationGrid, catchments: Partition, communities: Partition,
             lake: shapely.Geometry) -> tuple[Sensor, ...]:
    out: list[Sensor] = []
    cx, cy = grid.centres()
    populated = grid.people.ravel() > 0
    for i, area in enumerate(catchments.areas):
        # The outfall: where the catchment's trunk sewer leaves it, on its side towards the lake
        # (the low ground). Snap to the nearest populated cell centre so it lies well inside the city.
        towards = nearest_points(area.geometry, lake)[0]
        mine = populated & (catchments.locate(cx, cy) == i)
        j = np.flatnonzero(mine)[np.argmin(np.hypot(cx[mine] - towards.x, cy[mine] - towards.y))]
        place = communities.areas[int(communities.locate([cx[j]], [cy[j]])[0])].name
        out.append(Sensor(f"WW-{i + 1:02d}", "wastewater", f"Wastewater sampler {area.area_id} ({place} outfall)",
                          float(cx[j]), float(cy[j]), i))
    people = grid.people.astype(float)
    weights = {"footfall": people ** 1.5, "fever_kiosk": people, "panic_button": people,
               "air_quality": np.where(people > 0, 1.0, 0.0)}
    spacing = {"footfall": 200.0, "fever_kiosk": 300.0, "panic_button": 150.0, "air_quality": 600.0}
    labels = {"footfall": "Footfall counter", "fever_kiosk": "Fever-screening kiosk",
              "panic_button": "Panic button", "air_quality": "Air-quality monitor"}
    for kind, n in SENSOR_COUNTS.items():
        pts = _spread_points(rng, grid, n, weights[kind], spacing[kind])
        prefix = SENSOR_PREFIX[kind]
        out.extend(Sensor(f"{prefix}-{i + 1:03d}", kind, f"{labels[kind]} {i + 1}", float(x), float(y))
                   for i, (x, y) in enumerate(pts))
    return tuple(out)


def build_city(seed: int) -> City:
    """The demo city for ``seed`` (same seed, same city)."""
    rng = np.random.default_rng([seed, 0xC17])
    cx, cy = (float(v) for v in lnglat_to_metric(CITY_CENTRE_LNG, CITY_CENTRE_LAT))
    # ~8.4 x 7.2 km before scaling to the target area.
    boundary = _radial_polygon(rng, cx, cy, 4200.0, 3600.0, roughness=0.5)
    scale = float(np.sqrt(CITY_AREA_KM2 * 1e6 / boundary.area))
    boundary = affinity.scale(boundary, scale, scale, origin=(cx, cy))
    lake_cx, lake_cy = cx + rng.uniform(-700, 700), cy + rng.uniform(-500, 500)
    lake = _radial_polygon(rng, lake_cx, lake_cy, 1000.0, 550.0, roughness=0.5).intersection(
        boundary.buffer(-900.0))

    grid = _population_grid(rng, boundary, lake)
    total_area = boundary.area

    n_comm = int(rng.integers(12, 17))
    comm_seeds = _lloyd(_spread_points(rng, grid, n_comm, np.sqrt(grid.smoothed), 0.8 * np.sqrt(total_area / n_comm)),
                        grid, weight_power=1.0)
    names = [COMMUNITY_NAMES[i] for i in rng.permutation(len(COMMUNITY_NAMES))[:n_comm]]
    # Number communities west to east in bands, so neighbouring ids are neighbouring places.
    order = np.lexsort((comm_seeds[:, 0], np.floor((comm_seeds[:, 1].max() - comm_seeds[:, 1]) / 2500.0)))
    comm_seeds = comm_seeds[order]
    communities = _voronoi_partition(comm_seeds, boundary, grid, [f"C{i + 1:02d}" for i in range(n_comm)], names,
                                     "community")

    n_prec = int(rng.integers(5, 8))
    prec_seeds = _lloyd(_spread_points(rng, grid, n_prec, np.where(grid.people > 0, 1.0, 0.0),
                                       0.8 * np.sqrt(total_area / n_prec)), grid, weight_power=0.5)
    prec_names = [f"Balai Polis {PRECINCT_NAMES[i]}" for i in rng.permutation(len(PRECINCT_NAMES))[:n_prec]]
    precincts = _voronoi_partition(prec_seeds, boundary, grid, [f"P{i + 1:02d}" for i in range(n_prec)], prec_names,
                                   "precinct")

    n_catch = int(rng.integers(9, 12))
    catch_seeds = _spread_points(rng, grid, n_catch, grid.people.astype(float), 0.8 * np.sqrt(total_area / n_catch))
    catchments = _voronoi_partition(catch_seeds, boundary.difference(lake), grid,
                                    [f"WWC{i + 1:02d}" for i in range(n_catch)],
                                    [f"Catchment {i + 1}" for i in range(n_catch)], "catchment")

    facilities = _facilities(rng, grid, communities)
    sensors = _sensors(rng, grid, catchments, communities, lake)
    return City(seed, boundary, lake, grid, communities, precincts, catchments, facilities, sensors)
