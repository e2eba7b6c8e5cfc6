//! `rexi-node cast NODE M F ARGS...`: runs one rexi job on NODE and prints everything the
//! job sends back: replies, sync_replies (answered with `--answer`), stream rows (acked,
//! so the worker goes on) and the final `rexi_EXIT`.
//!
//! This tool is a hidden node, and BEAM nodes never start a per-node server for a hidden
//! peer (docs/design/migration.md §6), so it must cast to the singleton `rexi_server`. It
//! monitors that name first: on a node without the singleton (release 3) the monitor fires
//! `noproc` at once and the tool says so, instead of waiting for replies to a request that
//! was dropped.
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
pub struct Args {
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
    #[command(flatten)]
    pub tool: ToolArgs,
}

/// How the job ended, and the exit code that goes with it.
enum End {
    Replied,
    WorkerExited(String),
    RexiExit,
    NoSingleton,
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

pub fn main(a: Args) -> ExitCode {
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
        let server_mon = match client.monitor(&node, ProcId::Name("rexi_server".into())) {
            Ok(r) => r,
            Err(e) => {
                return Exit::Unreachable
                    .with(&format!("cannot monitor rexi_server on {node}: {e}"))
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
        if let Err(e) = client.send_named(&node, "rexi_server", &doit) {
            return Exit::Unreachable.with(&format!(
                "cannot send the doit to {{rexi_server, {node}}}: {e}"
            ));
        }
        out.event(
            "doit",
            &format!("sent to {{rexi_server, {node}}}"),
            Some(&mfa),
        );

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
                        End::NoSingleton
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
            End::NoSingleton => {
                out.event("error", "noproc: no rexi_server", None);
                eprintln!(
                    "rexi-node: {node} has no singleton rexi_server (noproc), so the doit was dropped: the node is at release 3, or runs no rexi. \
                     A hidden caller like this tool can only reach the singleton (BEAM nodes start no per-node server for hidden peers)."
                );
                Exit::Failure.into()
            }
            End::ServerDown(r) => {
                eprintln!("rexi-node: rexi_server on {node} exited ({r}) during the job");
                Exit::Failure.into()
            }
            End::ConnectionLost => Exit::Unreachable.with(&format!(
                "the connection to {node} went down during the job"
            )),
            End::Timeout => {
                // Be a good citizen: a job nobody listens to should not run to its own timeouts.
                let kill = tuple(vec![
                    atom("$gen_cast"),
                    tuple(vec![atom("kill"), Term::Reference(Box::new(job.clone()))]),
                ]);
                let _ = client.send_named(&node, "rexi_server", &kill);
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
