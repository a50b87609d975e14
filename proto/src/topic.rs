//! MQTT topic names. Everything lives under a versioned prefix so a breaking change gets `v2`.

/// Default topic prefix.
pub const PREFIX: &str = "crowdgrid/v1";

/// `{prefix}/{site}/{zone}/reading`: one [`crate::Reading`], QoS 1.
pub fn reading(prefix: &str, site: &str, zone: &str) -> String {
    format!("{prefix}/{site}/{zone}/reading")
}

/// Subscription filter for every reading of every site.
pub fn readings_filter(prefix: &str) -> String {
    format!("{prefix}/+/+/reading")
}

/// `{prefix}/{site}/edge/{edge}/status`: retained [`crate::EdgeStatus`]; the Last Will says offline.
pub fn edge_status(prefix: &str, site: &str, edge: &str) -> String {
    format!("{prefix}/{site}/edge/{edge}/status")
}

/// Subscription filter for every edge status.
pub fn edge_status_filter(prefix: &str) -> String {
    format!("{prefix}/+/edge/+/status")
}

/// `{prefix}/{site}/workers/{worker}/tickets`: ticket notifications for one grid worker.
pub fn worker_tickets(prefix: &str, site: &str, worker: &str) -> String {
    format!("{prefix}/{site}/workers/{worker}/tickets")
}

/// Splits a reading topic into `(site, zone)`, or `None` if it is not one.
pub fn parse_reading(prefix: &str, topic: &str) -> Option<(String, String)> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    let (site, zone, leaf) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || leaf != "reading" || site.is_empty() || zone.is_empty() {
        return None;
    }
    Some((site.to_string(), zone.to_string()))
}

/// Splits an edge status topic into `(site, edge)`.
pub fn parse_edge_status(prefix: &str, topic: &str) -> Option<(String, String)> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [site, "edge", edge, "status"] if !site.is_empty() && !edge.is_empty() => {
            Some((site.to_string(), edge.to_string()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_roundtrip() {
        let t = reading(PREFIX, "west-taihu", "beach");
        assert_eq!(t, "crowdgrid/v1/west-taihu/beach/reading");
        assert_eq!(parse_reading(PREFIX, &t), Some(("west-taihu".into(), "beach".into())));
        assert_eq!(parse_reading(PREFIX, "crowdgrid/v1/a/b/c/reading"), None);
        assert_eq!(parse_reading(PREFIX, "other/v1/a/b/reading"), None);
        let s = edge_status(PREFIX, "west-taihu", "edge-1");
        assert_eq!(parse_edge_status(PREFIX, &s), Some(("west-taihu".into(), "edge-1".into())));
        assert_eq!(parse_reading(PREFIX, &s), None);
    }
}
