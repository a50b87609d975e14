//! One reading through the map and the rules: fuse it into its zone ([`Live::apply`]), then let every rule engine
//! judge the zone's new state. The centre's processor runs this per reading with its one engine; a backtest runs
//! it over stored readings with the current and candidate rule sets side by side — the same code on two clocks,
//! so a backtest raises the tickets the centre would have.

use crowdgrid_proto::Reading;

use super::events::ZoneEvent;
use super::live::Live;
use crate::rules::{Engine, Observation, RuleEvent};

/// Applies `r` to `live`; when the zone's value changed, hands the observation to each engine and returns the
/// change with each engine's rule events (in `engines` order).
pub fn judge(live: &mut Live, r: &Reading, engines: &mut [&mut Engine]) -> Option<(ZoneEvent, Vec<Vec<RuleEvent>>)> {
    let changed = live.apply(r)?;
    let z = live.zone(&r.site, &r.zone)?;
    // The sources are copied out only for a zone whose rules read them (silent, disagree).
    let sources =
        if engines.iter().any(|e| e.needs_sources(&r.site, &r.zone)) { z.source_values() } else { Vec::new() };
    let obs = Observation {
        site: &r.site,
        zone: &r.zone,
        ts: changed.ts,
        density: changed.density,
        count: changed.count,
        inflow_per_min: z.inflow_per_min(),
        conflict: z.conflict(changed.ts, live.fresh()),
        sources: &sources,
    };
    let fired = engines.iter_mut().map(|e| e.observe(&obs)).collect();
    Some((changed, fired))
}
