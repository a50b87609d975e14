//! A city-sized configuration: sub-districts, their communities, grids, zones with polygons and a roster, laid
//! out around Changzhou's centre so the maps draw a plausible city. Deterministic for a given size and seed, so
//! tests and benchmarks on different machines see the same city.
//!
//! Layout: every grid is a 220 m square cell; a sub-district is a square block of cells (its communities are
//! runs of consecutive cells, about seven grids each, Changzhou's ratio), and the blocks sit on a lattice.
//! A grid's zones are squares inside its cell (2×2, 3×3, … as many as it holds). One site per sub-district:
//! the site is what an operator's map loads and what a centre instance can own, and a sub-district of ~115
//! grids and ~320 zones is the size of our real sites' maps.

use crowdgrid_proto::site::{Community, Grid, GridKind, SiteConfig, Subdistrict, Worker, ZoneConfig};
use crowdgrid_proto::Thresholds;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Changzhou's 62 sub-districts, 7,151 grids, about 20,000 zones.
#[derive(Debug, Clone, Copy)]
pub struct CitySize {
    pub subdistricts: usize,
    pub grids: usize,
    pub zones: usize,
    pub seed: u64,
}

impl CitySize {
    /// Changzhou (常州), from the brief.
    pub const CHANGZHOU: CitySize = CitySize { subdistricts: 62, grids: 7151, zones: 20_000, seed: 1 };

    /// Problems with the numbers, all at once.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.subdistricts == 0 {
            p.push("at least one sub-district".to_string());
        }
        if self.grids < self.subdistricts {
            p.push(format!("{} grids cannot fill {} sub-districts", self.grids, self.subdistricts));
        }
        if self.zones < self.grids {
            p.push(format!("{} zones cannot give each of {} grids one", self.zones, self.grids));
        }
        if self.zones > 1_000_000 {
            p.push(format!("{} zones is more than this generator is meant for (1,000,000)", self.zones));
        }
        p
    }
}

const CENTRE: (f64, f64) = (119.974, 31.811); // Changzhou, [lon, lat]
const CELL_M: f64 = 220.0;
const M_PER_DEG_LAT: f64 = 111_320.0;
const GRIDS_PER_COMMUNITY: usize = 7;
/// 1,566 of 7,151 grids are specialised (schools, hospitals, markets, scenic areas).
const SPECIALISED_SHARE: f64 = 1566.0 / 7151.0;
const SPECIALTIES: [&str; 5] = ["school", "hospital", "market", "scenic", "transport"];
const KINDS: [&str; 6] = ["plaza", "street", "market", "park", "school_gate", "station"];
const SURNAMES: [&str; 12] = ["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙"];
const GIVEN: [&str; 12] = ["伟", "芳", "娜", "敏", "静", "磊", "洋", "勇", "艳", "杰", "军", "丽"];

/// `n` split into `parts` as evenly as possible (the first ones get the remainder).
fn share(n: usize, parts: usize, i: usize) -> usize {
    n / parts + usize::from(i < n % parts)
}

/// The sites of a generated city, one per sub-district.
pub fn generate(size: CitySize) -> Vec<SiteConfig> {
    let mut rng = StdRng::seed_from_u64(size.seed);
    let side = (size.subdistricts as f64).sqrt().ceil() as usize;
    let max_grids = share(size.grids, size.subdistricts, 0);
    let block_cells = (max_grids as f64).sqrt().ceil() as usize;
    let block_m = (block_cells + 1) as f64 * CELL_M; // a street's width between blocks
    let m_per_deg_lon = M_PER_DEG_LAT * CENTRE.1.to_radians().cos();
    let origin_x = -(side as f64) * block_m / 2.0;
    let origin_y = (side as f64) * block_m / 2.0;

    let mut zone_no = 0usize;
    let mut grid_no = 0usize;
    let mut sites = Vec::with_capacity(size.subdistricts);
    for sd in 0..size.subdistricts {
        let sd_id = format!("sd{:02}", sd + 1);
        let (bx, by) = ((sd % side) as f64 * block_m + origin_x, origin_y - (sd / side) as f64 * block_m);
        let n_grids = share(size.grids, size.subdistricts, sd);
        let n_comm = n_grids.div_ceil(GRIDS_PER_COMMUNITY);
        let subdistrict = Subdistrict {
            id: sd_id.clone(),
            name: format!("第{}街道 Subdistrict {}", sd + 1, sd + 1),
            district: format!("{}区 District {}", ["天宁", "钟楼", "新北", "武进", "金坛", "溧阳"][sd % 6], sd % 6 + 1),
        };
        let communities: Vec<Community> = (0..n_comm)
            .map(|c| Community {
                id: format!("{sd_id}-c{:02}", c + 1),
                name: format!("第{}社区 Community {}-{}", c + 1, sd + 1, c + 1),
                subdistrict: sd_id.clone(),
            })
            .collect();
        let mut grids = Vec::with_capacity(n_grids);
        let mut workers = Vec::with_capacity(n_grids);
        let mut zones = Vec::new();
        for g in 0..n_grids {
            let zones_here = share(size.zones, size.grids, grid_no);
            grid_no += 1;
            let id = format!("{sd_id}-g{:03}", g + 1);
            let specialised = rng.gen_bool(SPECIALISED_SHARE);
            grids.push(Grid {
                id: id.clone(),
                name: format!("第{}网格 Grid {}-{}", g + 1, sd + 1, g + 1),
                community: communities[g / GRIDS_PER_COMMUNITY].id.clone(),
                kind: if specialised { GridKind::Specialised } else { GridKind::Comprehensive },
                specialty: specialised.then(|| SPECIALTIES[rng.gen_range(0..SPECIALTIES.len())].to_string()),
            });
            let surname = SURNAMES[rng.gen_range(0..SURNAMES.len())];
            let given = GIVEN[rng.gen_range(0..GIVEN.len())];
            workers.push(Worker {
                id: format!("w-{id}"),
                name: format!("{surname}{given} (grid {}-{})", sd + 1, g + 1),
                grids: vec![id.clone()],
                phone: None,
                shifts: Vec::new(),
            });
            // The grid's cell, and its zones on a k×k lattice inside it.
            let (cx, cy) = (bx + (g % block_cells) as f64 * CELL_M, by - (g / block_cells) as f64 * CELL_M);
            let k = (zones_here as f64).sqrt().ceil().max(1.0) as usize;
            let step = (CELL_M - 20.0) / k as f64;
            for zi in 0..zones_here {
                zone_no += 1;
                let x0 = cx + 10.0 + (zi % k) as f64 * step;
                let y0 = cy - 10.0 - (zi / k) as f64 * step;
                let (w, h) = (step - 8.0, step - 8.0);
                let pt = |x: f64, y: f64| vec![CENTRE.0 + x / m_per_deg_lon, CENTRE.1 + y / M_PER_DEG_LAT];
                // Counter-clockwise, as GeoJSON wants an exterior ring (clockwise reads as the rest of the Earth).
                let ring = vec![pt(x0, y0), pt(x0, y0 - h), pt(x0 + w, y0 - h), pt(x0 + w, y0), pt(x0, y0)];
                let kind = KINDS[rng.gen_range(0..KINDS.len())];
                let area = w * h;
                zones.push(ZoneConfig {
                    id: format!("z{zone_no:05}"),
                    name: format!("{kind} {}-{}-{}", sd + 1, g + 1, zi + 1),
                    grid: id.clone(),
                    kind: kind.to_string(),
                    capacity: Some((area * 2.0).round() as u32),
                    thresholds: None,
                    geometry: geojson::Geometry::new(geojson::Value::Polygon(vec![ring])),
                });
            }
        }
        sites.push(SiteConfig {
            id: format!("city-{sd_id}"),
            name: format!("Changzhou {}", subdistrict.name),
            utc_offset_minutes: 480,
            subdistricts: vec![subdistrict],
            communities,
            grids,
            workers,
            thresholds: Thresholds { notice: 2.0, warning: 3.6, critical: 5.0, clear_ratio: 0.8 },
            zones,
        });
    }
    sites
}

#[cfg(test)]
mod tests {
    use super::*;
    use crowdgrid_proto::site::Site;

    #[test]
    fn changzhou_has_the_brief_s_numbers_and_every_site_validates() {
        let sites = generate(CitySize::CHANGZHOU);
        assert_eq!(sites.len(), 62);
        assert_eq!(sites.iter().map(|s| s.grids.len()).sum::<usize>(), 7151);
        assert_eq!(sites.iter().map(|s| s.zones.len()).sum::<usize>(), 20_000);
        let specialised = sites.iter().flat_map(|s| &s.grids).filter(|g| g.kind == GridKind::Specialised).count();
        assert!((1300..1850).contains(&specialised), "{specialised} specialised grids");
        for s in sites.iter().take(3) {
            let text = toml::to_string(s).unwrap();
            let back: SiteConfig = toml::from_str(&text).unwrap();
            let site =
                Site::from_config(back, std::path::Path::new("gen.toml")).unwrap_or_else(|e| panic!("{}: {e}", s.id));
            // 220 m cells, 2×2 zones of ~97 m: a zone is about 9,400 m².
            assert!(site.zones.iter().all(|z| (8_000.0..11_000.0).contains(&z.area_m2)));
        }
    }

    #[test]
    fn zones_of_different_grids_do_not_overlap() {
        let sites = generate(CitySize { subdistricts: 4, grids: 40, zones: 130, seed: 7 });
        let polys: Vec<_> = sites
            .iter()
            .flat_map(|s| Site::from_config(s.clone(), std::path::Path::new("gen.toml")).unwrap().zones)
            .map(|z| {
                // Zones are axis-aligned rectangles: their bounds are them.
                let c: Vec<_> = z.polygon.exterior().coords().copied().collect();
                let (xs, ys): (Vec<f64>, Vec<f64>) = c.iter().map(|p| (p.x, p.y)).unzip();
                let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
                let max = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                [min(&xs), min(&ys), max(&xs), max(&ys)]
            })
            .collect();
        assert_eq!(polys.len(), 130);
        for (i, a) in polys.iter().enumerate() {
            for b in &polys[i + 1..] {
                let apart = a[2] <= b[0] || b[2] <= a[0] || a[3] <= b[1] || b[3] <= a[1];
                assert!(apart, "two generated zones overlap: {a:?} {b:?}");
            }
        }
    }

    #[test]
    fn impossible_sizes_are_all_reported() {
        let p = CitySize { subdistricts: 0, grids: 0, zones: 0, seed: 1 }.problems();
        assert_eq!(p.len(), 1, "{p:?}");
        let p = CitySize { subdistricts: 10, grids: 5, zones: 2, seed: 1 }.problems();
        assert_eq!(p.len(), 2, "{p:?}");
    }
}
