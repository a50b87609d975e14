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

/// What the centre subscribes to for `site` (`+`: every site): readings, edge statuses, evidence snapshots and
/// cameras' views. A cluster instance subscribes to each site it owns on that site's own session.
pub fn centre_filters(prefix: &str, site: &str) -> Vec<String> {
    vec![
        format!("{prefix}/{site}/+/reading"),
        format!("{prefix}/{site}/edge/+/status"),
        format!("{prefix}/{site}/evidence/+/+"),
        format!("{prefix}/{site}/edge/+/view/+"),
    ]
}

/// `{prefix}/{site}/edge/{edge}/status`: retained [`crate::EdgeStatus`]; the Last Will says offline.
pub fn edge_status(prefix: &str, site: &str, edge: &str) -> String {
    format!("{prefix}/{site}/edge/{edge}/status")
}

/// `{prefix}/{site}/edge/{edge}/ack`: the centre's [`crate::ack::CommitAck`]s for that edge, signed with its
/// credential.
pub fn edge_ack(prefix: &str, site: &str, edge: &str) -> String {
    format!("{prefix}/{site}/edge/{edge}/ack")
}

/// `{prefix}/{site}/edge/{edge}/settings`: the centre's retained [`crate::tuning::EdgeSettings`] for that edge,
/// signed with its credential.
pub fn edge_settings(prefix: &str, site: &str, edge: &str) -> String {
    format!("{prefix}/{site}/edge/{edge}/settings")
}

/// `{prefix}/{site}/edge/{edge}/view/{camera}`: the camera's retained [`crate::geometry::CameraView`] (a blurred
/// frame and the geometry it counts with), signed by the edge.
pub fn edge_view(prefix: &str, site: &str, edge: &str, camera: &str) -> String {
    format!("{prefix}/{site}/edge/{edge}/view/{camera}")
}

/// `(site, edge, camera)` of a view topic.
pub fn parse_edge_view(prefix: &str, topic: &str) -> Option<(String, String, String)> {
    // Checked on every publish the centre receives: split without collecting.
    let mut it = topic.strip_prefix(prefix)?.strip_prefix('/')?.split('/');
    let (site, kind, edge, leaf, camera) = (it.next()?, it.next()?, it.next()?, it.next()?, it.next()?);
    if kind != "edge" || leaf != "view" || it.next().is_some() || [site, edge, camera].contains(&"") {
        return None;
    }
    Some((site.to_string(), edge.to_string(), camera.to_string()))
}

/// `{prefix}/{site}/evidence/{zone}/{ticket}`: a JPEG snapshot (every person blurred) an edge camera sends
/// when a ticket is raised on a zone it sees (opt-in per camera), QoS 1.
pub fn evidence(prefix: &str, site: &str, zone: &str, ticket: i64) -> String {
    format!("{prefix}/{site}/evidence/{zone}/{ticket}")
}

/// `(site, zone, ticket)` of an evidence topic `{prefix}/{site}/evidence/{zone}/{ticket}`.
pub fn parse_evidence(prefix: &str, topic: &str) -> Option<(String, String, i64)> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    let mut it = rest.split('/');
    let (site, kind, zone, ticket) = (it.next()?, it.next()?, it.next()?, it.next()?);
    if kind != "evidence" || it.next().is_some() || site.is_empty() || zone.is_empty() {
        return None;
    }
    Some((site.to_string(), zone.to_string(), ticket.parse().ok()?))
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
    let mut it = topic.strip_prefix(prefix)?.strip_prefix('/')?.split('/');
    let (site, kind, edge, leaf) = (it.next()?, it.next()?, it.next()?, it.next()?);
    if kind != "edge" || leaf != "status" || it.next().is_some() || site.is_empty() || edge.is_empty() {
        return None;
    }
    Some((site.to_string(), edge.to_string()))
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
        let e = evidence(PREFIX, "boai-school", "pickup-lane", 42);
        assert_eq!(e, "crowdgrid/v1/boai-school/evidence/pickup-lane/42");
        assert_eq!(parse_evidence(PREFIX, &e), Some(("boai-school".into(), "pickup-lane".into(), 42)));
        assert_eq!(parse_evidence(PREFIX, "crowdgrid/v1/s/evidence/z/not-a-number"), None);
        assert_eq!(parse_evidence(PREFIX, "crowdgrid/v1/s/evidence/z/1/extra"), None);
        assert_eq!((parse_reading(PREFIX, &e), parse_edge_status(PREFIX, &e)), (None, None));
        let v = edge_view(PREFIX, "boai-school", "gate-edge", "gate-cam");
        assert_eq!(parse_edge_view(PREFIX, &v), Some(("boai-school".into(), "gate-edge".into(), "gate-cam".into())));
        assert_eq!((parse_edge_status(PREFIX, &v), parse_reading(PREFIX, &v)), (None, None));
        assert_eq!(parse_edge_view(PREFIX, &s), None);
        assert_eq!(parse_edge_view(PREFIX, "crowdgrid/v1/s/edge/e/view/c/extra"), None);
    }
}
