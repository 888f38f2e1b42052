"""The demo epidemic: a spatial renewal process on the demo city, and every data stream it leaves.

Transmission — the renewal equation (Fraser 2007; Cori et al. 2013) made individual and spatial:
  each infected person j infects, on day t, Poisson(R(t) · g(t − t_j) · ν_j · d_j · S(t)) others, where
  g is the discretised generation-interval distribution (gamma, mean 5 d, sd 2 d, close to published
  SARS-CoV-2 estimates, e.g. Ganyani et al. 2020), ν_j ~ Gamma(k, 1/k) is individual infectiousness with
  dispersion k = 0.5 (superspreading; Endo et al. 2020 put k at 0.1–0.5), d_j a neighbourhood-density
  factor and S(t) the susceptible share. Offspring live near their infector (log-normal distance
  kernel, median 150 m: household, street, local shops) except a share of long-range jumps placed in
  proportion to population density (work, school, worship elsewhere in the city).
  Micro-clusters are planted in the last ~3 weeks: a few infections seeded in a dense block whose
  offspring mostly stay within ~100 m of it, with a higher reproduction number that falls as the
  block's susceptible pool is used up (a dormitory, a workplace, an extended household).
Clinical course — severity from age band; incubation log-normal (mean 5.5 d; Lauer et al. 2020 found
  a median of 5.1 d); report 1–4 days after onset (asymptomatic: 3–9 days after infection, found by
  contact tracing); ascertainment rising with severity; severe → ward, critical → ICU, some moderate
  → the quarantine centre (Malaysia's PKRC), each to the nearest facility with a designated bed free.
Wastewater — faecal shedding starts soon after infection and peaks within days (Wölfel et al. 2020),
  so the viral load of a catchment is its infections convolved with a shedding curve (gamma, mean
  3 d), divided by its population. It leads reported cases by about the incubation period plus the
  reporting delay minus the shedding lag: ~5 days.

Everything here is pure: arrays and DataFrames in, arrays and DataFrames out; files.py writes them.
Days are indexed 0..days-1 (day days-1 is ``end_date``); times are local city time (UTC+8).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
from scipy import stats

from demo.city import CITY_UTC_OFFSET, City, metric_to_latlng
from ingest.records import AGE_BANDS, SEVERITIES

# ---- transmission -----------------------------------------------------------------------------
GI_MEAN_D, GI_SD_D, GI_MAX_D = 5.0, 2.0, 14
DISPERSION_K = 0.5              # individual infectiousness ~ Gamma(k, 1/k): few infect many
LOCAL_KERNEL_MEDIAN_M = 250.0   # household / street / corner shop / nearby school
LOCAL_KERNEL_SIGMA = 0.8        # log-normal spread: most within a few hundred metres, some ~1 km
LONG_RANGE_SHARE = 0.35         # infections at work/school/worship elsewhere, placed by population
DENSITY_EXPONENT = 0.3          # contacts grow sub-linearly with neighbourhood density
SEED_INFECTIONS = 10            # introductions on day 0 (travellers)
# Introductions per day: frequent while borders are open, rare once arrivals are quarantined.
IMPORT_RATE_EARLY, IMPORT_RATE_LATE, IMPORTS_EARLY_UNTIL = 1.0, 0.2, 0.15
# Intrinsic R(t) as (fraction of the period, value) knots: open growth, a movement-control order,
# relaxation. People also react to what they see (awareness-driven behaviour, after Weitz et al.
# 2020 PNAS, who use deaths): transmission is divided by 1 + (recent infections / AWARE_HALF)^2,
# which turns runaway growth into plateaus and keeps the wave's size steady from seed to seed.
R_KNOTS = ((0.00, 2.0), (0.27, 2.0), (0.35, 0.80), (0.58, 0.85), (0.68, 1.35), (1.00, 1.40))
AWARE_HALF_PER_100K = 130.0     # daily infections per 100 k at which contacts halve
AWARE_LAG_D = (4, 10)           # people react to the news, which lags infection by about a week
MOBILITY_KNOTS = ((0.00, 1.00), (0.27, 1.00), (0.35, 0.55), (0.58, 0.60), (0.68, 0.85), (1.00, 0.90))

# ---- planted micro-clusters -------------------------------------------------------------------
CLUSTER_SEEDS = 6               # index infections
CLUSTER_R = 2.8                 # reproduction number inside the cluster before depletion
CLUSTER_POOL = 150              # people the cluster can reach (a block of flats / a workplace)
CLUSTER_STAY = 0.9              # share of a member's infections that stay in the cluster
CLUSTER_SD_M = 70.0             # spread of members around the block: inside a few H3 res-9 cells
CLUSTER_START_DAYS_BEFORE_END = (18, 23)   # emerge in the last ~3 weeks
CLUSTER_MIN_SPACING_M = 1500.0

# ---- clinical course --------------------------------------------------------------------------
# Shares of AGE_BANDS[:9]: a young city. Matched to W.P. Putrajaya in the DOSM 2020 census figures
# that MoH Malaysia publishes (static/population.csv): 4.8 % aged 60+, ~37 % under 18.
AGE_PROBS = np.array([0.21, 0.17, 0.17, 0.19, 0.13, 0.082, 0.035, 0.010, 0.003])
# P(asymptomatic, mild, moderate, severe, critical | age band); severe+critical rise steeply with age.
SEVERITY_BY_AGE = np.array([
    [0.45, 0.48, 0.065, 0.004, 0.001], [0.42, 0.51, 0.066, 0.003, 0.001], [0.33, 0.57, 0.090, 0.007, 0.003],
    [0.30, 0.57, 0.115, 0.011, 0.004], [0.27, 0.56, 0.140, 0.022, 0.008], [0.24, 0.52, 0.180, 0.045, 0.015],
    [0.20, 0.46, 0.220, 0.085, 0.035], [0.17, 0.40, 0.250, 0.120, 0.060], [0.15, 0.35, 0.260, 0.150, 0.090]])
REPORT_PROB_BY_SEVERITY = np.array([0.30, 0.70, 0.90, 0.98, 1.00])
UNKNOWN_AGE_SHARE = 0.02        # forms with the age left blank
INCUBATION_MEAN_D, INCUBATION_SD_D = 5.5, 2.5
SUNDAY_DEFERRAL = 0.35          # share of Sunday reports that slip to Monday (weekend effect)
WARD_LOS_MEAN_D, WARD_LOS_SD_D = 8.0, 4.0
ICU_LOS_SHAPE, ICU_LOS_SCALE = 3.0, 4.0     # gamma, mean 12 d
DEATH_PROB = {"ward": 0.06, "icu": 0.35, "qc": 0.0}
QC_ADMIT_PROB_OLDER, QC_ADMIT_PROB_YOUNGER = 0.6, 0.25   # moderate cases; "older" = 50+
RECOVERY_D = {"asymptomatic": 10, "mild": 10, "moderate": 14}

# ---- wastewater -------------------------------------------------------------------------------
SHED_SHAPE, SHED_SCALE, SHED_MAX_D = 2.0, 1.5, 21   # gamma, mean 3 d after infection
WW_COPIES_PER_L = 4.0e7         # concentration per unit of shedding-weighted prevalence
WW_BACKGROUND_COPIES_PER_L = 150.0   # near the quantification limit of an RT-qPCR assay
WW_NOISE_SIGMA = 0.35           # log-normal sampling/assay noise of one grab sample

# ---- sensors ----------------------------------------------------------------------------------
READING_INTERVAL_H = {"wastewater": 1, "footfall": 3, "fever_kiosk": 3, "air_quality": 3}
METRICS = {"wastewater": ("sars_cov_2_rna", "copies/L"), "footfall": ("footfall", "people/h"),
           "fever_kiosk": ("fever_alerts", "alerts/h"), "panic_button": ("panic_press", "press"),
           "air_quality": ("pm2_5", "ug/m3")}
# People passing a counter by hour of day (relative): commute, lunch and evening peaks.
FOOTFALL_PROFILE = np.array([0.05, 0.03, 0.02, 0.02, 0.04, 0.15, 0.55, 1.10, 1.25, 0.90, 0.85, 1.00,
                             1.30, 1.25, 0.95, 0.90, 1.05, 1.35, 1.50, 1.30, 1.00, 0.70, 0.40, 0.15])
WEEKDAY_FOOTFALL = np.array([1.0, 1.0, 1.0, 1.0, 1.05, 1.15, 1.05])   # Monday..Sunday
FEVER_WINDOW_D = 5              # a febrile person is about for ~5 days after onset
FEVER_RADIUS_M = 1000.0         # kiosks catch people from their walking catchment
FEVER_ALERTS_PER_NEARBY = 0.08  # alerts per hour per febrile person nearby
FEVER_BASE_PER_H = 0.15         # false alarms: hot weather, exercise
PANIC_PER_SENSOR_DAY = 0.012
PM25_BASE = 16.0                # µg/m³, typical Klang Valley background


@dataclass(frozen=True)
class PlantedCluster:
    cluster_id: int
    x: float
    y: float
    lat: float
    lng: float
    start_day: int


@dataclass(frozen=True)
class Infections:
    """One entry per infection in the city, in order of infection."""
    x: np.ndarray
    y: np.ndarray
    day: np.ndarray          # infection day
    cluster: np.ndarray      # planted cluster id, -1 if none
    imported: np.ndarray     # bool


@dataclass(frozen=True)
class Course:
    """Clinical course per infection (same order as Infections)."""
    age_band: np.ndarray     # index into AGE_BANDS[:9]
    severity: np.ndarray     # index into SEVERITIES
    onset_day: np.ndarray    # -1 if asymptomatic
    report_day: np.ndarray   # -1 if never reported or not reported by the end


@dataclass(frozen=True)
class EpidemicData:
    """The demo's records (columns as ingest.records.FIELD_SPECS) and what the live simulator needs."""
    start_date: date
    days: int
    cases: pd.DataFrame
    tests: pd.DataFrame
    admissions: pd.DataFrame
    capacity: pd.DataFrame
    supplies: pd.DataFrame
    readings: dict[str, pd.DataFrame]   # by sensor kind
    clusters: tuple[PlantedCluster, ...]
    infections: Infections
    course: Course
    daily_reported: np.ndarray          # reported cases per day
    wastewater_daily: np.ndarray        # (catchments, days) mean concentration, copies/L
    sensor_levels: dict[str, float]     # sensor_id -> current typical value (see simulator)
    mobility: np.ndarray                # per day, 1 = normal


# ---- helpers ------------------------------------------------------------------------------------
def _interp_knots(knots, days: int) -> np.ndarray:
    frac = np.arange(days) / max(days - 1, 1)
    xs, ys = zip(*knots)
    return np.interp(frac, xs, ys)


def _discrete_gamma(shape: float, scale: float, first: int, last: int) -> np.ndarray:
    """P(day k) for k = first..last from a gamma, by CDF differences over [k-0.5, k+0.5), normalised."""
    k = np.arange(first, last + 1)
    edges = stats.gamma.cdf(np.append(k - 0.5, last + 0.5), shape, scale=scale)
    w = np.diff(edges)
    return w / w.sum()


GENERATION_INTERVAL = _discrete_gamma((GI_MEAN_D / GI_SD_D) ** 2, GI_SD_D ** 2 / GI_MEAN_D, 1, GI_MAX_D)
# Day 0 = the day of infection; use [k, k+1) so shedding starts on the infection day.
SHEDDING = np.diff(stats.gamma.cdf(np.arange(SHED_MAX_D + 1), SHED_SHAPE, scale=SHED_SCALE))
SHEDDING = SHEDDING / SHEDDING.sum()


def _lognormal_params(mean: float, sd: float) -> tuple[float, float]:
    sigma2 = np.log1p((sd / mean) ** 2)
    return float(np.log(mean) - sigma2 / 2), float(np.sqrt(sigma2))


def local_day_start(d: date) -> np.datetime64:
    return np.datetime64(d.isoformat(), "s")


def now_local_naive(now: datetime) -> np.datetime64:
    """``now`` as naive city-local time (seconds), to compare with the generated local timestamps."""
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    return np.datetime64(now.astimezone(CITY_UTC_OFFSET).replace(tzinfo=None, microsecond=0).isoformat(), "s")


# ---- transmission -------------------------------------------------------------------------------
class _Growing:
    """Column arrays that double in size as infections are appended."""

    def __init__(self, **dtypes):
        self.n = 0
        self.cols = {k: np.zeros(1024, dtype=t) for k, t in dtypes.items()}

    def append(self, **values) -> None:
        m = len(next(iter(values.values())))
        if self.n + m > len(next(iter(self.cols.values()))):
            size = max(2 * (self.n + m), 1024)
            for k, a in self.cols.items():
                grown = np.zeros(size, dtype=a.dtype)
                grown[: self.n] = a[: self.n]
                self.cols[k] = grown
        for k, v in values.items():
            self.cols[k][self.n: self.n + m] = v
        self.n += m

    def __getitem__(self, k) -> np.ndarray:
        return self.cols[k][: self.n]


def _plant_clusters(rng: np.random.Generator, city: City, days: int) -> tuple[PlantedCluster, ...]:
    grid = city.grid
    n = int(rng.integers(2, 4))
    # Busy but not the busiest neighbourhoods (density between the city's median and its 85th
    # percentile), so a cluster stands out from the diffuse spread, whose cases follow population;
    # the whole ~250 m around the block must be homes.
    lo, hi = np.quantile(grid.smoothed[grid.people > 0], [0.5, 0.85])
    cand_x, cand_y = grid.sample_points(rng, 4000, np.where((grid.smoothed >= lo) & (grid.smoothed <= hi),
                                                            grid.people, 0))
    ring = [(dx, dy) for dx in (-250, 0, 250) for dy in (-250, 0, 250)]
    ok = np.all([grid.is_populated(cand_x + dx, cand_y + dy) for dx, dy in ring], axis=0)
    cand_x, cand_y = cand_x[ok], cand_y[ok]
    comm = city.communities.locate(cand_x, cand_y)
    chosen: list[int] = []
    for i in range(len(cand_x)):
        if len(chosen) == n:
            break
        if all(comm[i] != comm[j] and np.hypot(cand_x[i] - cand_x[j], cand_y[i] - cand_y[j]) >= CLUSTER_MIN_SPACING_M
               for j in chosen):
            chosen.append(i)
    lo, hi = CLUSTER_START_DAYS_BEFORE_END
    starts = np.clip(days - rng.integers(lo, hi + 1, size=len(chosen)), 0, days - 1)
    lat, lng = metric_to_latlng(cand_x[chosen], cand_y[chosen])
    return tuple(PlantedCluster(k, float(cand_x[i]), float(cand_y[i]), float(lat[k]), float(lng[k]), int(starts[k]))
                 for k, i in enumerate(chosen))


def _place_near(rng: np.random.Generator, city: City, x0: np.ndarray, y0: np.ndarray, kind: str
                ) -> tuple[np.ndarray, np.ndarray]:
    """Offspring positions around (x0, y0): a distance kernel, retried until they land on homes."""
    grid = city.grid
    x, y = np.empty_like(x0), np.empty_like(y0)
    todo = np.arange(len(x0))
    for _ in range(8):
        if len(todo) == 0:
            break
        m = len(todo)
        if kind == "cluster":
            dx, dy = rng.normal(0.0, CLUSTER_SD_M, size=(2, m))
        else:
            dist = rng.lognormal(np.log(LOCAL_KERNEL_MEDIAN_M), LOCAL_KERNEL_SIGMA, size=m)
            ang = rng.uniform(0, 2 * np.pi, size=m)
            dx, dy = dist * np.cos(ang), dist * np.sin(ang)
        x[todo], y[todo] = x0[todo] + dx, y0[todo] + dy
        todo = todo[~grid.is_populated(x[todo], y[todo])]
    if len(todo):  # the lake or the city edge: they live elsewhere
        x[todo], y[todo] = grid.sample_points(rng, len(todo))
    return x, y


def simulate_infections(rng: np.random.Generator, city: City, days: int
                        ) -> tuple[Infections, tuple[PlantedCluster, ...]]:
    """Run the spatial renewal process day by day; vectorised over infectors within a day."""
    grid = city.grid
    r_t = _interp_knots(R_KNOTS, days)
    clusters = _plant_clusters(rng, city, days)
    people = grid.people.ravel()
    # Density factor normalised so that the average resident has factor 1.
    mean_factor = np.sum(people * (grid.smoothed.ravel() + 1e-9) ** DENSITY_EXPONENT) / people.sum()

    inf = _Growing(x=float, y=float, day=np.int32, cluster=np.int16, imported=bool, nu=float, dens=float)

    def add(x, y, day, cluster, imported, nu):
        dens = (grid.density_at(x, y) + 1e-9) ** DENSITY_EXPONENT / mean_factor
        inf.append(x=x, y=y, day=np.full(len(x), day), cluster=cluster, imported=np.full(len(x), imported),
                   nu=nu, dens=np.clip(dens, 0.4, 1.8))

    cluster_size = np.zeros(max(len(clusters), 1))
    aware_half = AWARE_HALF_PER_100K * city.population / 1e5
    for t in range(days):
        rate = IMPORT_RATE_EARLY if t < IMPORTS_EARLY_UNTIL * days else IMPORT_RATE_LATE
        n_imp = SEED_INFECTIONS if t == 0 else int(rng.poisson(rate))
        if n_imp:
            # Travellers are tested and told to isolate: no superspreaders among them (and less noise).
            x, y = grid.sample_points(rng, n_imp)
            add(x, y, t, np.full(n_imp, -1), True, np.ones(n_imp))
        for c in clusters:
            if c.start_day == t:
                x, y = _place_near(rng, city, np.full(CLUSTER_SEEDS, c.x), np.full(CLUSTER_SEEDS, c.y), "cluster")
                add(x, y, t, np.full(CLUSTER_SEEDS, c.cluster_id), False, np.ones(CLUSTER_SEEDS))
                cluster_size[c.cluster_id] += CLUSTER_SEEDS

        age = t - inf["day"]
        idx = np.flatnonzero((age >= 1) & (age <= GI_MAX_D))
        if len(idx) == 0:
            continue
        susceptible = max(0.0, 1.0 - inf.n / city.population)
        lo, hi = AWARE_LAG_D
        recent = np.count_nonzero((age >= lo) & (age <= hi)) / (hi - lo + 1)
        behaviour = 1.0 / (1.0 + (recent / aware_half) ** 2)
        cl = inf["cluster"][idx]
        in_cl = cl >= 0
        r_each = np.where(in_cl, CLUSTER_R * np.clip(1 - cluster_size[np.maximum(cl, 0)] / CLUSTER_POOL, 0, 1),
                          r_t[t] * behaviour * inf["dens"][idx] * susceptible)
        lam = r_each * GENERATION_INTERVAL[age[idx] - 1] * inf["nu"][idx]
        parents = np.repeat(idx, rng.poisson(lam))
        m = len(parents)
        if m == 0:
            continue
        p_cl = inf["cluster"][parents]
        stay = (p_cl >= 0) & (rng.random(m) < CLUSTER_STAY)
        jump = ~stay & (rng.random(m) < LONG_RANGE_SHARE)
        local = ~stay & ~jump
        x, y = np.empty(m), np.empty(m)
        if stay.any():
            cx = np.array([c.x for c in clusters])[p_cl[stay]]
            cy = np.array([c.y for c in clusters])[p_cl[stay]]
            x[stay], y[stay] = _place_near(rng, city, cx, cy, "cluster")
            np.add.at(cluster_size, p_cl[stay], 1)
        if local.any():
            x[local], y[local] = _place_near(rng, city, inf["x"][parents[local]], inf["y"][parents[local]], "local")
        if jump.any():
            x[jump], y[jump] = grid.sample_points(rng, int(jump.sum()))
        nu = np.where(stay, 1.0, rng.gamma(DISPERSION_K, 1 / DISPERSION_K, m))
        add(x, y, t, np.where(stay, p_cl, -1), False, nu)

    return Infections(inf["x"].copy(), inf["y"].copy(), inf["day"].astype(np.int64), inf["cluster"].astype(np.int64),
                      inf["imported"].copy()), clusters


# ---- clinical course ----------------------------------------------------------------------------
def clinical_course(rng: np.random.Generator, infections: Infections, days: int, start_date: date) -> Course:
    n = len(infections.day)
    age = rng.choice(len(AGE_PROBS), size=n, p=AGE_PROBS)
    cum = np.cumsum(SEVERITY_BY_AGE, axis=1)[age]
    severity = (rng.random(n)[:, None] > cum[:, :-1]).sum(axis=1)
    symptomatic = severity >= 1
    mu, sigma = _lognormal_params(INCUBATION_MEAN_D, INCUBATION_SD_D)
    incubation = np.maximum(1, np.round(rng.lognormal(mu, sigma, n))).astype(np.int64)
    onset = np.where(symptomatic, infections.day + incubation, -1)
    report = np.where(symptomatic, onset + rng.integers(1, 5, n), infections.day + rng.integers(3, 10, n))
    weekday = (start_date.weekday() + report) % 7
    report = report + ((weekday == 6) & (rng.random(n) < SUNDAY_DEFERRAL))
    ascertained = infections.imported | (rng.random(n) < REPORT_PROB_BY_SEVERITY[severity])
    report = np.where(ascertained & (report <= days - 1), report, -1)
    return Course(age, severity, onset, report)


def _case_order(course: Course) -> np.ndarray:
    """Infection indices of reported cases, in reporting order (case numbers follow it)."""
    reported = np.flatnonzero(course.report_day >= 0)
    return reported[np.lexsort((reported, course.report_day[reported]))]


# ---- hospitals ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Stays:
    infection: np.ndarray    # infection index
    facility: np.ndarray     # index into reporting facilities
    icu: np.ndarray          # bool
    admit_day: np.ndarray
    discharge_day: np.ndarray   # may be beyond the end (still in)
    died: np.ndarray


def _admissions(rng: np.random.Generator, city: City, inf: Infections, course: Course, days: int,
                order: np.ndarray) -> tuple[_Stays, np.ndarray, np.ndarray]:
    """Admit severe/critical cases (and some moderate) to the nearest facility with a designated bed.

    Returns the stays and the COVID census per (facility, day) for ward and ICU beds. Processing
    admissions in time order and checking space on the admission day keeps every later day within
    capacity too: everyone present later was already present (and counted) at the latest admission.
    """
    facs = [f for f in city.facilities if f.kind != "potential_site"]
    n_fac = len(facs)
    ward_phys = np.array([f.beds - f.icu_beds for f in facs])
    icu_phys = np.array([f.icu_beds for f in facs])
    ward_desig = np.round(ward_phys * np.array([f.covid_ward_share for f in facs])).astype(int)
    icu_desig = np.round(icu_phys * np.array([f.covid_icu_share for f in facs])).astype(int)
    is_general = np.array([f.kind == "hospital" for f in facs])
    is_temp = np.array([f.kind == "temporary_hospital" for f in facs])
    is_qc = np.array([f.kind == "quarantine_centre" for f in facs])
    fx, fy = np.array([f.x for f in facs]), np.array([f.y for f in facs])
    ward = np.zeros((n_fac, days), np.int64)
    icu = np.zeros((n_fac, days), np.int64)

    sev = course.severity[order]
    older = course.age_band[order] >= 5
    moderate_qc = (sev == 2) & (rng.random(len(order)) < np.where(older, QC_ADMIT_PROB_OLDER, QC_ADMIT_PROB_YOUNGER))
    need = np.where(sev == 4, 2, np.where(sev == 3, 1, np.where(moderate_qc, 3, 0)))  # 1 ward, 2 icu, 3 qc
    delay = np.where(need == 3, rng.integers(0, 3, len(order)), rng.integers(0, 2, len(order)))
    admit = course.report_day[order] + delay
    mu, sigma = _lognormal_params(WARD_LOS_MEAN_D, WARD_LOS_SD_D)
    los_ward = np.maximum(1, np.round(rng.lognormal(mu, sigma, len(order))))
    los_icu = np.maximum(2, np.round(rng.gamma(ICU_LOS_SHAPE, ICU_LOS_SCALE, len(order))))
    los_qc = rng.integers(7, 14, len(order))
    u_death = rng.random(len(order))

    rows: list[tuple] = []
    admitted = np.flatnonzero((need > 0) & (admit <= days - 1))
    for j in admitted[np.argsort(admit[admitted], kind="stable")]:
        i, d = order[j], int(admit[j])
        dist = np.hypot(fx - inf.x[i], fy - inf.y[i])
        want_icu = need[j] == 2
        choice, in_icu = -1, False
        if want_icu:
            for cap in (icu_desig, icu_phys):
                ok = np.flatnonzero((icu_phys > 0) & (icu[:, d] < cap) & ~is_qc)
                if len(ok):
                    choice, in_icu = int(ok[np.argmin(dist[ok])]), True
                    break
        if choice < 0 and need[j] in (1, 2):
            # General hospitals first, then the field hospital, then surge beyond designated beds.
            for mask, cap in ((is_general, ward_desig), (is_temp, ward_desig), (is_general | is_temp, ward_phys)):
                ok = np.flatnonzero(mask & (ward[:, d] < cap))
                if len(ok):
                    choice = int(ok[np.argmin(dist[ok])])
                    break
        if need[j] == 3:
            ok = np.flatnonzero(is_qc & (ward[:, d] < ward_phys))
            choice = int(ok[0]) if len(ok) else -1
        if choice < 0:
            continue  # no bed anywhere: cared for at home (not an admission)
        los = los_icu[j] if in_icu else (los_qc[j] if need[j] == 3 else los_ward[j])
        discharge = d + int(los)
        p_die = DEATH_PROB["icu"] if in_icu else (DEATH_PROB["qc"] if need[j] == 3 else DEATH_PROB["ward"])
        (icu if in_icu else ward)[choice, d: min(discharge, days)] += 1
        rows.append((i, choice, in_icu, d, discharge, u_death[j] < p_die))
    cols = list(zip(*rows)) if rows else [[] for _ in range(6)]
    stays = _Stays(*(np.array(c, dtype=t) for c, t in zip(cols, (np.int64, np.int64, bool, np.int64, np.int64,
                                                                 bool))))
    return stays, ward, icu


# ---- record tables ------------------------------------------------------------------------------
def _dates(start_date: date, day_index: np.ndarray) -> np.ndarray:
    """datetime64[D] for day indices; NaT where the index is negative."""
    out = np.datetime64(start_date.isoformat(), "D") + np.asarray(day_index).astype("timedelta64[D]")
    return np.where(np.asarray(day_index) >= 0, out, np.datetime64("NaT", "D"))


def _cases_table(start_date: date, days: int, inf: Infections, course: Course, order: np.ndarray, stays: _Stays,
                 rng: np.random.Generator) -> pd.DataFrame:
    lat, lng = metric_to_latlng(inf.x[order], inf.y[order])
    sev = course.severity[order]
    # Outcome as of the end: deaths and discharges from hospital; otherwise recovery after a fixed course.
    end = days - 1
    death_day = np.full(len(inf.day), -1)
    discharge_day = np.full(len(inf.day), -1)
    died = stays.died & (stays.discharge_day <= end)
    death_day[stays.infection[died]] = stays.discharge_day[died]
    left = ~stays.died & (stays.discharge_day <= end)
    discharge_day[stays.infection[left]] = stays.discharge_day[left]
    hospitalised = np.zeros(len(inf.day), bool)
    hospitalised[stays.infection] = True
    recover_after = np.select([sev == 0, sev == 1, sev == 2], [RECOVERY_D["asymptomatic"], RECOVERY_D["mild"],
                                                               RECOVERY_D["moderate"]], 10**6)
    base_day = np.where(course.onset_day[order] >= 0, course.onset_day[order], course.report_day[order])
    recovered = np.where(hospitalised[order], discharge_day[order] >= 0, base_day + recover_after <= end)
    status = np.where(death_day[order] >= 0, "deceased", np.where(recovered, "recovered", "confirmed"))
    age_band = np.array(AGE_BANDS, dtype=object)[course.age_band[order]]
    age_band[rng.random(len(order)) < UNKNOWN_AGE_SHARE] = "unknown"
    return pd.DataFrame({
        "case_id": [f"DC-{k + 1:06d}" for k in range(len(order))],
        "reported_date": _dates(start_date, course.report_day[order]),
        "onset_date": _dates(start_date, course.onset_day[order]),
        "lat": lat, "lng": lng,
        "status": status,
        "severity": np.array(SEVERITIES, dtype=object)[sev],
        "age_band": age_band,
        "imported": inf.imported[order],
    })


def _admissions_table(start_date: date, days: int, stays: _Stays, case_ids: dict[int, str], facility_ids: list[str]
                      ) -> pd.DataFrame:
    end = days - 1
    done = stays.discharge_day <= end
    outcome = np.where(done, np.where(stays.died, "deceased", "recovered"), None)
    return pd.DataFrame({
        "admission_id": [f"ADM-{k + 1:05d}" for k in range(len(stays.infection))],
        "case_id": [case_ids[int(i)] for i in stays.infection],
        "facility_id": np.array(facility_ids, dtype=object)[stays.facility] if len(stays.facility) else [],
        "admitted_on": _dates(start_date, stays.admit_day),
        "icu": stays.icu,
        "discharged_on": _dates(start_date, np.where(done, stays.discharge_day, -1)),
        "outcome": outcome,
    })


def _tests_table(rng: np.random.Generator, city: City, start_date: date, days: int, inf: Infections,
                 course: Course, order: np.ndarray) -> pd.DataFrame:
    """Daily tests per community: positives are the day's reported cases; the tested count follows a
    positivity that rises with incidence (3 % when quiet to ~15 % when testing is overwhelmed), plus
    background testing (travel, pre-operative, symptomatic screening) with a weekend dip."""
    areas = city.communities.areas
    comm = city.communities.locate(inf.x[order], inf.y[order])
    positive = np.zeros((len(areas), days), np.int64)
    np.add.at(positive, (comm, course.report_day[order]), 1)
    pop = np.array([a.population for a in areas], float)
    kernel = np.ones(7) / 7
    inc7 = np.array([np.convolve(p, kernel)[:days] for p in positive]) / np.maximum(pop, 1)[:, None] * 1e5
    target = 0.03 + 0.12 * inc7 / (inc7 + 25.0)
    weekday = (start_date.weekday() + np.arange(days)) % 7
    background_rate = 0.0005 * np.where(weekday == 6, 0.5, np.where(weekday == 5, 0.75, 1.0))
    background = rng.poisson(pop[:, None] * background_rate[None, :])
    tested = np.ceil(positive / target).astype(np.int64) + background
    area_idx, day_idx = np.meshgrid(np.arange(len(areas)), np.arange(days), indexing="ij")
    frame = pd.DataFrame({
        "test_date": _dates(start_date, day_idx.ravel()),
        "area_id": np.array([a.area_id for a in areas], dtype=object)[area_idx.ravel()],
        "tested": tested.ravel(), "positive": positive.ravel()})
    return frame.sort_values(["test_date", "area_id"], kind="stable").reset_index(drop=True)


def _report_times(start_date: date, days: int, now_local: np.datetime64, hour: int) -> tuple[np.ndarray, np.ndarray]:
    """(day indices, local timestamps) of a daily report at ``hour``, up to now."""
    ts = local_day_start(start_date) + np.arange(days) * np.timedelta64(86400, "s") + np.timedelta64(hour * 3600, "s")
    keep = ts <= now_local
    return np.arange(days)[keep], ts[keep]


def _capacity_and_supplies(rng: np.random.Generator, city: City, start_date: date, days: int,
                           now_local: np.datetime64, ward: np.ndarray, icu: np.ndarray, daily_reported: np.ndarray
                           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    facs = [f for f in city.facilities if f.kind != "potential_site"]
    n = len(facs)
    weekday = (start_date.weekday() + np.arange(days)) % 7
    # Non-COVID occupancy: fuller on weekdays (elective lists), with slow AR(1) drift.
    drift = np.zeros((n, days))
    eps = rng.normal(0, 0.015, (n, days))
    for d in range(1, days):
        drift[:, d] = 0.8 * drift[:, d - 1] + eps[:, d]
    general = np.array([f.kind == "hospital" for f in facs])
    ward_rate = np.where(general[:, None], 0.74 + 0.04 * (weekday < 5)[None, :] + drift, 0.0)
    icu_rate = np.where(general[:, None], 0.55 + drift, 0.0)
    ward_beds = np.array([f.beds - f.icu_beds for f in facs])[:, None]
    icu_beds = np.array([f.icu_beds for f in facs])[:, None]
    ward_occ = np.minimum(ward_beds, np.round(ward_rate * ward_beds) + ward)
    icu_occ = np.minimum(icu_beds, np.round(icu_rate * icu_beds) + icu)
    vents = np.array([f.ventilators for f in facs])[:, None]
    vents_used = np.minimum(vents, np.round(0.6 * icu + 0.35 * (icu_occ - icu)))
    # Staff absence rises with community incidence (infected or quarantined staff).
    pressure = np.convolve(daily_reported, np.ones(7) / 7)[:days] / max(float(daily_reported.max()), 1.0)
    absent = np.clip(0.03 + 0.09 * pressure[None, :] + rng.normal(0, 0.01, (n, days)), 0, 0.5)
    staff = np.round(np.array([f.staff for f in facs])[:, None] * np.where(weekday >= 5, 0.85, 1.0)[None, :]
                     * (1 - absent)).astype(np.int64)

    day_idx, ts = _report_times(start_date, days, now_local, 8)
    fid = np.array([f.facility_id for f in facs], dtype=object)
    covid = ward + icu
    cap_frames = []
    for k in range(n):
        cap_frames.append(pd.DataFrame({
            "facility_id": fid[k], "reported_at": ts,
            "beds_total": facs[k].beds, "beds_occupied": (ward_occ[k] + icu_occ[k])[day_idx].astype(np.int64),
            "icu_total": facs[k].icu_beds, "icu_occupied": icu_occ[k][day_idx].astype(np.int64),
            "ventilators_total": facs[k].ventilators, "ventilators_in_use": vents_used[k][day_idx].astype(np.int64),
            "staff_on_duty": staff[k][day_idx], "covid_patients": covid[k][day_idx].astype(np.int64)}))
    capacity = pd.concat(cap_frames, ignore_index=True).sort_values(["reported_at", "facility_id"], kind="stable")

    # Supplies: use follows patients; stock is reordered at 7 days' cover, 28 days' worth arriving after
    # a lead time that is usually 2-4 days but sometimes a week and more (a shortage on the dashboard).
    other = ward_occ + icu_occ - covid
    use = {
        "ppe": (15.0 * covid + 0.8 * other, "sets"),
        "oxygen": (2.0 * icu + 0.5 * ward + 0.04 * other, "cylinders"),
        "test_kits": (2.0 * covid + 0.08 * (ward_beds + icu_beds), "kits"),
    }
    sup_frames = []
    for item, (mean_use, unit) in use.items():
        daily = np.round(mean_use * rng.lognormal(0, 0.1, mean_use.shape) + rng.poisson(2, mean_use.shape))
        stock = np.zeros((n, days))
        level = np.round(np.maximum(daily[:, :7].mean(axis=1) * 21, 50))
        pending = np.full(n, -1)
        pending_qty = np.zeros(n)
        for d in range(days):
            arrive = pending == d
            level = level + np.where(arrive, pending_qty, 0)
            pending = np.where(arrive, -1, pending)
            stock[:, d] = np.round(level)
            recent = np.maximum(daily[:, max(0, d - 6): d + 1].mean(axis=1), 1)
            order_now = (pending < 0) & (level < 7 * recent)
            lead = np.where(rng.random(n) < 0.1, rng.integers(7, 12, n), rng.integers(2, 5, n))
            pending = np.where(order_now, d + lead, pending)
            pending_qty = np.where(order_now, np.round(28 * recent), pending_qty)
            level = np.maximum(level - daily[:, d], 0)
        # Report at 08:00: stock on hand and yesterday's use.
        yesterday = np.concatenate([daily[:, :1], daily[:, :-1]], axis=1)
        for k in range(n):
            sup_frames.append(pd.DataFrame({
                "facility_id": fid[k], "reported_at": ts, "item": item,
                "stock": stock[k][day_idx], "daily_use": yesterday[k][day_idx], "unit": unit}))
    supplies = pd.concat(sup_frames, ignore_index=True).sort_values(["reported_at", "facility_id", "item"],
                                                                   kind="stable")
    return capacity.reset_index(drop=True), supplies.reset_index(drop=True)


# ---- sensor readings ----------------------------------------------------------------------------
def _slot_times(start_date: date, days: int, interval_h: int) -> np.ndarray:
    """Local timestamps every ``interval_h`` hours from the first midnight (value = the interval just ended)."""
    n = days * 24 // interval_h
    return local_day_start(start_date) + np.arange(n) * np.timedelta64(interval_h * 3600, "s")


def _readings_frame(sensor_ids: list[str], ts: np.ndarray, values: np.ndarray, kind: str, now_local: np.datetime64
                    ) -> pd.DataFrame:
    """Long table of one kind's readings (sensor-major, time order, seq from 1), cut at now."""
    metric, unit = METRICS[kind]
    keep = ts <= now_local
    ts, values = ts[keep], values[:, keep]
    n_s, n_t = values.shape
    return pd.DataFrame({
        "sensor_id": np.repeat(np.array(sensor_ids, dtype=object), n_t),
        "seq": np.tile(np.arange(1, n_t + 1), n_s),
        "ts": np.tile(ts, n_s), "metric": metric, "value": values.ravel(), "unit": unit})


def _wastewater(rng: np.random.Generator, city: City, inf: Infections, days: int, start_date: date,
                now_local: np.datetime64) -> tuple[pd.DataFrame, np.ndarray]:
    catch = city.catchments
    n_c = len(catch.areas)
    which = catch.locate(inf.x, inf.y)
    infected = np.zeros((n_c, days))
    np.add.at(infected, (which, inf.day), 1)
    load = np.array([np.convolve(row, SHEDDING)[:days] for row in infected])
    pop = np.array([a.population for a in catch.areas], float)
    daily = WW_COPIES_PER_L * load / np.maximum(pop, 1)[:, None] + WW_BACKGROUND_COPIES_PER_L
    sensors = [s for s in city.sensors if s.kind == "wastewater"]
    ts = _slot_times(start_date, days, READING_INTERVAL_H["wastewater"])
    t_days = np.arange(len(ts)) / 24.0
    # Hour by hour: interpolate the daily level (centred at noon), dilution by the morning flow peak.
    levels = np.array([np.interp(t_days, np.arange(days) + 0.5, daily[s.catchment]) for s in sensors])
    hour = np.arange(len(ts)) % 24
    dilution = 1.0 - 0.2 * np.exp(-((hour - 8.0) ** 2) / 8.0)
    values = np.round(levels * dilution * rng.lognormal(0, WW_NOISE_SIGMA, levels.shape))
    return _readings_frame([s.sensor_id for s in sensors], ts, values, "wastewater", now_local), daily


def _hour_block_mean(profile: np.ndarray, slot_hours: np.ndarray, interval_h: int) -> np.ndarray:
    """Mean of an hourly profile over the ``interval_h`` hours ending at each slot hour."""
    return np.mean([profile[(slot_hours - k) % 24] for k in range(1, interval_h + 1)], axis=0)


def _footfall(rng, city, days, start_date, now_local, mobility) -> tuple[pd.DataFrame, dict[str, float]]:
    sensors = [s for s in city.sensors if s.kind == "footfall"]
    h = READING_INTERVAL_H["footfall"]
    ts = _slot_times(start_date, days, h)
    slot_hour = (np.arange(len(ts)) * h) % 24
    slot_day = np.arange(len(ts)) * h // 24
    dens = city.grid.density_at([s.x for s in sensors], [s.y for s in sensors])
    base = rng.lognormal(np.log(120.0), 0.6, len(sensors)) * np.sqrt(dens / max(dens.mean(), 1e-9))
    weekday = (start_date.weekday() + slot_day) % 7
    shape = _hour_block_mean(FOOTFALL_PROFILE, slot_hour, h) * WEEKDAY_FOOTFALL[weekday] * mobility[slot_day]
    counts = rng.poisson(base[:, None] * shape[None, :] * h)
    values = np.round(counts / h, 2)
    levels = {s.sensor_id: float(b * mobility[-1]) for s, b in zip(sensors, base)}
    return _readings_frame([s.sensor_id for s in sensors], ts, values, "footfall", now_local), levels


def _fever_kiosks(rng, city, inf, course, days, start_date, now_local) -> tuple[pd.DataFrame, dict[str, float]]:
    sensors = [s for s in city.sensors if s.kind == "fever_kiosk"]
    sym = np.flatnonzero((course.onset_day >= 0) & (course.onset_day < days))
    kx, ky = np.array([s.x for s in sensors]), np.array([s.y for s in sensors])
    near = np.hypot(kx[:, None] - inf.x[sym][None, :], ky[:, None] - inf.y[sym][None, :]) <= FEVER_RADIUS_M
    onsets = np.zeros((len(sensors), days))
    k_idx, i_idx = np.nonzero(near)
    np.add.at(onsets, (k_idx, course.onset_day[sym][i_idx]), 1)
    febrile = np.array([np.convolve(row, np.ones(FEVER_WINDOW_D))[:days] for row in onsets])
    h = READING_INTERVAL_H["fever_kiosk"]
    ts = _slot_times(start_date, days, h)
    slot_hour = (np.arange(len(ts)) * h) % 24
    slot_day = np.arange(len(ts)) * h // 24
    # Kiosks screen people walking past: the footfall profile, normalised to a mean of 1.
    shape = _hour_block_mean(FOOTFALL_PROFILE / FOOTFALL_PROFILE.mean(), slot_hour, h)
    rate = (FEVER_BASE_PER_H + FEVER_ALERTS_PER_NEARBY * febrile[:, slot_day]) * shape[None, :]
    values = np.round(rng.poisson(rate * h) / h, 2)
    levels = {s.sensor_id: float(FEVER_BASE_PER_H + FEVER_ALERTS_PER_NEARBY * febrile[i, -1])
              for i, s in enumerate(sensors)}
    return _readings_frame([s.sensor_id for s in sensors], ts, values, "fever_kiosk", now_local), levels


def _air_quality(rng, city, days, start_date, now_local) -> tuple[pd.DataFrame, dict[str, float]]:
    sensors = [s for s in city.sensors if s.kind == "air_quality"]
    ar = np.zeros(days)
    eps = rng.normal(0, 0.12, days)
    for d in range(1, days):
        ar[d] = 0.8 * ar[d - 1] + eps[d]
    # A haze episode (transboundary smoke) somewhere in the middle of the period.
    peak_day, amplitude = rng.uniform(0.3, 0.7) * days, rng.uniform(35.0, 70.0)
    city_level = PM25_BASE * np.exp(ar) + amplitude * np.exp(-((np.arange(days) - peak_day) ** 2) / (2 * 5.0 ** 2))
    h = READING_INTERVAL_H["air_quality"]
    ts = _slot_times(start_date, days, h)
    slot_hour = (np.arange(len(ts)) * h) % 24
    slot_day = np.arange(len(ts)) * h // 24
    traffic = 1 + 0.25 * (_hour_block_mean(FOOTFALL_PROFILE, slot_hour, h) - FOOTFALL_PROFILE.mean())
    site = rng.lognormal(0, 0.15, len(sensors))
    values = np.round(site[:, None] * city_level[slot_day][None, :] * traffic[None, :]
                      * rng.lognormal(0, 0.1, (len(sensors), len(ts))), 1)
    levels = {s.sensor_id: float(site[i] * city_level[-1]) for i, s in enumerate(sensors)}
    return _readings_frame([s.sensor_id for s in sensors], ts, values, "air_quality", now_local), levels


def _panic_buttons(rng, city, days, start_date, now_local, daily_reported) -> tuple[pd.DataFrame, dict[str, float]]:
    sensors = [s for s in city.sensors if s.kind == "panic_button"]
    stress = np.convolve(daily_reported, np.ones(7) / 7)[:days] / max(float(daily_reported.max()), 1.0)
    rate = PANIC_PER_SENSOR_DAY * (1 + 2.0 * stress)
    presses = rng.poisson(np.broadcast_to(rate, (len(sensors), days)))
    s_idx, d_idx = np.nonzero(presses)
    s_idx, d_idx = np.repeat(s_idx, presses[s_idx, d_idx]), np.repeat(d_idx, presses[s_idx, d_idx])
    ts = (local_day_start(start_date) + d_idx * np.timedelta64(86400, "s")
          + rng.integers(0, 86400, len(d_idx)).astype("timedelta64[s]"))
    keep = ts <= now_local
    s_idx, ts = s_idx[keep], ts[keep]
    order = np.lexsort((ts, s_idx))
    s_idx, ts = s_idx[order], ts[order]
    # seq counts up per sensor.
    first = np.r_[True, s_idx[1:] != s_idx[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(len(s_idx)), 0))
    metric, unit = METRICS["panic_button"]
    frame = pd.DataFrame({"sensor_id": np.array([s.sensor_id for s in sensors], dtype=object)[s_idx],
                          "seq": np.arange(len(s_idx)) - start + 1, "ts": ts, "metric": metric,
                          "value": 1.0, "unit": unit})
    levels = {s.sensor_id: float(rate[-1]) for s in sensors}
    return frame, levels


# ---- the whole demo -----------------------------------------------------------------------------
def generate_epidemic(city: City, seed: int, days: int, end_date: date, now: datetime,
                      progress=None) -> EpidemicData:
    """Simulate ``days`` days ending on ``end_date`` and derive every record table (cut at ``now``)."""
    if days < 1:
        raise ValueError("days must be at least 1")
    start_date = end_date - timedelta(days=days - 1)
    now_local = now_local_naive(now)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, 0xE91]).spawn(8)]
    step = (lambda name, i: progress(name, i, 4)) if progress else (lambda name, i: None)

    step("epidemic: transmission", 0)
    infections, clusters = simulate_infections(streams[0], city, days)
    course = clinical_course(streams[1], infections, days, start_date)
    order = _case_order(course)
    daily_reported = np.bincount(course.report_day[order], minlength=days)[:days]
    mobility = _interp_knots(MOBILITY_KNOTS, days)

    step("epidemic: hospitals", 1)
    stays, ward, icu = _admissions(streams[2], city, infections, course, days, order)
    cases = _cases_table(start_date, days, infections, course, order, stays, streams[3])
    case_ids = dict(zip(order.tolist(), cases["case_id"]))
    reporting = [f.facility_id for f in city.facilities if f.kind != "potential_site"]
    admissions = _admissions_table(start_date, days, stays, case_ids, reporting)
    capacity, supplies = _capacity_and_supplies(streams[4], city, start_date, days, now_local, ward, icu,
                                                daily_reported)
    step("epidemic: tests", 2)
    tests = _tests_table(streams[5], city, start_date, days, infections, course, order)

    step("epidemic: sensor readings", 3)
    rs = np.random.default_rng(np.random.SeedSequence([seed, 0x5E5]))
    ww, ww_daily = _wastewater(rs, city, infections, days, start_date, now_local)
    ff, ff_lv = _footfall(rs, city, days, start_date, now_local, mobility)
    fk, fk_lv = _fever_kiosks(rs, city, infections, course, days, start_date, now_local)
    aq, aq_lv = _air_quality(rs, city, days, start_date, now_local)
    pb, pb_lv = _panic_buttons(rs, city, days, start_date, now_local, daily_reported)
    levels = {**ff_lv, **fk_lv, **aq_lv, **pb_lv}
    levels.update({s.sensor_id: float(ww_daily[s.catchment, -1]) for s in city.sensors if s.kind == "wastewater"})
    step("epidemic: done", 4)
    return EpidemicData(start_date, days, cases, tests, admissions, capacity, supplies,
                        {"wastewater": ww, "footfall": ff, "fever_kiosk": fk, "panic_button": pb, "air_quality": aq},
                        clusters, infections, course, daily_reported, ww_daily, levels, mobility)
