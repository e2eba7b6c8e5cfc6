//! Which `rexi` casts a mixed-release cluster loses, and which node may take the next step.
//!
//! This is the logic behind `rexi-node migrate-check`, kept free of I/O so that every cell of
//! the table of docs/design/migration.md §2 is pinned by a unit test. The CLI reads what each
//! node runs and hands a list of [`Member`]s to [`assess`].
//!
//! Why the table looks the way it does: a cast is a message to a registered *name* on the
//! target, and a message to a name that does not exist is dropped without any error. So a
//! pair of nodes loses casts exactly when the caller's release sends to a name the target's
//! release does not register:
//!
//! * R0 and R1 callers send `doit` to the singleton `rexi_server`, which R3 removed;
//! * R2 and R3 callers send to the per-node `rexi_server_<caller>`, which R0 never starts and
//!   which R1..R3 start only once their `rexi_server_mon` saw the caller (the "ok*" cells).
//!
//! A rexi-node is a hidden C-node: it serves every per-node name for every connected peer
//! from the moment the peer connects, so it receives from every caller release, except
//! that at its own release 3 it retires the singleton like an Erlang R3 node, and then
//! R0/R1 callers lose their casts to it. A rexi-node never casts, so it is never a caller.
//!
//! A CouchDB node (2.3 and later; every 3.x) is none of R0..R3: its per-node servers are
//! named after nodes, `rexi_server_<NodeName>`, not after a phash2, and it has no `release`
//! in its application env. Its callers send to `rexi_server_<caller's node name>`, which no
//! R0..R3 node registers; it keeps the singleton, so R0/R1 callers reach it, and registers
//! no phash2 names, so R2/R3 callers do not. CouchDB coordinators also treat any node
//! outside their `[node() | nodes()]` as down (docs/design/migration.md §6): a hidden
//! rexi-node receives their casts but they never wait for its answers, which is as bad as
//! a lost cast, so that cell is `DOWN` and a [`warnings`] line says to run it `--visible`.

use crate::rexi::Release;

/// What kind of node a cluster member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// An Erlang node running rexi (or nothing yet, at release 0, but the singleton).
    Beam,
    /// This project's daemon.
    RexiNode,
    /// An Erlang node running CouchDB's rexi: per-node servers named after nodes and no
    /// `release` application env.
    CouchDb,
}

impl NodeKind {
    pub fn label(self) -> &'static str {
        match self {
            NodeKind::Beam => "beam",
            NodeKind::RexiNode => "rexi-node",
            NodeKind::CouchDb => "couchdb",
        }
    }
}

/// What a `doit` from one release to another becomes (docs/design/migration.md §2, caller
/// row, target column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Delivery {
    /// Delivered.
    Ok,
    /// Delivered once the target's `rexi_server_mon` started the caller's per-node server
    /// (the table's "ok*"); lost before that.
    OkOnceStarted,
    /// Dropped silently: the caller sends to a name the target does not register.
    Lost,
}

/// docs/design/migration.md §2 for two Erlang nodes: `doit` from a `caller` at one release to a
/// `target` at another.
pub fn beam_delivery(caller: Release, target: Release) -> Delivery {
    match (caller.get(), target.get()) {
        // R0/R1 callers address the singleton, which only R3 lacks.
        (0 | 1, 3) => Delivery::Lost,
        (0 | 1, _) => Delivery::Ok,
        // R2/R3 callers address the per-node name, which R0 never has and R1..R3 start late.
        (_, 0) => Delivery::Lost,
        _ => Delivery::OkOnceStarted,
    }
}

/// `doit` from a `caller` release into a rexi-node at `target`: every per-node name exists
/// as soon as the caller is connected, and the singleton exists below release 3.
pub fn rexi_node_delivery(caller: Release, target: Release) -> Delivery {
    let caller_uses_singleton = caller.get() <= 1;
    if caller_uses_singleton && !target.has_singleton() {
        Delivery::Lost
    } else {
        Delivery::Ok
    }
}

/// `doit` from an R0..R3 `caller` into a CouchDB node: the singleton is there (CouchDB
/// still starts it), the phash2 names of R2/R3 are not.
pub fn couchdb_delivery(caller: Release) -> Delivery {
    if caller.get() <= 1 {
        Delivery::Ok
    } else {
        Delivery::Lost
    }
}

/// Whether a per-node rexi server name is CouchDB's node-name form,
/// `rexi_server_<NodeName>` (a node name always holds an `@`), rather than the phash2 form
/// `rexi_server_<digits>` of releases 1..3, or `rexi_server_mon`/`rexi_server_sup`.
pub fn is_node_name_server(registered: &str) -> bool {
    registered
        .strip_prefix("rexi_server_")
        .is_some_and(|n| n.contains('@'))
}

/// What is known about a node's release: one value, or (for an Erlang node whose rexi does
/// not say, and whose names look the same at releases 1 and 2) several candidates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Releases(Vec<Release>);

impl Releases {
    pub fn known(r: Release) -> Releases {
        Releases(vec![r])
    }

    /// Several candidates; an empty list is treated as "any release".
    pub fn one_of(mut rs: Vec<Release>) -> Releases {
        if rs.is_empty() {
            rs = (0..=3).filter_map(Release::new).collect();
        }
        rs.sort();
        rs.dedup();
        Releases(rs)
    }

    pub fn candidates(&self) -> &[Release] {
        &self.0
    }

    /// The release when it is known exactly.
    pub fn exact(&self) -> Option<Release> {
        match self.0.as_slice() {
            [r] => Some(*r),
            _ => None,
        }
    }
}

impl std::fmt::Display for Releases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|r| r.get().to_string()).collect();
        f.write_str(&parts.join(" or "))
    }
}

/// Infers an Erlang node's release from what it registers, when its rexi application does
/// not expose `release` in its environment. Releases 1 and 2 register the same names, so
/// they cannot be told apart this way. `None`: the node runs no rexi at all.
pub fn infer_beam_release(
    has_singleton: bool,
    has_mon: bool,
    has_per_node: bool,
) -> Option<Releases> {
    let r = |n| Release::new(n).into_iter().collect::<Vec<_>>();
    match (has_singleton, has_mon, has_per_node) {
        (false, false, false) => None,
        // Only R1 introduced rexi_server_mon: without it, the node is still at R0.
        (_, false, _) => Some(Releases::one_of(r(0))),
        // R3 removed the singleton, keeping the monitor and the per-node servers.
        (false, true, _) => Some(Releases::one_of(r(3))),
        (true, true, _) => Some(Releases::one_of([r(1), r(2)].concat())),
    }
}

/// One node of the cluster, as read by the CLI.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub kind: NodeKind,
    pub release: Releases,
    /// Whether the node's `rexi_server_mon` answered `ok` (all its per-node servers
    /// exist). `false` when it answered `{waiting, N}`: "ok*" casts to it are lost now.
    pub per_node_ready: bool,
    /// For a CouchDB node, its `nodes()`: the nodes its coordinators treat as up (with
    /// itself). Empty for other kinds, whose casts do not depend on it.
    pub visible_peers: Vec<String>,
}

impl Member {
    /// The release for an operator; a CouchDB node has none.
    pub fn release_label(&self) -> String {
        match self.kind {
            NodeKind::CouchDb => "couchdb".to_string(),
            _ => self.release.to_string(),
        }
    }

    /// Whether this node's coordinators treat `other` as a live node.
    fn sees(&self, other: &str) -> bool {
        self.name == other || self.visible_peers.iter().any(|p| p == other)
    }
}

/// One cell of the delivery matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cell {
    Ok,
    /// "ok*" and the target's per-node servers are up (or assumed up, in a plan).
    OkOnceStarted,
    /// "ok*" but the target's `rexi_server_mon` is still waiting: lost right now.
    Waiting,
    Lost,
    /// A CouchDB caller and a rexi-node hidden from it: the caller treats it as down.
    Down,
    /// The row is a rexi-node, which never casts.
    NotACaller,
}

impl Cell {
    /// Whether casts on this cell are lost today.
    pub fn loses(self) -> bool {
        matches!(self, Cell::Lost | Cell::Waiting | Cell::Down)
    }

    pub fn label(self) -> &'static str {
        match self {
            Cell::Ok => "ok",
            Cell::OkOnceStarted => "ok*",
            Cell::Waiting => "WAIT",
            Cell::Lost => "LOST",
            Cell::Down => "DOWN",
            Cell::NotACaller => "-",
        }
    }
}

fn cell_for(caller: &Member, caller_r: Release, target: &Member, target_r: Release) -> Cell {
    let d = match (caller.kind, target.kind) {
        (NodeKind::RexiNode, _) => return Cell::NotACaller,
        (NodeKind::Beam, NodeKind::Beam) => beam_delivery(caller_r, target_r),
        (NodeKind::Beam, NodeKind::RexiNode) => rexi_node_delivery(caller_r, target_r),
        (NodeKind::Beam, NodeKind::CouchDb) => couchdb_delivery(caller_r),
        // The node-name form is registered by no R0..R3 node.
        (NodeKind::CouchDb, NodeKind::Beam) => Delivery::Lost,
        // Started by the target's rexi_server_mon for each visible node.
        (NodeKind::CouchDb, NodeKind::CouchDb) => Delivery::OkOnceStarted,
        (NodeKind::CouchDb, NodeKind::RexiNode) if !caller.sees(&target.name) => return Cell::Down,
        // A rexi-node serves every per-node name, at every release.
        (NodeKind::CouchDb, NodeKind::RexiNode) => Delivery::Ok,
    };
    match d {
        Delivery::Ok => Cell::Ok,
        Delivery::Lost => Cell::Lost,
        Delivery::OkOnceStarted if target.per_node_ready => Cell::OkOnceStarted,
        Delivery::OkOnceStarted => Cell::Waiting,
    }
}

/// The cell for a caller/target pair, the worst over every release either might be at.
pub fn cell(caller: &Member, target: &Member) -> Cell {
    let mut worst = Cell::Ok;
    for &c in caller.release.candidates() {
        for &t in target.release.candidates() {
            worst = worst.max(cell_for(caller, c, target, t));
        }
    }
    worst
}

/// The delivery matrix: `rows[i][j]` is member `i` casting to member `j`.
#[derive(Debug, Clone)]
pub struct Matrix {
    pub names: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

impl Matrix {
    pub fn of(members: &[Member]) -> Matrix {
        Matrix {
            names: members.iter().map(|m| m.name.clone()).collect(),
            rows: members
                .iter()
                .map(|c| members.iter().map(|t| cell(c, t)).collect())
                .collect(),
        }
    }

    /// Every `(caller, target, cell)` that loses casts.
    pub fn losses(&self) -> Vec<(usize, usize, Cell)> {
        let mut v = Vec::new();
        for (i, row) in self.rows.iter().enumerate() {
            for (j, c) in row.iter().enumerate() {
                if c.loses() {
                    v.push((i, j, *c));
                }
            }
        }
        v
    }

    pub fn consistent(&self) -> bool {
        self.losses().is_empty()
    }

    /// A fixed-width table, caller rows and target columns.
    pub fn render(&self) -> String {
        let w0 = self
            .names
            .iter()
            .map(|n| n.len())
            .max()
            .unwrap_or(0)
            .max("caller \\ target".len());
        let widths: Vec<usize> = self.names.iter().map(|n| n.len().max(4)).collect();
        let mut out = format!("  {:<w0$}", "caller \\ target");
        for (n, w) in self.names.iter().zip(&widths) {
            out.push_str(&format!("  {n:<w$}"));
        }
        out.push('\n');
        for (name, row) in self.names.iter().zip(&self.rows) {
            out.push_str(&format!("  {name:<w0$}"));
            for (c, w) in row.iter().zip(&widths) {
                out.push_str(&format!("  {:<w$}", c.label()));
            }
            out.push('\n');
        }
        out
    }
}

/// Why a node may not take its next step yet: a pair that would lose casts after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub caller: usize,
    pub target: usize,
}

/// The verdict for one node's next step (its release + 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Moving `node` to `to` loses nothing.
    CanMove { node: usize, to: Release },
    /// Moving `node` to `to` would lose casts on these pairs.
    NotYet {
        node: usize,
        to: Release,
        blockers: Vec<Blocker>,
    },
    /// Already at release 3.
    Done { node: usize },
    /// The release is not known exactly, so no step can be judged.
    Unknown { node: usize },
    /// A CouchDB node: not part of the R0..R3 plan.
    NotInPlan { node: usize },
}

/// A next step, with the matrix the cluster would have after it.
#[derive(Debug, Clone)]
pub struct Step {
    pub verdict: Verdict,
    pub matrix: Option<Matrix>,
}

/// Everything `migrate-check` reports.
#[derive(Debug, Clone)]
pub struct Assessment {
    pub now: Matrix,
    pub steps: Vec<Step>,
}

impl Assessment {
    pub fn consistent(&self) -> bool {
        self.now.consistent()
    }
}

/// The matrix now, and for each node the outcome of moving it alone to its next release.
/// In a plan, the moved node's per-node servers are assumed to have started (the "ok*"
/// caveat still applies: see [`Cell::OkOnceStarted`]).
pub fn assess(members: &[Member]) -> Assessment {
    let now = Matrix::of(members);
    let mut steps = Vec::new();
    for (i, m) in members.iter().enumerate() {
        if m.kind == NodeKind::CouchDb {
            steps.push(Step {
                verdict: Verdict::NotInPlan { node: i },
                matrix: None,
            });
            continue;
        }
        let Some(r) = m.release.exact() else {
            steps.push(Step {
                verdict: Verdict::Unknown { node: i },
                matrix: None,
            });
            continue;
        };
        let Some(to) = Release::new(r.get() + 1) else {
            steps.push(Step {
                verdict: Verdict::Done { node: i },
                matrix: None,
            });
            continue;
        };
        let mut next = members.to_vec();
        next[i].release = Releases::known(to);
        next[i].per_node_ready = true;
        let matrix = Matrix::of(&next);
        // Only pairs that involve the moved node can block its step; other losses are
        // reported by today's matrix.
        let blockers: Vec<Blocker> = matrix
            .losses()
            .into_iter()
            // DOWN does not depend on releases: no step makes it or mends it.
            .filter(|(c, t, cell)| *cell != Cell::Down && (*c == i || *t == i))
            .map(|(caller, target, _)| Blocker { caller, target })
            .collect();
        let verdict = if blockers.is_empty() {
            Verdict::CanMove { node: i, to }
        } else {
            Verdict::NotYet {
                node: i,
                to,
                blockers,
            }
        };
        steps.push(Step {
            verdict,
            matrix: Some(matrix),
        });
    }
    Assessment { now, steps }
}

/// One sentence per verdict, for an operator.
pub fn describe(members: &[Member], v: &Verdict) -> String {
    let name = |i: usize| members[i].name.as_str();
    match v {
        Verdict::CanMove { node, to } => {
            format!("node {} can move to release {} now", name(*node), to.get())
        }
        Verdict::Done { node } => format!(
            "node {} is at release 3, the last step of the migration",
            name(*node)
        ),
        Verdict::NotInPlan { node } => format!(
            "node {} runs CouchDB's rexi (per-node servers named after nodes, no release env): it is not part of the release 0..3 plan; its casts go to rexi_server_{}",
            name(*node),
            name(*node)
        ),
        Verdict::Unknown { node } => format!(
            "node {}: release unknown ({}); set application env `release` of app rexi on it to judge its next step",
            name(*node),
            members[*node].release
        ),
        Verdict::NotYet { node, to, blockers } => {
            // "still at" for a node behind the one that moves, "at" for one ahead of it.
            let at = |other: usize| {
                if members[other].kind == NodeKind::CouchDb {
                    return format!("node {} runs CouchDB's rexi", name(other));
                }
                let behind = members[other]
                    .release
                    .candidates()
                    .iter()
                    .all(|r| r.get() < to.get());
                let verb = if behind { "is still at" } else { "is at" };
                format!("node {} {verb} release {}", name(other), members[other].release)
            };
            let reasons: Vec<String> = blockers
                .iter()
                .map(|b| {
                    if b.caller == *node && b.target == *node {
                        "its casts to itself would be lost".to_string()
                    } else if b.caller == *node {
                        format!(
                            "{}, so {}'s casts to it would be lost",
                            at(b.target),
                            name(*node)
                        )
                    } else {
                        format!("{}, its casts to {} would be lost", at(b.caller), name(*node))
                    }
                })
                .collect();
            format!(
                "node {} cannot move to release {}: not yet: {}",
                name(*node),
                to.get(),
                reasons.join("; ")
            )
        }
    }
}

/// What an operator must hear besides the matrix: each rexi-node that CouchDB callers
/// treat as down because it is hidden from them, with the way out.
pub fn warnings(members: &[Member]) -> Vec<String> {
    let mut out = Vec::new();
    for t in members.iter().filter(|m| m.kind == NodeKind::RexiNode) {
        let blind: Vec<&str> = members
            .iter()
            .filter(|c| c.kind == NodeKind::CouchDb && cell(c, t) == Cell::Down)
            .map(|c| c.name.as_str())
            .collect();
        if !blind.is_empty() {
            out.push(format!(
                "rexi-node {} is hidden from the CouchDB node(s) {}: CouchDB 2.0+ coordinators treat a node outside nodes() as down (rexi_monitor reports noconnect at once, and no rexi_buffer exists for it), so they drop its workers and never use it; run {} with --visible",
                t.name,
                blind.join(", "),
                t.name
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: u8) -> Release {
        Release::new(n).expect("release 0..3")
    }

    fn beam(name: &str, n: u8) -> Member {
        Member {
            name: name.into(),
            kind: NodeKind::Beam,
            release: Releases::known(r(n)),
            per_node_ready: true,
            visible_peers: Vec::new(),
        }
    }

    fn couchdb(name: &str, sees: &[&str]) -> Member {
        Member {
            name: name.into(),
            kind: NodeKind::CouchDb,
            release: Releases::one_of(Vec::new()),
            per_node_ready: true,
            visible_peers: sees.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn rexi_node(name: &str, n: u8) -> Member {
        Member {
            kind: NodeKind::RexiNode,
            ..beam(name, n)
        }
    }

    /// docs/design/migration.md §2, every cell, caller row by target column.
    #[test]
    fn every_cell_of_the_table() {
        use Delivery::*;
        let table = [
            [Ok, Ok, Ok, Lost],
            [Ok, Ok, Ok, Lost],
            [Lost, OkOnceStarted, OkOnceStarted, OkOnceStarted],
            [Lost, OkOnceStarted, OkOnceStarted, OkOnceStarted],
        ];
        for c in 0..4u8 {
            for t in 0..4u8 {
                assert_eq!(
                    beam_delivery(r(c), r(t)),
                    table[c as usize][t as usize],
                    "caller R{c} -> target R{t}"
                );
                let m = Matrix::of(&[beam("c", c), beam("t", t)]);
                let want_loss = table[c as usize][t as usize] == Lost;
                assert_eq!(m.rows[0][1].loses(), want_loss, "R{c} -> R{t} as a cell");
            }
        }
    }

    #[test]
    fn only_adjacent_mixes_are_safe() {
        for a in 0..4u8 {
            for b in 0..4u8 {
                let m = Matrix::of(&[beam("a", a), beam("b", b)]);
                assert_eq!(
                    m.consistent(),
                    a.abs_diff(b) <= 1,
                    "R{a} with R{b}: {:?}",
                    m.rows
                );
            }
        }
    }

    #[test]
    fn ok_star_is_lost_while_the_target_waits() {
        let mut t = beam("t", 1);
        t.per_node_ready = false;
        assert_eq!(cell(&beam("c", 2), &t), Cell::Waiting);
        assert!(cell(&beam("c", 2), &t).loses());
        // Singleton callers do not care about per-node servers.
        assert_eq!(cell(&beam("c", 1), &t), Cell::Ok);
    }

    #[test]
    fn rexi_node_receives_from_every_release_but_retires_the_singleton_at_3() {
        for c in 0..4u8 {
            for t in 0..3u8 {
                assert_eq!(cell(&beam("c", c), &rexi_node("x", t)), Cell::Ok);
            }
            let at3 = cell(&beam("c", c), &rexi_node("x", 3));
            assert_eq!(at3.loses(), c <= 1, "R{c} -> rexi-node at 3");
        }
        assert_eq!(cell(&rexi_node("x", 1), &beam("b", 1)), Cell::NotACaller);
    }

    #[test]
    fn unknown_release_is_judged_by_the_worst_candidate() {
        let mut m = beam("m", 1);
        m.release = Releases::one_of(vec![r(1), r(2)]);
        // R0 caller to R1-or-R2: fine either way. R0 target from R2: lost.
        assert_eq!(cell(&beam("z", 0), &m), Cell::Ok);
        assert_eq!(cell(&m, &beam("z", 0)), Cell::Lost);
        let a = assess(&[m, beam("z", 1)]);
        assert!(matches!(a.steps[0].verdict, Verdict::Unknown { node: 0 }));
    }

    #[test]
    fn inference_from_names() {
        let show = |s, m, p| infer_beam_release(s, m, p).map(|r| r.to_string());
        assert_eq!(show(true, false, false).as_deref(), Some("0"));
        assert_eq!(show(true, true, true).as_deref(), Some("1 or 2"));
        assert_eq!(show(true, true, false).as_deref(), Some("1 or 2"));
        assert_eq!(show(false, true, true).as_deref(), Some("3"));
        assert_eq!(show(false, false, false), None);
    }

    #[test]
    fn verdicts_follow_the_rolling_plan() {
        // a at 1, b at 1, c at 0: a may not go to 2 while c is at 0 (a's casts to c lost).
        let ms = [beam("a", 1), beam("b", 1), beam("c", 0)];
        let a = assess(&ms);
        assert!(a.consistent());
        match &a.steps[0].verdict {
            Verdict::NotYet {
                node: 0, blockers, ..
            } => {
                assert_eq!(
                    blockers,
                    &vec![Blocker {
                        caller: 0,
                        target: 2
                    }]
                );
            }
            v => panic!("{v:?}"),
        }
        assert!(describe(&ms, &a.steps[0].verdict).contains("node c is still at release 0"));
        // c may catch up.
        assert!(matches!(
            a.steps[2].verdict,
            Verdict::CanMove { node: 2, .. }
        ));
        assert_eq!(
            describe(&ms, &a.steps[2].verdict),
            "node c can move to release 1 now"
        );

        // b at 2 and c at 1: moving b to 3 makes c's casts to b lost.
        let ms = [beam("b", 2), beam("c", 1)];
        let a = assess(&ms);
        let d = describe(&ms, &a.steps[0].verdict);
        assert!(
            d.contains("node c is still at release 1, its casts to b would be lost"),
            "{d}"
        );
        assert!(matches!(a.steps[1].verdict, Verdict::CanMove { .. }));
    }

    #[test]
    fn rexi_node_steps() {
        // A rexi-node may go to 3 only when no caller still uses the singleton.
        let ms = [rexi_node("x", 2), beam("b", 1)];
        let a = assess(&ms);
        assert!(matches!(a.steps[0].verdict, Verdict::NotYet { .. }));
        let ms = [rexi_node("x", 2), beam("b", 2)];
        let a = assess(&ms);
        assert!(matches!(a.steps[0].verdict, Verdict::CanMove { .. }));
        let ms = [rexi_node("x", 3), beam("b", 3)];
        assert!(matches!(assess(&ms).steps[0].verdict, Verdict::Done { .. }));
    }

    /// Every cell with a CouchDB node on either side.
    #[test]
    fn every_couchdb_cell() {
        let c = couchdb("c@h", &["d@h"]);
        // R0/R1 callers reach the singleton; R2/R3 send to phash2 names it never has.
        for (n, want) in [
            (0, Cell::Ok),
            (1, Cell::Ok),
            (2, Cell::Lost),
            (3, Cell::Lost),
        ] {
            assert_eq!(cell(&beam("b", n), &c), want, "R{n} -> couchdb");
            // ... and a CouchDB caller's node-name servers exist on no R0..R3 node.
            assert_eq!(cell(&c, &beam("b", n)), Cell::Lost, "couchdb -> R{n}");
        }
        // CouchDB to CouchDB, itself included: ok once its rexi_server_mon started them.
        let d = couchdb("d@h", &["c@h"]);
        assert_eq!(cell(&c, &d), Cell::OkOnceStarted);
        assert_eq!(cell(&c, &c), Cell::OkOnceStarted);
        let mut waiting = d.clone();
        waiting.per_node_ready = false;
        assert_eq!(cell(&c, &waiting), Cell::Waiting);
        // A rexi-node serves CouchDB's names at every release, when the caller sees it;
        // hidden from the caller, it is down to it.
        for n in 0..4u8 {
            assert_eq!(
                cell(&couchdb("c@h", &["x@h"]), &rexi_node("x@h", n)),
                Cell::Ok,
                "couchdb -> visible rexi-node at {n}"
            );
            let down = cell(&c, &rexi_node("x@h", n));
            assert_eq!(down, Cell::Down, "couchdb -> hidden rexi-node at {n}");
            assert!(down.loses());
            assert_eq!(down.label(), "DOWN");
        }
        assert_eq!(cell(&rexi_node("x@h", 1), &c), Cell::NotACaller);
    }

    #[test]
    fn couchdb_nodes_are_not_in_the_plan_and_hidden_rexi_nodes_are_named() {
        let ms = [couchdb("c@h", &[]), rexi_node("x@h", 1), beam("b@h", 1)];
        let a = assess(&ms);
        assert!(!a.consistent());
        assert!(matches!(a.steps[0].verdict, Verdict::NotInPlan { node: 0 }));
        let d = describe(&ms, &a.steps[0].verdict);
        assert!(d.contains("not part of the release 0..3 plan"), "{d}");
        assert!(d.contains("rexi_server_c@h"), "{d}");
        assert_eq!(ms[0].release_label(), "couchdb");
        // b at 1 -> 2 would lose b's casts to the CouchDB node (no phash2 names there).
        assert!(matches!(
            a.steps[2].verdict,
            Verdict::NotYet { node: 2, .. }
        ));
        // The rexi-node's DOWN cells do not block its steps: no release mends them.
        assert!(matches!(
            a.steps[1].verdict,
            Verdict::CanMove { node: 1, .. }
        ));
        // A CouchDB caller blocks a rexi-node's step to 3? No: it never uses the singleton.
        let seen = [couchdb("c@h", &["x@h"]), rexi_node("x@h", 2)];
        assert!(matches!(
            assess(&seen).steps[1].verdict,
            Verdict::CanMove { node: 1, .. }
        ));
        // An R2 node next to a CouchDB node: its casts there are lost, and the verdict
        // names the CouchDB node for what it is.
        let ms2 = [beam("b@h", 1), couchdb("c@h", &["b@h"])];
        let v = &assess(&ms2).steps[0].verdict;
        let d = describe(&ms2, v);
        assert!(
            d.contains("node c@h runs CouchDB's rexi, so b@h's casts to it would be lost"),
            "{d}"
        );
        let w = warnings(&ms);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("rexi-node x@h is hidden from the CouchDB node(s) c@h"));
        assert!(w[0].ends_with("run x@h with --visible"), "{}", w[0]);
        // Seen by every CouchDB node: no warning.
        let ms = [couchdb("c@h", &["x@h"]), rexi_node("x@h", 1)];
        assert!(warnings(&ms).is_empty());
        assert!(assess(&ms).consistent());
    }

    #[test]
    fn node_name_servers_are_told_from_phash2_ones() {
        assert!(is_node_name_server("rexi_server_couchdb@db1.example.com"));
        assert!(!is_node_name_server("rexi_server_41428801"));
        assert!(!is_node_name_server("rexi_server_mon"));
        assert!(!is_node_name_server("rexi_server"));
        assert!(!is_node_name_server("rexi_buffer_a@h"));
    }

    #[test]
    fn renders_a_table() {
        let m = Matrix::of(&[beam("a@h", 0), beam("b@h", 2)]);
        let t = m.render();
        assert!(t.contains("caller \\ target"), "{t}");
        assert!(t.lines().nth(2).is_some_and(|l| l.contains("LOST")), "{t}");
    }
}
