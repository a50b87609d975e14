//! Test fixtures shared by the crates' unit tests (not part of the wire format or the config API).

/// The head of a test site file: `id = "{id}"`, UTC+8, and the one-of-each hierarchy sub-district `sd` →
/// community `c` → comprehensive grid `g`. Append `[[workers]]` (of grid `g`) and `[[zones]]` tables.
pub fn site_head(id: &str) -> String {
    format!(
        r#"
id = "{id}"
name = "Test"
utc_offset_minutes = 480
[[subdistricts]]
id = "sd"
name = "SD"
[[communities]]
id = "c"
name = "C"
subdistrict = "sd"
[[grids]]
id = "g"
name = "G"
community = "c"
kind = "comprehensive"
"#
    )
}

/// A ~100 m × 100 m square at the equator (10,000 m² within 0.2 %), as an inline GeoJSON polygon.
pub const SQUARE: &str = r#"{ type = "Polygon", coordinates = [[[0.0, 0.0], [0.000898315, 0.0], [0.000898315, 0.000904369], [0.0, 0.000904369], [0.0, 0.0]]] }"#;
