#!/usr/bin/env python3
"""Writes the West Taihu replay files from the site and edge configuration beside them.

    python3 config/west-taihu/replay/make_replay.py

- cmcc-cells.csv (`ts,cell,devices`): one row per cell every 5 minutes, 13:30-15:25 on 3 October
  2025 (National Day holiday). Target zone densities rise over the first hour to the simulator's
  peaks and hold through the second; the cell counts solve
      people_z = sum_c devices_c * w_cz / market_share / devices_per_person
  for those targets (least squares), then get +-3 % noise per cell.
- campground-gates.csv (`ts,gate,direction,count`): turnstile events on gate banks g1/g2 for the
  north campground from 13:30:00 to 15:29:59 (afternoon check-in opens at 13:30 on an empty
  campground), rows of 1-5 people, plus one `census` row at 14:30:00 carrying the occupancy the
  events give at that moment (a staff headcount).

Deterministic (seeded); prints the densities the files imply. Python 3.11+, standard library only.
"""
import math
import random
import tomllib
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
START = datetime(2025, 10, 3, 13, 30, tzinfo=timezone(timedelta(hours=8)))
SEED = 20251003

# Peak densities (people/m²), as the simulator in edge.toml, and the share of the peak at 13:30.
PEAK = {"campground-north": 2.8, "campground-south": 2.6, "beach": 4.5,
        "jetty": 3.2, "car-park": 2.2, "lakeside-path": 2.4}
START_SHARE = {"campground-north": 0.55, "campground-south": 0.55, "beach": 0.40,
               "jetty": 0.50, "car-park": 0.50, "lakeside-path": 0.50}
CELL_NOISE = 0.03
GATE_PEAK_DENSITY = 2.45   # below the gate source's max_occupancy of 2.5 × area

WGS84_A, WGS84_F = 6378137.0, 1 / 298.257223563


def area_m2(ring):
    """Planar area with WGS84 scale factors at the ring's mean latitude (fine for small zones)."""
    e2 = WGS84_F * (2 - WGS84_F)
    pts = ring[:-1] if ring[0] == ring[-1] else ring
    lat = math.radians(sum(p[1] for p in pts) / len(pts))
    w = 1 - e2 * math.sin(lat) ** 2
    mx = WGS84_A / math.sqrt(w) * math.cos(lat) * math.pi / 180
    my = WGS84_A * (1 - e2) / w ** 1.5 * math.pi / 180
    xy = [(lon * mx, la * my) for lon, la in pts]
    return abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(xy, xy[1:] + xy[:1]))) / 2


def smoothstep(u):
    u = min(max(u, 0.0), 1.0)
    return u * u * (3 - 2 * u)


def shape(zone, minutes):
    """Share of the zone's peak: rises over 60 minutes, then holds with a slow 2 % swell."""
    lo = START_SHARE[zone]
    if minutes <= 60:
        return lo + (1 - lo) * smoothstep(minutes / 60)
    return 1.0 - 0.02 * (1 - math.cos(2 * math.pi * (minutes - 60) / 60)) / 2


def solve_least_squares(a, b):
    """min |a x - b| through the normal equations (small, well-conditioned systems)."""
    n = len(a[0])
    m = [[sum(r[i] * r[j] for r in a) for j in range(n)] + [sum(r[i] * v for r, v in zip(a, b))]
         for i in range(n)]
    for i in range(n):
        p = max(range(i, n), key=lambda k: abs(m[k][i]))
        m[i], m[p] = m[p], m[i]
        for k in range(n):
            if k != i:
                f = m[k][i] / m[i][i]
                m[k] = [x - f * y for x, y in zip(m[k], m[i])]
    return [m[i][n] / m[i][i] for i in range(n)]


def load():
    site = tomllib.loads((HERE.parent / "site.toml").read_text())
    edge = tomllib.loads((HERE.parent / "edge.toml").read_text())
    areas = {z["id"]: area_m2(z["geometry"]["coordinates"][0]) for z in site["zones"]}
    bs = next(s for s in edge["sources"] if s["type"] == "base_station")
    gate = next(s for s in edge["sources"] if s["type"] == "gate")
    return areas, bs, gate


def make_cells(areas, bs, rng):
    zones = list(PEAK)
    cells = [c["cell"] for c in bs["cells"]]
    w = [[c["zones"].get(z, 0.0) for c in bs["cells"]] for z in zones]
    k = bs["market_share"] * bs["devices_per_person"]
    rows, dens = [], {z: [] for z in zones}
    for step in range(24):
        minutes = 5 * step
        target = [PEAK[z] * shape(z, minutes) * areas[z] * k for z in zones]
        devices = solve_least_squares(w, target)
        assert all(d > 0 for d in devices), devices
        devices = [round(d * (1 + rng.uniform(-CELL_NOISE, CELL_NOISE))) for d in devices]
        ts = (START + timedelta(minutes=minutes)).isoformat()
        rows += [f"{ts},{c},{d}" for c, d in zip(cells, devices)]
        for z, wz in zip(zones, w):
            people = sum(d * x for d, x in zip(devices, wz)) / k
            dens[z].append((ts[11:16], people / areas[z]))
    (HERE / "cmcc-cells.csv").write_text("ts,cell,devices\n" + "\n".join(rows) + "\n")
    return dens


def occupancy(peak, minutes):
    """Target occupancy: fast check-in rise to the peak at 105 min, then 2 % down by 120 min."""
    if minutes <= 105:
        u = minutes / 105
        return peak * u * (2 - u)
    return peak * (1 - 0.02 * (minutes - 105) / 15)


def make_gates(areas, gate, rng):
    area = areas[gate["zone"]]
    peak = GATE_PEAK_DENSITY * area
    assert peak <= gate["max_occupancy"], (peak, gate["max_occupancy"])
    share = {("g1", "in"): 0.6, ("g2", "in"): 0.4, ("g1", "out"): 0.5, ("g2", "out"): 0.5}
    acc = {key: 0.0 for key in share}
    chunk = {key: rng.randint(1, 5) for key in share}
    rows, occ, census_done, samples = [], 0, False, []
    for s in range(7200):
        minutes = s / 60
        out_per_min = 15 + 85 * minutes / 120
        net_per_min = (occupancy(peak, minutes + 1 / 60) - occupancy(peak, minutes)) * 60
        rate = {"in": (net_per_min + out_per_min) / 60, "out": out_per_min / 60}
        ts = (START + timedelta(seconds=s)).isoformat()
        if s == 3600 and not census_done:
            rows.append(f"{ts},g1,census,{occ}")
            census_done, census = True, occ
        for (g, d), sh in share.items():
            acc[(g, d)] += rate[d] * sh * rng.uniform(0.7, 1.3)
            while acc[(g, d)] >= chunk[(g, d)]:
                n = chunk[(g, d)]
                rows.append(f"{ts},{g},{d},{n}")
                acc[(g, d)] -= n
                occ += n if d == "in" else -n
                chunk[(g, d)] = rng.randint(1, 5)
        if s % 600 == 599:
            samples.append((ts[11:16], occ, occ / area))
    (HERE / "campground-gates.csv").write_text("ts,gate,direction,count\n" + "\n".join(rows) + "\n")
    return area, census, samples, len(rows)


def main():
    rng = random.Random(SEED)
    areas, bs, gate = load()
    dens = make_cells(areas, bs, rng)
    print("base-station densities (people/m²): zone, 13:30, 14:00, peak (time), 15:25")
    for z, series in dens.items():
        t_peak, d_peak = max(series, key=lambda p: p[1])
        print(f"  {z:17s} {series[0][1]:4.2f}  {series[6][1]:4.2f}  {d_peak:4.2f} ({t_peak})  {series[-1][1]:4.2f}"
              f"   area {areas[z]:,.0f} m²")
    area, census, samples, n = make_gates(areas, gate, rng)
    print(f"gate events: {n} rows; census at 14:30 = {census} ({census / area:.2f}/m²)")
    for t, occ, d in samples:
        print(f"  {t}  occupancy {occ:6d}  {d:4.2f}/m²")


if __name__ == "__main__":
    main()
