//! Which metric each figure becomes, and the collector that writes them at scrape time.
//!
//! The figures themselves live in atomics next to the code that counts them
//! ([`crate::rexi::stats`], [`crate::net::metrics`], [`crate::rexi::durations`]); the
//! `stats` call and `/metrics` read the same snapshot ([`RexiServer::stats_snapshot`]). This
//! file only names them: each snapshot key maps to one metric family, perhaps with one label,
//! so several keys (`casts_singleton`, `casts_phash2`, ...) become one family with a label
//! (`rexi_node_casts_received_total{name_form=...}`). The collector runs on each scrape,
//! so the hot path never touches a Prometheus type.

use super::State;
use crate::net::metrics::PeerFigures;
use crate::rexi::RexiServer;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use std::sync::Arc;

/// Every metric name starts with this.
pub const PREFIX: &str = "rexi_node";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn metric_type(self) -> MetricType {
        match self {
            Kind::Counter => MetricType::Counter,
            Kind::Gauge => MetricType::Gauge,
        }
    }
}

/// One snapshot key and the metric it becomes.
pub struct Figure {
    /// The key in the `stats` proplist and `status --json`.
    pub key: &'static str,
    /// The family, without prefix, unit or `_total`.
    pub family: &'static str,
    pub kind: Kind,
    pub bytes: bool,
    pub label: Option<(&'static str, &'static str)>,
    pub help: &'static str,
}

const fn fig(
    key: &'static str,
    family: &'static str,
    kind: Kind,
    label: Option<(&'static str, &'static str)>,
    help: &'static str,
) -> Figure {
    Figure {
        key,
        family,
        kind,
        bytes: false,
        label,
        help,
    }
}

const fn bytes(key: &'static str, family: &'static str, kind: Kind, help: &'static str) -> Figure {
    Figure {
        key,
        family,
        kind,
        bytes: true,
        label: None,
        help,
    }
}

use Kind::{Counter as C, Gauge as G};

const CASTS: &str = "Doits received, by the name form that carried them (rexi_server, rexi_server_<phash2>, rexi_server_<node>).";
const KILLS: &str = "kill and kill_all entries received: for a running job, or for a ref with no job (remembered as a tombstone).";
const CONNS: &str = "Distribution connections by state.";
const REFUSED_CONNS: &str = "Incoming connections refused by a cap: max_connections (handshake answered not_allowed), max_handshakes and max_handshakes_per_address (socket closed at once).";
const NODEDOWN: &str = "Connections that ended, by reason.";
const HANDSHAKE: &str =
    "Handshakes that failed, by reason (wrong_cookie, timeout, refused, unreachable, other).";
const REFUSED: &str = "Frames refused by a limit (the connection is closed) or sends refused because a peer's queue is full (max_outbox).";

/// Every snapshot key, in exposition order; keys of one family are adjacent.
pub const FIGURES: &[Figure] = &[
    fig("release", "release", G, None, "The rexi migration release this node serves (0..3)."),
    fig("casts_singleton", "casts_received", C, Some(("name_form", "singleton")), CASTS),
    fig("casts_phash2", "casts_received", C, Some(("name_form", "phash2")), CASTS),
    fig("casts_nodename", "casts_received", C, Some(("name_form", "nodename")), CASTS),
    fig("replies", "replies_sent", C, None, "Replies and stream rows sent to callers."),
    fig("replies_dropped", "replies_dropped", C, None, "Replies and stream rows not sent: the caller's connection was gone or its send queue was full."),
    fig("errors", "job_errors", C, None, "Doits answered with {rexi_EXIT, Reason}: the handler failed or panicked, or no handler serves the MFA (undef)."),
    fig("kills", "kills_received", C, Some(("outcome", "killed")), KILLS),
    fig("kills_unknown", "kills_received", C, Some(("outcome", "unknown_ref")), KILLS),
    fig("tombstones_hit", "tombstone_hits", C, None, "Doits that arrived after their own kill and were not run."),
    fig("dropped_retired", "casts_dropped_retired", C, None, "Casts to the singleton rexi_server dropped because it is retired (release 3): the sender is still at release 0 or 1."),
    fig("overloaded", "casts_overloaded", C, None, "Doits refused with {rexi_EXIT, {overloaded, []}} because --max-jobs jobs were running, or --max-jobs-per-peer of the sending node's."),
    fig("malformed", "requests_malformed", C, None, "Messages to a rexi server that are not a request it knows (answered with rexi_EXIT when they carry a caller and ref)."),
    fig("jobs_running", "jobs_running", G, None, "Jobs in the job table now."),
    fig("jobs_cancelled_nodedown", "jobs_cancelled_nodedown", C, None, "Jobs killed because their caller's node went down."),
    fig("monitors_held", "monitors_held", G, None, "Monitors peers hold on processes of this node (bounded by --max-monitors-per-peer)."),
    fig("links_held", "links_held", G, None, "Links peers hold with processes of this node (bounded by --max-links-per-peer)."),
    fig("jobs_started", "jobs_started", C, None, "Jobs put in the job table."),
    fig("jobs_ended", "jobs_ended", C, None, "Jobs that left the job table: returned, failed, killed or cancelled."),
    fig("dropped_unserved", "casts_dropped_unserved", C, None, "Messages to a rexi_server_* name this node does not serve, dropped: the sender derived the name from another node's name (or hashed it differently), so its casts are lost."),
    fig("epmd_registered", "epmd_registered", G, None, "1 while this node is registered with epmd."),
    fig("accepting", "accepting", G, None, "1 while this node accepts distribution connections."),
    fig("connections_handshaking", "connections", G, Some(("state", "handshaking")), CONNS),
    fig("connections_up", "connections", G, Some(("state", "up")), CONNS),
    fig("connections_refused_max_connections", "connections_refused", C, Some(("reason", "max_connections")), REFUSED_CONNS),
    fig("connections_refused_max_handshakes", "connections_refused", C, Some(("reason", "max_handshakes")), REFUSED_CONNS),
    fig("connections_refused_max_handshakes_per_address", "connections_refused", C, Some(("reason", "max_handshakes_per_address")), REFUSED_CONNS),
    fig("nodeup", "nodeup", C, None, "Connections that came up (nodeup)."),
    fig("nodedown_closed", "nodedown", C, Some(("reason", "closed")), NODEDOWN),
    fig("nodedown_tick_timeout", "nodedown", C, Some(("reason", "tick_timeout")), NODEDOWN),
    fig("nodedown_io", "nodedown", C, Some(("reason", "io")), NODEDOWN),
    fig("nodedown_bad_frame", "nodedown", C, Some(("reason", "bad_frame")), NODEDOWN),
    fig("nodedown_shutdown", "nodedown", C, Some(("reason", "shutdown")), NODEDOWN),
    fig("nodedown_replaced", "nodedown", C, Some(("reason", "replaced")), NODEDOWN),
    fig("nodedown_write_queue_overflow", "nodedown", C, Some(("reason", "write_queue_overflow")), NODEDOWN),
    fig("nodedown_write_stalled", "nodedown", C, Some(("reason", "write_stalled")), NODEDOWN),
    fig("handshake_failures_wrong_cookie", "handshake_failures", C, Some(("reason", "wrong_cookie")), HANDSHAKE),
    fig("handshake_failures_timeout", "handshake_failures", C, Some(("reason", "timeout")), HANDSHAKE),
    fig("handshake_failures_refused", "handshake_failures", C, Some(("reason", "refused")), HANDSHAKE),
    fig("handshake_failures_unreachable", "handshake_failures", C, Some(("reason", "unreachable")), HANDSHAKE),
    fig("handshake_failures_tls", "handshake_failures", C, Some(("reason", "tls")), HANDSHAKE),
    fig("handshake_failures_other", "handshake_failures", C, Some(("reason", "other")), HANDSHAKE),
    bytes("dist_bytes_in", "dist_received", C, "Bytes read from distribution connections."),
    bytes("dist_bytes_out", "dist_sent", C, "Bytes written to distribution connections."),
    fig("dist_frames_in", "dist_received_frames", C, None, "Distribution frames read (ticks included)."),
    fig("dist_frames_out", "dist_sent_frames", C, None, "Distribution frames written (ticks included)."),
    bytes("outbox_bytes_queued", "outbox_queued", G, "Bytes queued for all peers, not yet written to their sockets."),
    bytes("outbox_bytes_queued_max_peer", "outbox_largest_peer_queued", G, "Bytes queued for the peer with the longest queue (a peer that stopped reading grows it)."),
    fig("frames_refused_max_frame", "frames_refused", C, Some(("limit", "max_frame")), REFUSED),
    fig("frames_refused_frame_type", "frames_refused", C, Some(("limit", "frame_type")), REFUSED),
    fig("frames_refused_term", "frames_refused", C, Some(("limit", "term")), REFUSED),
    fig("frames_refused_max_outbox", "frames_refused", C, Some(("limit", "max_outbox")), REFUSED),
    fig("connections_closed_max_outbox_total", "connections_closed_outbox_budget", C, None, "Connections aborted because the send queues of all peers together passed --max-outbox-total (the largest queue goes first)."),
];

/// The families outside the snapshot: (name as exposed, help).
pub const EXTRA_FAMILIES: &[(&str, &str)] = &[
    ("rexi_node_build_info", "This binary's version and the node's name."),
    ("rexi_node_job_duration_seconds", "How long jobs ran, by MFA (registered handlers only; past 100 MFAs, \"other\"). Killed jobs are not observed."),
    ("rexi_node_peer_received_bytes_total", "Per peer (--metrics-per-peer): bytes read from its connection."),
    ("rexi_node_peer_sent_bytes_total", "Per peer (--metrics-per-peer): bytes written to its connection."),
    ("rexi_node_peer_received_frames_total", "Per peer (--metrics-per-peer): frames read from its connection."),
    ("rexi_node_peer_sent_frames_total", "Per peer (--metrics-per-peer): frames written to it."),
    ("rexi_node_peer_outbox_queued_bytes", "Per peer (--metrics-per-peer): bytes queued for it, not yet written."),
];

/// The name a figure has in the exposition, e.g. `rexi_node_dist_received_bytes_total`.
pub fn exposed_name(f: &Figure) -> String {
    let unit = if f.bytes { "_bytes" } else { "" };
    let total = if f.kind == Kind::Counter {
        "_total"
    } else {
        ""
    };
    format!("{PREFIX}_{}{unit}{total}", f.family)
}

/// Writes every figure at scrape time.
#[derive(Debug)]
pub struct Figures(pub(super) Arc<State>);

fn value(snapshot: &[(&'static str, u64)], key: &str) -> Option<u64> {
    snapshot.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

impl Collector for Figures {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = &self.0;
        let node = state.node.get();
        let rexi: Option<&Arc<RexiServer>> = state.rexi.get();
        let snapshot = match (rexi, node) {
            (Some(r), _) => r.stats_snapshot(),
            (None, Some(n)) => n.net_stats().snapshot(),
            (None, None) => Vec::new(),
        };
        let info = [
            ("version", env!("CARGO_PKG_VERSION").to_string()),
            (
                "node",
                node.map(|n| n.name().to_string()).unwrap_or_default(),
            ),
        ];
        let m = enc.encode_descriptor("build", EXTRA_FAMILIES[0].1, None, MetricType::Info)?;
        prometheus_client::metrics::info::Info::new(info).encode(m)?;

        let mut i = 0;
        while i < FIGURES.len() {
            let first = &FIGURES[i];
            let group: Vec<&Figure> = FIGURES[i..]
                .iter()
                .take_while(|f| f.family == first.family)
                .collect();
            i += group.len();
            let present: Vec<(&Figure, u64)> = group
                .iter()
                .filter_map(|f| value(&snapshot, f.key).map(|v| (*f, v)))
                .collect();
            if present.is_empty() {
                continue;
            }
            let unit = first.bytes.then_some(Unit::Bytes);
            let ty = first.kind.metric_type();
            let mut m = enc.encode_descriptor(first.family, first.help, unit.as_ref(), ty)?;
            match present.as_slice() {
                [(f, v)] if f.label.is_none() => encode_value(f.kind, *v, m)?,
                _ => {
                    for (f, v) in present {
                        let l = f.label.unwrap_or(("key", f.key));
                        encode_value(f.kind, v, m.encode_family(&[l])?)?;
                    }
                }
            }
        }

        if let Some(r) = rexi {
            let mut m = enc.encode_descriptor(
                "job_duration",
                EXTRA_FAMILIES[1].1,
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for s in r.durations.series() {
                let labels = [("mfa", s.mfa.as_str())];
                m.encode_family(&labels)?
                    .encode_histogram::<NoLabelSet>(s.sum_secs, s.count, &s.buckets, None)?;
            }
        }

        if state.per_peer {
            if let Some(n) = node {
                encode_peers(&mut enc, &n.net_stats().per_peer())?;
            }
        }
        Ok(())
    }
}

fn encode_value(
    kind: Kind,
    v: u64,
    m: prometheus_client::encoding::MetricEncoder<'_>,
) -> Result<(), std::fmt::Error> {
    match kind {
        Kind::Counter => ConstCounter::new(v).encode(m),
        Kind::Gauge => ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)).encode(m),
    }
}

fn encode_peers(enc: &mut DescriptorEncoder, peers: &[PeerFigures]) -> Result<(), std::fmt::Error> {
    type Get = fn(&PeerFigures) -> u64;
    let families: [(&str, Option<Unit>, Kind, &str, Get); 5] = [
        (
            "peer_received",
            Some(Unit::Bytes),
            Kind::Counter,
            EXTRA_FAMILIES[2].1,
            |p| p.totals.bytes_in,
        ),
        (
            "peer_sent",
            Some(Unit::Bytes),
            Kind::Counter,
            EXTRA_FAMILIES[3].1,
            |p| p.totals.bytes_out,
        ),
        (
            "peer_received_frames",
            None,
            Kind::Counter,
            EXTRA_FAMILIES[4].1,
            |p| p.totals.frames_in,
        ),
        (
            "peer_sent_frames",
            None,
            Kind::Counter,
            EXTRA_FAMILIES[5].1,
            |p| p.totals.frames_out,
        ),
        (
            "peer_outbox_queued",
            Some(Unit::Bytes),
            Kind::Gauge,
            EXTRA_FAMILIES[6].1,
            |p| p.queued,
        ),
    ];
    if peers.is_empty() {
        return Ok(());
    }
    for (name, unit, kind, help, get) in families {
        let mut m = enc.encode_descriptor(name, help, unit.as_ref(), kind.metric_type())?;
        for p in peers {
            encode_value(kind, get(p), m.encode_family(&[("peer", p.peer.as_str())])?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::metrics::NetStats;
    use crate::rexi::stats::Stats;

    #[test]
    fn every_snapshot_key_has_a_metric_and_every_metric_a_key() {
        let mut keys: Vec<&str> = Stats::default()
            .snapshot(1, 0)
            .iter()
            .map(|(k, _)| *k)
            .collect();
        keys.extend(["monitors_held", "links_held"]);
        keys.extend(Stats::default().later_counts().iter().map(|(k, _)| *k));
        keys.extend(NetStats::default().snapshot().iter().map(|(k, _)| *k));
        let figs: Vec<&str> = FIGURES.iter().map(|f| f.key).collect();
        for k in &keys {
            assert!(figs.contains(k), "snapshot key {k} has no entry in FIGURES");
        }
        for f in &figs {
            assert!(keys.contains(f), "FIGURES names {f}, which no snapshot has");
        }
    }

    #[test]
    fn one_family_is_one_block_with_one_type() {
        for (i, f) in FIGURES.iter().enumerate() {
            let later = FIGURES[i + 1..].iter().skip_while(|g| g.family == f.family);
            for g in later {
                assert_ne!(g.family, f.family, "family {} is split", f.family);
            }
            for g in FIGURES.iter().filter(|g| g.family == f.family) {
                assert_eq!(
                    (g.kind, g.bytes, g.help),
                    (f.kind, f.bytes, f.help),
                    "{}",
                    f.family
                );
                assert_eq!(g.label.map(|l| l.0), f.label.map(|l| l.0), "{}", f.family);
            }
        }
    }

    #[test]
    fn docs_list_every_metric() {
        let doc = include_str!("../../docs/metrics.md");
        for f in FIGURES {
            let name = exposed_name(f);
            assert!(
                doc.contains(&format!("`{name}`")),
                "docs/metrics.md does not list `{name}`"
            );
            if let Some((k, v)) = f.label {
                assert!(
                    doc.contains(&format!("{k}=\"{v}\"")) || doc.contains(&format!("`{v}`")),
                    "docs/metrics.md does not explain {name}{{{k}=\"{v}\"}}"
                );
            }
        }
        for (name, _) in EXTRA_FAMILIES {
            assert!(
                doc.contains(&format!("`{name}`")),
                "docs/metrics.md does not list `{name}`"
            );
        }
    }
}
