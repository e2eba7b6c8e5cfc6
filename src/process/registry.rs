//! Registered names, local pids, and the monitors and links that cross the network.
//!
//! The registry never touches a socket: operations that must notify a remote process
//! return [`Effect`]s, which the distribution layer sends. Operations that must notify a
//! local process deliver the signal directly.

use super::ids::key;
use super::{Process, Signal};
use crate::dist::message::ProcId;
use eetf::{Atom, Pid, Reference, Term};
use std::collections::HashMap;
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
}

/// A monitor held by a local process on a remote one.
struct LocalMonitor {
    reference: Reference,
    holder: Arc<dyn Process>,
    object: Term,
    node: String,
}

#[derive(Default)]
pub struct Registry {
    names: RwLock<HashMap<String, Arc<dyn Process>>>,
    pids: RwLock<HashMap<u64, Arc<dyn Process>>>,
    monitors: Mutex<HashMap<MonitorTarget, Vec<RemoteMonitor>>>,
    /// local pid key -> remote pids linked to it
    links: Mutex<HashMap<u64, (Pid, Vec<Pid>)>>,
    /// reference id words -> monitor held by a local process on a remote process
    local_monitors: Mutex<HashMap<Vec<u32>, LocalMonitor>>,
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

fn noproc() -> Term {
    Term::Atom(Atom::from("noproc"))
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
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
        if let Some((local, remotes)) = lock(&self.links).remove(&k) {
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
        let fired = lock(&self.monitors).remove(target).unwrap_or_default();
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
    /// target does not exist (as a BEAM node does).
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
        if !self.exists(&local) {
            return Some(Effect::MonitorExit {
                holder,
                target,
                reference,
                reason: noproc(),
            });
        }
        mons.entry(local).or_default().push(RemoteMonitor {
            holder,
            reference,
            target,
        });
        None
    }

    pub fn demonitor(&self, local: &MonitorTarget, reference: &Reference) {
        let mut mons = lock(&self.monitors);
        if let Some(v) = mons.get_mut(local) {
            v.retain(|m| {
                m.reference.id != reference.id || m.reference.node.name != reference.node.name
            });
            if v.is_empty() {
                mons.remove(local);
            }
        }
    }

    /// `LINK` from a remote pid to a local one; `EXIT noproc` when the local pid is gone.
    pub fn link(&self, local: &Pid, remote: Pid) -> Option<Effect> {
        let k = key(local);
        let mut links = lock(&self.links);
        if !read(&self.pids).contains_key(&k) {
            return Some(Effect::LinkExit {
                from: local.clone(),
                to: remote,
                reason: noproc(),
            });
        }
        let entry = links
            .entry(k)
            .or_insert_with(|| (local.clone(), Vec::new()));
        if !entry.1.contains(&remote) {
            entry.1.push(remote);
        }
        None
    }

    pub fn unlink(&self, local: &Pid, remote: &Pid) {
        let k = key(local);
        let mut links = lock(&self.links);
        if let Some(entry) = links.get_mut(&k) {
            entry.1.retain(|p| p != remote);
            if entry.1.is_empty() {
                links.remove(&k);
            }
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

    /// `MONITOR_P_EXIT` arrived for a monitor a local process holds.
    pub fn monitor_exit(&self, reference: Reference, reason: Term) {
        if let Some(m) = lock(&self.local_monitors).remove(&reference.id) {
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
        let noconnection = Term::Atom(Atom::from("noconnection"));
        lock(&self.monitors).retain(|_, v| {
            v.retain(|m| m.holder.node.name != node);
            !v.is_empty()
        });
        let mut exits = Vec::new();
        lock(&self.links).retain(|_, (local, remotes)| {
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
        for (local, remote) in exits {
            if let Some(p) = self.lookup_pid(&local) {
                p.deliver(Signal::Exit {
                    from: remote,
                    reason: noconnection.clone(),
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
                reason: noconnection.clone(),
            });
        }
    }
}
