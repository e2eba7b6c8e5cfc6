//! Registered names, local pids, and the monitors and links that cross the network.
//!
//! The registry never touches a socket: operations that must notify a remote process
//! return [`Effect`]s, which the distribution layer sends. Operations that must notify a
//! local process deliver the signal directly.

use super::ids::key;
use super::refkey::RefKey;
use super::ProcId;
use super::{Process, Signal};
use crate::etf::Owned;
use crate::fast_hash::FastMap;
use eetf::{Atom, Pid, Reference, Term};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

/// What a remote monitor watches on this node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MonitorTarget {
    Name(String),
    Pid(u64),
}

/// A message the distribution layer must send to a remote process.
#[derive(Debug)]
pub enum Effect {
    /// `MONITOR_P_EXIT`: the process `holder` monitors (`target`) is gone, or never existed.
    MonitorExit {
        holder: Pid,
        target: ProcId,
        reference: Reference,
        reason: Term,
    },
    /// `EXIT`: the local process `from`, linked to `to`, ended (or `to` linked to nothing).
    LinkExit { from: Pid, to: Pid, reason: Term },
}

struct RemoteMonitor {
    holder: Pid,
    reference: Reference,
    /// The form the holder used, echoed back in `MONITOR_P_EXIT`.
    target: ProcId,
    local: MonitorTarget,
}

/// A remote monitor's key: the holder's node (so one peer can never name, replace or
/// cancel another peer's monitor) and its reference.
type MonKey = (String, RefKey);

/// The monitors remote processes hold on local ones, indexed three ways so that every
/// operation costs O(1) per monitor: by reference (`DEMONITOR`), by local target (the
/// target ends) and by the holder's node (nodedown, and the per-peer cap).
#[derive(Default)]
struct RemoteMonitors {
    by_ref: HashMap<MonKey, RemoteMonitor>,
    by_target: HashMap<MonitorTarget, HashSet<MonKey>>,
    by_node: HashMap<String, HashSet<RefKey>>,
}

impl RemoteMonitors {
    fn insert(&mut self, key: MonKey, m: RemoteMonitor) {
        self.remove(&key);
        self.by_target
            .entry(m.local.clone())
            .or_default()
            .insert(key.clone());
        self.by_node.entry(key.0.clone()).or_default().insert(key.1);
        self.by_ref.insert(key, m);
    }

    fn remove(&mut self, key: &MonKey) -> Option<RemoteMonitor> {
        let m = self.by_ref.remove(key)?;
        if let Some(set) = self.by_target.get_mut(&m.local) {
            set.remove(key);
            if set.is_empty() {
                self.by_target.remove(&m.local);
            }
        }
        if let Some(set) = self.by_node.get_mut(&key.0) {
            set.remove(&key.1);
            if set.is_empty() {
                self.by_node.remove(&key.0);
            }
        }
        Some(m)
    }

    fn count_of(&self, node: &str) -> usize {
        self.by_node.get(node).map_or(0, |s| s.len())
    }
}

/// A monitor held by a local process on a remote one.
struct LocalMonitor {
    reference: Reference,
    holder: Arc<dyn Process>,
    object: Term,
    node: String,
}

/// Links between local pids and remote pids, with a count per remote node for the cap.
#[derive(Default)]
struct Links {
    /// local pid key -> (local pid, remote pids linked to it)
    by_local: HashMap<u64, (Pid, HashSet<Pid>)>,
    per_node: HashMap<String, usize>,
}

impl Links {
    fn forget(&mut self, remote: &Pid) {
        if let Some(c) = self.per_node.get_mut(&remote.node.name) {
            *c = c.saturating_sub(1);
            if *c == 0 {
                self.per_node.remove(&remote.node.name);
            }
        }
    }
}

/// Per-peer caps on what one connection may make this node remember.
#[derive(Debug, Clone, Copy)]
pub struct PeerLimits {
    /// Monitors the processes of one node may hold on local processes at once.
    pub max_monitors: usize,
    /// Links between processes of one node and local processes at once.
    pub max_links: usize,
}

impl Default for PeerLimits {
    fn default() -> Self {
        PeerLimits {
            max_monitors: 250_000,
            max_links: 100_000,
        }
    }
}

#[derive(Default)]
pub struct Registry {
    /// Names and pids are ours (peers only look them up): see [`crate::fast_hash`].
    names: RwLock<FastMap<String, Arc<dyn Process>>>,
    pids: RwLock<FastMap<u64, Arc<dyn Process>>>,
    monitors: Mutex<RemoteMonitors>,
    links: Mutex<Links>,
    /// reference id words -> monitor held by a local process on a remote process
    local_monitors: Mutex<HashMap<Vec<u32>, LocalMonitor>>,
    limits: PeerLimits,
}

#[derive(Debug)]
pub struct AlreadyRegistered(pub String);

impl std::fmt::Display for AlreadyRegistered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the name {} is already registered on this node", self.0)
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}
fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}
fn lock<T>(l: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    l.lock().unwrap_or_else(|p| p.into_inner())
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    pub fn with_limits(limits: PeerLimits) -> Registry {
        Registry {
            limits,
            ..Registry::default()
        }
    }

    /// How many monitors remote processes hold on local processes, and links between
    /// remote and local processes (for the `stats` call).
    pub fn held(&self) -> (usize, usize) {
        let monitors = lock(&self.monitors).by_ref.len();
        let links = lock(&self.links).per_node.values().sum();
        (monitors, links)
    }

    /// How many monitors processes of `node` hold on local processes.
    pub fn monitors_of(&self, node: &str) -> usize {
        lock(&self.monitors).count_of(node)
    }

    pub fn register_name(
        &self,
        name: &str,
        process: Arc<dyn Process>,
    ) -> Result<(), AlreadyRegistered> {
        let mut names = write(&self.names);
        if names.contains_key(name) {
            return Err(AlreadyRegistered(name.to_string()));
        }
        names.insert(name.to_string(), process);
        Ok(())
    }

    /// Removes a name, as if the process behind it ended with `reason`: monitors on the
    /// name fire. Returns no effects when the name was not registered.
    pub fn unregister_name(&self, name: &str, reason: &Term) -> Vec<Effect> {
        if write(&self.names).remove(name).is_none() {
            return Vec::new();
        }
        self.fire_monitors(&MonitorTarget::Name(name.to_string()), reason)
    }

    pub fn whereis(&self, name: &str) -> Option<Arc<dyn Process>> {
        read(&self.names).get(name).cloned()
    }

    pub fn registered_names(&self) -> Vec<String> {
        let mut v: Vec<String> = read(&self.names).keys().cloned().collect();
        v.sort();
        v
    }

    /// Adds a local pid; false when that pid is still in use (the caller mints another).
    pub fn register_pid(&self, pid: &Pid, process: Arc<dyn Process>) -> bool {
        let mut pids = write(&self.pids);
        let k = key(pid);
        if pids.contains_key(&k) {
            return false;
        }
        pids.insert(k, process);
        true
    }

    pub fn lookup_pid(&self, pid: &Pid) -> Option<Arc<dyn Process>> {
        read(&self.pids).get(&key(pid)).cloned()
    }

    pub fn pid_count(&self) -> usize {
        read(&self.pids).len()
    }

    /// A local process ended with `reason`: forget it, fire monitors on it and break its
    /// links (each linked remote process gets an `EXIT`).
    pub fn exit_pid(&self, pid: &Pid, reason: &Term) -> Vec<Effect> {
        let k = key(pid);
        if write(&self.pids).remove(&k).is_none() {
            return Vec::new();
        }
        let mut effects = self.fire_monitors(&MonitorTarget::Pid(k), reason);
        let removed = {
            let mut links = lock(&self.links);
            let removed = links.by_local.remove(&k);
            if let Some((_, remotes)) = &removed {
                for r in remotes {
                    links.forget(r);
                }
            }
            removed
        };
        if let Some((local, remotes)) = removed {
            for to in remotes {
                effects.push(Effect::LinkExit {
                    from: local.clone(),
                    to,
                    reason: reason.clone(),
                });
            }
        }
        effects
    }

    fn fire_monitors(&self, target: &MonitorTarget, reason: &Term) -> Vec<Effect> {
        let fired: Vec<RemoteMonitor> = {
            let mut mons = lock(&self.monitors);
            let keys = mons.by_target.remove(target).unwrap_or_default();
            keys.iter().filter_map(|k| mons.remove(k)).collect()
        };
        fired
            .into_iter()
            .map(|m| Effect::MonitorExit {
                holder: m.holder,
                target: m.target,
                reference: m.reference,
                reason: reason.clone(),
            })
            .collect()
    }

    fn exists(&self, target: &MonitorTarget) -> bool {
        match target {
            MonitorTarget::Name(n) => read(&self.names).contains_key(n),
            MonitorTarget::Pid(k) => read(&self.pids).contains_key(k),
        }
    }

    /// `MONITOR_P` from `holder`: keep the monitor, or answer `noproc` at once when the
    /// target does not exist (as a BEAM node does). The holder's node must already be
    /// checked to be the sending connection's (the distribution layer does it). Beyond
    /// [`PeerLimits::max_monitors`] for the holder's node the monitor fires at once with
    /// `system_limit`: the holder sees a `'DOWN'` with that reason and can retry later.
    pub fn monitor(
        &self,
        holder: Pid,
        target: ProcId,
        local: MonitorTarget,
        reference: Reference,
    ) -> Option<Effect> {
        // Hold the monitor table while checking existence, so an unregister that runs
        // concurrently either sees this monitor or makes us answer noproc.
        let mut mons = lock(&self.monitors);
        let refused = if !self.exists(&local) {
            Some("noproc")
        } else if mons.count_of(&holder.node.name) >= self.limits.max_monitors {
            Some("system_limit")
        } else {
            None
        };
        if let Some(reason) = refused {
            if reason == "system_limit" {
                tracing::warn!(peer = %holder.node.name, cap = self.limits.max_monitors, "monitor refused with system_limit: the peer holds too many monitors on this node (--max-monitors-per-peer)");
            }
            return Some(Effect::MonitorExit {
                holder,
                target,
                reference,
                reason: Term::Atom(Atom::from(reason)),
            });
        }
        let key = (holder.node.name.clone(), RefKey::of(&reference));
        mons.insert(
            key,
            RemoteMonitor {
                holder,
                reference,
                target,
                local,
            },
        );
        None
    }

    /// `DEMONITOR_P` from a process of `node`: O(1), and only that node's own monitors.
    pub fn demonitor(&self, node: &str, reference: &Reference) {
        let key = (node.to_string(), RefKey::of(reference));
        lock(&self.monitors).remove(&key);
    }

    /// `LINK` from a remote pid to a local one; `EXIT noproc` when the local pid is gone,
    /// `EXIT system_limit` when the remote node is at [`PeerLimits::max_links`].
    pub fn link(&self, local: &Pid, remote: Pid) -> Option<Effect> {
        let k = key(local);
        let mut links = lock(&self.links);
        let refused = if !read(&self.pids).contains_key(&k) {
            Some("noproc")
        } else if links.per_node.get(&remote.node.name).copied().unwrap_or(0)
            >= self.limits.max_links
        {
            Some("system_limit")
        } else {
            None
        };
        if let Some(reason) = refused {
            return Some(Effect::LinkExit {
                from: local.clone(),
                to: remote,
                reason: Term::Atom(Atom::from(reason)),
            });
        }
        let node = remote.node.name.clone();
        let entry = links
            .by_local
            .entry(k)
            .or_insert_with(|| (local.clone(), HashSet::new()));
        if entry.1.insert(remote) {
            *links.per_node.entry(node).or_insert(0) += 1;
        }
        None
    }

    pub fn unlink(&self, local: &Pid, remote: &Pid) {
        let k = key(local);
        let mut links = lock(&self.links);
        let mut removed = false;
        if let Some(entry) = links.by_local.get_mut(&k) {
            removed = entry.1.remove(remote);
            if entry.1.is_empty() {
                links.by_local.remove(&k);
            }
        }
        if removed {
            links.forget(remote);
        }
    }

    /// Records that the local process `holder` monitors a remote process; the `DOWN` is
    /// delivered by [`Registry::monitor_exit`] or [`Registry::node_down`].
    pub fn add_local_monitor(
        &self,
        reference: &Reference,
        holder: Arc<dyn Process>,
        object: Term,
        node: &str,
    ) {
        lock(&self.local_monitors).insert(
            reference.id.clone(),
            LocalMonitor {
                reference: reference.clone(),
                holder,
                object,
                node: node.to_string(),
            },
        );
    }

    pub fn remove_local_monitor(&self, reference: &Reference) -> bool {
        lock(&self.local_monitors).remove(&reference.id).is_some()
    }

    /// `MONITOR_P_EXIT` from `node` arrived for a monitor a local process holds. Only the
    /// node the monitor watches can fire it; anything else (an unknown reference, another
    /// node's) is dropped, reason and all, without recursion.
    pub fn monitor_exit(&self, node: &str, reference: Reference, reason: Owned) {
        let mut mons = lock(&self.local_monitors);
        match mons.get(&reference.id) {
            Some(m) if m.node == node => {}
            _ => return,
        }
        if let Some(m) = mons.remove(&reference.id) {
            drop(mons);
            m.holder.deliver(Signal::Down {
                reference,
                object: m.object,
                reason,
            });
        }
    }

    /// The connection to `node` went down: remote monitors and links held by its
    /// processes vanish; local processes linked to it get `EXIT noconnection`, and local
    /// monitors on its processes fire with `noconnection`.
    pub fn node_down(&self, node: &str) {
        let noconnection = || Owned::new(Term::Atom(Atom::from("noconnection")));
        {
            let mut mons = lock(&self.monitors);
            let refs = mons.by_node.remove(node).unwrap_or_default();
            for r in refs {
                mons.remove(&(node.to_string(), r));
            }
        }
        let mut exits = Vec::new();
        {
            let mut links = lock(&self.links);
            links.by_local.retain(|_, (local, remotes)| {
                remotes.retain(|r| {
                    if r.node.name == node {
                        exits.push((local.clone(), r.clone()));
                        false
                    } else {
                        true
                    }
                });
                !remotes.is_empty()
            });
            links.per_node.remove(node);
        }
        for (local, remote) in exits {
            if let Some(p) = self.lookup_pid(&local) {
                p.deliver(Signal::Exit {
                    from: remote,
                    reason: noconnection(),
                });
            }
        }
        let mut downs = Vec::new();
        lock(&self.local_monitors).retain(|_, m| {
            if m.node == node {
                downs.push((m.reference.clone(), m.holder.clone(), m.object.clone()));
                false
            } else {
                true
            }
        });
        for (reference, holder, object) in downs {
            holder.deliver(Signal::Down {
                reference,
                object,
                reason: noconnection(),
            });
        }
    }
}
