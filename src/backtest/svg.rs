//! A zone's backtest as an SVG chart (`crowdgrid backtest --chart ZONE --svg FILE`): the map's density over the
//! range with the zone's levels, and below it one row per rule set showing where each would have had a ticket open
//! (outlined: tickets a candidate adds). The console draws the same picture (web/js/tuning.js).

use std::fmt::Write;

use chrono::{DateTime, Utc};
use crowdgrid_proto::site::Zone;
use crowdgrid_proto::Level;

use super::report::Report;

const W: f64 = 900.0;
const H: f64 = 180.0;
const ROW: f64 = 16.0;

fn color(level: Level) -> &'static str {
    match level {
        Level::Critical => "#e03131",
        Level::Warning => "#f08c00",
        Level::Notice => "#d6b400",
        Level::Normal => "#2e9e5b",
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The chart of `zone` (of `site`) for `report`, with `series` the map's `(time, density)` over the range.
pub fn chart(report: &Report, site: &str, zone: &Zone, series: &[(DateTime<Utc>, f64)]) -> String {
    let from = report.from.unwrap_or(report.to).timestamp_millis() as f64;
    let to = report.to.timestamp_millis() as f64;
    let span = (to - from).max(1.0);
    let x = |t: DateTime<Utc>| 40.0 + (t.timestamp_millis() as f64 - from) / span * (W - 50.0);
    let th = zone.thresholds;
    let top = series.iter().map(|p| p.1).fold(th.critical, f64::max).max(1.0) * 1.1;
    let y = |d: f64| 10.0 + (1.0 - d / top) * (H - 20.0);
    let height = H + 8.0 + report.sets.len() as f64 * (ROW + 6.0);
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height}" width="{W}" height="{height}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="#111820"/><title>{} / {}: density and the tickets each rule set would have raised</title>"##,
        esc(site),
        esc(&zone.config.id)
    );
    for (level, v) in [(Level::Notice, th.notice), (Level::Warning, th.warning), (Level::Critical, th.critical)] {
        let _ = write!(
            out,
            r##"<line x1="40" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="{}" stroke-dasharray="4 3"/><text x="2" y="{:.1}" fill="#9aa5b1">{v}</text>"##,
            W - 10.0,
            color(level),
            y(v) + 4.0,
            y = y(v)
        );
    }
    let path: Vec<String> = series
        .iter()
        .enumerate()
        .map(|(i, (t, d))| format!("{}{:.1},{:.1}", if i == 0 { 'M' } else { 'L' }, x(*t), y(*d)))
        .collect();
    let _ = write!(out, r##"<path d="{}" fill="none" stroke="#9ecbff" stroke-width="1.5"/>"##, path.join(""));
    let added: Vec<(DateTime<Utc>, &str)> = report
        .diffs
        .iter()
        .flat_map(|d| d.zones.get(&format!("{site}/{}", zone.config.id)))
        .flat_map(|z| z.added.iter().map(|t| (t.ticket.opened, t.ticket.rule.as_str())))
        .collect();
    for (row, set) in report.sets.iter().enumerate() {
        let top = H + 8.0 + row as f64 * (ROW + 6.0);
        let _ = write!(out, r##"<text x="2" y="{:.1}" fill="#9aa5b1">{}</text>"##, top + 12.0, esc(&set.name));
        for t in set.tickets.iter().filter(|t| t.ticket.site == site && t.ticket.zone == zone.config.id) {
            let x0 = x(t.ticket.opened.max(report.from.unwrap_or(report.to)));
            let x1 = x(t.ticket.closed.unwrap_or(report.to));
            let is_added = row > 0 && added.contains(&(t.ticket.opened, t.ticket.rule.as_str()));
            let _ = write!(
                out,
                r##"<rect x="{x0:.1}" y="{top:.1}" width="{:.1}" height="{ROW}" fill="{}"{}><title>{}: {} {} from {} for {:.0} s</title></rect>"##,
                (x1 - x0).max(2.0),
                color(t.ticket.level),
                if is_added { r##" stroke="#ffffff" stroke-width="2""## } else { "" },
                esc(&set.name),
                esc(&t.ticket.rule),
                t.ticket.level.as_str(),
                t.ticket.opened.to_rfc3339(),
                t.open_s
            );
        }
    }
    out.push_str("</svg>\n");
    out
}
