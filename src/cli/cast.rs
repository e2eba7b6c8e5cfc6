//! `rexi-node cast NODE M F ARGS...`: runs one rexi job on NODE and prints everything the
//! job sends back: replies, sync_replies (answered with `--answer`), stream rows (acked,
//! so the worker goes on) and the final `rexi_EXIT`.
//!
//! The doit goes where CouchDB's own coordinators send it (`--via node`, the default):
//! `rexi_server_<caller node>`, the per-node name every CouchDB since 3.0 sends to (its
//! `rexi_utils:server_id/1` builds it from the caller's node name; the singleton
//! `rexi_server` is kept only for mixed-version clusters). `--via phash2` uses the
//! `rexi_server_<phash2(caller node)>` form of the migration releases 1..3, `--via singleton`
//! the singleton. The tool monitors that name first: a node without it (a BEAM rexi starts
//! per-node servers only for visible peers, and this tool is hidden; a release-3 node has no
//! singleton) fires `noproc` at once and the tool says so and what to try, instead of
//! waiting for replies to a request that was dropped.
//!
//! A job that outlives `--timeout` is cancelled with `{kill_all, [Ref]}` through the same
//! name: CouchDB HEAD no longer sends `{kill, Ref}` (its `rexi:kill/2` is gone).
//!
//! A rexi job has no end-of-job message: by convention a plain `{Ref, Reply}` is the last
//! one (`rexi:reply`, `stream_last`), so the tool stops there unless `--keep-listening` asks
//! it to wait for more until the worker exits (it monitors the worker once a sync_reply or
//! stream row told it the worker's pid) or `--timeout`.

use super::exit::Exit;
use super::tool::{self, atom, is_atom, jobj, js, list, tuple, ToolArgs};
use eetf::{Pid, Reference, Term};
use rexi_node::process::ProcId;
use rexi_node::process::Signal;
use rexi_node::term as term_text;
use std::process::ExitCode;
use std::time::Duration;
use tokio::time::Instant;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The node to run the job on, NAME@HOST.
    pub node: String,
    /// Module (an atom).
    pub module: String,
    /// Function (an atom).
    pub function: String,
    /// Arguments, one Erlang term each (e.g. `hi`, `'{a, 1}'`, `'<<"x">>'`).
    #[arg(allow_negative_numbers = true)]
    pub args: Vec<String>,
    /// What to answer each sync_reply with (an Erlang term). `rexi_STREAM_INIT` is always
    /// answered `rexi_STREAM_START`, so stream2 jobs run.
    #[arg(long, default_value = "ok", value_name = "TERM")]
    pub answer: String,
    /// Seconds to wait for the job to end; then the job is killed.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub timeout: u64,
    /// Do not stop at the first plain reply: wait until the worker exits or --timeout.
    #[arg(long)]
    pub keep_listening: bool,
    /// Which rexi server name gets the doit (and the kill_all on --timeout): node =
    /// rexi_server_<this tool's node name>, as CouchDB 3.0 and later send; phash2 =
    /// rexi_server_<phash2(this tool's node name)>; singleton = rexi_server.
    #[arg(long, value_enum, default_value_t = Via::Node)]
    pub via: Via,
    #[command(flatten)]
    pub tool: ToolArgs,
}

/// The rexi server name forms a caller may send to.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    Node,
    Phash2,
    Singleton,
}

impl Via {
    /// The registered name on the target for a caller on node `me`.
    fn name(self, me: &str) -> String {
        match self {
            Via::Node => format!("rexi_server_{me}"),
            Via::Phash2 => rexi_node::phash2::server_id(me),
            Via::Singleton => "rexi_server".to_string(),
        }
    }
}

/// How the job ended, and the exit code that goes with it.
enum End {
    Replied,
    WorkerExited(String),
    RexiExit,
    NoServer,
    ServerDown(String),
    ConnectionLost,
    Timeout,
}

struct Out {
    json: bool,
}

impl Out {
    fn event(&self, kind: &str, text: &str, term: Option<&Term>) {
        if self.json {
            let mut f = vec![("event", js(kind))];
            if let Some(t) = term {
                f.push(("term", js(&rexi_node::term::print(t))));
            }
            if !text.is_empty() {
                f.push(("detail", js(text)));
            }
            println!("{}", jobj(&f));
        } else {
            match term {
                Some(t) if text.is_empty() => println!("{kind}: {}", rexi_node::term::print(t)),
                Some(t) => println!("{kind}: {} ({text})", rexi_node::term::print(t)),
                None => println!("{kind}: {text}"),
            }
        }
    }
}

/// How long to listen for a `rexi_EXIT` after the worker's monitor fired.
const GRACE: Duration = Duration::from_millis(300);

fn same_ref(t: &Term, r: &Reference) -> bool {
    matches!(t, Term::Reference(x) if x.id == r.id && x.node == r.node && x.creation == r.creation)
}

pub(crate) fn main(a: Args) -> ExitCode {
    let mut fargs = Vec::with_capacity(a.args.len());
    for (i, s) in a.args.iter().enumerate() {
        match term_text::parse(s) {
            Ok(t) => fargs.push(t),
            Err(e) => {
                return Exit::Usage.with(&format!(
                    "argument {} ({s:?}) is not an Erlang term: {e}",
                    i + 1
                ));
            }
        }
    }
    let answer = match term_text::parse(&a.answer) {
        Ok(t) => t,
        Err(e) => {
            return Exit::Usage.with(&format!(
                "--answer {:?} is not an Erlang term: {e}",
                a.answer
            ));
        }
    };
    let out = Out { json: a.tool.json };
    tool::with_connected_client(&a.tool, &a.node, async |client| {
        let node = a.node.clone();
        let server = a.via.name(client.node().name());
        let server_mon = match client.monitor(&node, ProcId::Name(server.clone())) {
            Ok(r) => r,
            Err(e) => {
                return Exit::Unreachable.with(&format!("cannot monitor {server} on {node}: {e}"))
            }
        };
        let job = client.make_ref();
        let mfa = tuple(vec![atom(&a.module), atom(&a.function), list(fargs)]);
        let doit = tuple(vec![
            atom("$gen_cast"),
            tuple(vec![
                atom("doit"),
                tuple(vec![
                    Term::Pid(client.pid().clone()),
                    Term::Reference(Box::new(job.clone())),
                ]),
                atom("undefined"),
                mfa.clone(),
            ]),
        ]);
        if let Err(e) = client.send_named(&node, &server, &doit) {
            return Exit::Unreachable.with(&format!(
                "cannot send the doit to {{{server}, {node}}}: {e}"
            ));
        }
        out.event("doit", &format!("sent to {{{server}, {node}}}"), Some(&mfa));

        let deadline = Instant::now() + Duration::from_secs(a.timeout.max(1));
        let mut deadline = deadline;
        let mut worker: Option<(Pid, Reference)> = None;
        // The worker's exit reason once its monitor fired. A failing worker's rexi_EXIT comes
        // from the server, on another path, so the tool listens a little longer for it.
        let mut worker_gone: Option<String> = None;
        let end = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(sig) = client.recv(left).await else {
                break match worker_gone.take() {
                    Some(r) => End::WorkerExited(r),
                    None => End::Timeout,
                };
            };
            match sig {
                Signal::Down {
                    reference, reason, ..
                } if reference.id == server_mon.id => {
                    break if is_atom(&reason, "noproc") {
                        End::NoServer
                    } else if is_atom(&reason, "noconnection") {
                        End::ConnectionLost
                    } else {
                        End::ServerDown(rexi_node::term::print(&reason))
                    };
                }
                Signal::Down {
                    reference, reason, ..
                } if worker.as_ref().is_some_and(|(_, m)| m.id == reference.id) => {
                    if is_atom(&reason, "noconnection") {
                        break End::ConnectionLost;
                    }
                    // noproc: it had already ended when the monitor reached its node.
                    worker_gone = Some(if is_atom(&reason, "noproc") {
                        "normal".to_string()
                    } else {
                        rexi_node::term::print(&reason)
                    });
                    deadline = deadline.min(Instant::now() + GRACE);
                }
                Signal::Message { message, .. } if matches!(&*message, Term::Tuple(t) if t.elements.first().is_some_and(|r| same_ref(r, &job))) =>
                {
                    let Term::Tuple(t) = message.into_term() else {
                        continue;
                    };
                    let mut el = t.elements.into_iter().skip(1);
                    match (el.next(), el.next(), el.next()) {
                        (Some(Term::Tuple(e)), None, None)
                            if e.elements.len() == 2 && is_atom(&e.elements[0], "rexi_EXIT") =>
                        {
                            out.event("rexi_EXIT", "", e.elements.get(1));
                            break End::RexiExit;
                        }
                        (Some(reply), None, None) => {
                            out.event("reply", "", Some(&reply));
                            if !a.keep_listening {
                                break End::Replied;
                            }
                        }
                        (Some(Term::Tuple(from)), Some(reply), None)
                            if from.elements.len() == 2
                                && matches!(from.elements[0], Term::Pid(_)) =>
                        {
                            let mut fe = from.elements.into_iter();
                            let (Some(Term::Pid(wpid)), Some(tag)) = (fe.next(), fe.next()) else {
                                continue;
                            };
                            let ans = if is_atom(&reply, "rexi_STREAM_INIT") {
                                atom("rexi_STREAM_START")
                            } else {
                                answer.clone()
                            };
                            let sent = client.send(&wpid, tuple(vec![tag, ans.clone()]));
                            let what = match sent {
                                Ok(()) => format!("answered {}", rexi_node::term::print(&ans)),
                                Err(e) => format!("answer not sent: {e}"),
                            };
                            out.event("sync_reply", &what, Some(&reply));
                            watch_worker(client, &node, &mut worker, wpid);
                        }
                        (Some(Term::Pid(wpid)), Some(row), None) => {
                            let sent =
                                client.send(&wpid, tuple(vec![atom("rexi_ack"), tool::int(1)]));
                            let what = match sent {
                                Ok(()) => "acked".to_string(),
                                Err(e) => format!("ack not sent: {e}"),
                            };
                            out.event("row", &what, Some(&row));
                            watch_worker(client, &node, &mut worker, wpid);
                        }
                        _ => out.event(
                            "other",
                            "a message with the job's ref in an unknown shape",
                            None,
                        ),
                    }
                }
                Signal::Message { message, .. } => {
                    if matches!(&*message, Term::Tuple(t) if t.elements.len() == 2 && is_atom(&t.elements[0], "rexi") && is_atom(&t.elements[1], "$rexi_ping"))
                    {
                        out.event("ping", "keep-alive from the worker", None);
                    } else {
                        out.event("other", "", Some(&message));
                    }
                }
                _ => {}
            }
        };
        let code = match &end {
            End::Replied => Exit::Success.into(),
            End::WorkerExited(r) => {
                out.event("end", &format!("worker exited: {r}"), None);
                if r.trim_matches('\'') == "normal" {
                    Exit::Success.into()
                } else {
                    Exit::Failure.into()
                }
            }
            End::RexiExit => Exit::Failure.into(),
            End::NoServer => {
                let what = match a.via {
                    Via::Singleton => "singleton rexi_server".to_string(),
                    _ => server.clone(),
                };
                out.event("error", &format!("noproc: no {what}"), None);
                let why = match a.via {
                    Via::Singleton => "the node is at release 3, or runs no rexi. Try --via node.",
                    // A BEAM rexi starts per-node servers only for the visible nodes it
                    // sees; rexi-node serves every name form to every peer.
                    _ => "a BEAM rexi (CouchDB) starts per-node servers only for visible nodes, and this tool is a hidden node. Try --via singleton.",
                };
                eprintln!(
                    "rexi-node: {node} has no {what} (noproc), so the doit was dropped: {why}"
                );
                Exit::Failure.into()
            }
            End::ServerDown(r) => {
                eprintln!("rexi-node: {server} on {node} exited ({r}) during the job");
                Exit::Failure.into()
            }
            End::ConnectionLost => Exit::Unreachable.with(&format!(
                "the connection to {node} went down during the job"
            )),
            End::Timeout => {
                // Be a good citizen: a job nobody listens to should not run to its own timeouts.
                // kill_all, as CouchDB 3.0 and later send (HEAD removed rexi:kill/2).
                let kill = tuple(vec![
                    atom("$gen_cast"),
                    tuple(vec![
                        atom("kill_all"),
                        list(vec![Term::Reference(Box::new(job.clone()))]),
                    ]),
                ]);
                let _ = client.send_named(&node, &server, &kill);
                out.event(
                    "timeout",
                    &format!("no end of the job within {} s; kill sent", a.timeout),
                    None,
                );
                eprintln!("rexi-node: the job on {node} did not end within {} s (--timeout); a kill was sent", a.timeout);
                Exit::Failure.into()
            }
        };
        code
    })
}

fn watch_worker(
    client: &rexi_node::client::Client,
    node: &str,
    worker: &mut Option<(Pid, Reference)>,
    pid: Pid,
) {
    if worker.is_none() {
        if let Ok(m) = client.monitor(node, ProcId::Pid(pid.clone())) {
            *worker = Some((pid, m));
        }
    }
}
