//! Who a node is and how it proves it: `--name`/`--sname`, `--cookie`/`--cookie-file` and,
//! for TLS distribution, its certificate (`--tls-*` or `--ssl-dist-optfile`); the same
//! flags for the daemon (`run`), every tool and the load generator (`bench`).

use rexi_node::net::tls::{optfile, Tls};
use rexi_node::net::{cookie, Cookie};
use std::path::PathBuf;
use std::sync::Arc;

/// Name and cookie options, shared by every subcommand that joins the cluster.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct NodeArgs {
    /// Long node name, NAME@HOST (like erl -name).
    #[arg(long, conflicts_with = "sname")]
    pub name: Option<String>,
    /// Short node name; the host part is this machine's short host name (like erl -sname).
    #[arg(long)]
    pub sname: Option<String>,
    /// The cookie. Prefer --cookie-file or REXI_NODE_COOKIE: a command line is visible in ps.
    #[arg(long, env = "REXI_NODE_COOKIE", hide_env_values = true)]
    pub cookie: Option<String>,
    /// File holding the cookie [default: $HOME/.erlang.cookie, created like erl does].
    #[arg(long)]
    pub cookie_file: Option<PathBuf>,
    /// TLS distribution (like erl -proto_dist inet_tls): this node's certificate chain
    /// (PEM), presented to peers both ways. Needs --tls-key and --tls-cacert.
    #[arg(long, value_name = "PEM", requires_all = ["tls_key", "tls_cacert"], conflicts_with = "ssl_dist_optfile")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PEM", requires_all = ["tls_cert", "tls_cacert"])]
    pub tls_key: Option<PathBuf>,
    /// The CA that signs the peers' certificates (PEM): peers are verified against it
    /// both ways, and must present a certificate (mutual TLS).
    #[arg(long, value_name = "PEM", requires_all = ["tls_cert", "tls_key"])]
    pub tls_cacert: Option<PathBuf>,
    /// TLS distribution configured by the BEAM's own option file (erl -ssl_dist_optfile):
    /// [{server, [...]}, {client, [...]}]. Unsupported options are refused by name.
    #[arg(long, value_name = "FILE")]
    pub ssl_dist_optfile: Option<PathBuf>,
}

impl NodeArgs {
    /// The full node name, with `default_alive` when neither --name nor --sname is given.
    pub(crate) fn node_name(&self, default_alive: &str) -> Result<String, String> {
        if let Some(n) = &self.name {
            if !n.contains('@') {
                return Err(format!(
                    "--name {n}: a long name must be NAME@HOST, e.g. {n}@127.0.0.1"
                ));
            }
            return Ok(n.clone());
        }
        let alive = self
            .sname
            .clone()
            .unwrap_or_else(|| default_alive.to_string());
        if alive.contains('@') {
            return Ok(alive);
        }
        Ok(format!("{alive}@{}", short_host_name()))
    }

    pub(crate) fn load_cookie(&self) -> Result<Cookie, String> {
        if let Some(c) = &self.cookie {
            if cookie_on_command_line() {
                static ONCE: std::sync::Once = std::sync::Once::new();
                ONCE.call_once(|| {
                    tracing::warn!(
                        "the cookie was given with --cookie on the command line, which any \
                         local user can read (ps, /proc); set REXI_NODE_COOKIE or use \
                         --cookie-file instead"
                    )
                });
            }
            return Ok(Cookie::new(c.clone()));
        }
        let path = match &self.cookie_file {
            Some(p) => p.clone(),
            None => {
                cookie::default_path().ok_or("HOME is not set: pass --cookie-file or --cookie")?
            }
        };
        cookie::load_or_create(&path)
    }
}

impl NodeArgs {
    /// TLS distribution as the flags ask, or `None` for plain TCP. Reads every file now,
    /// so a bad path or option stops the command at start with the file named.
    pub(crate) fn load_tls(&self) -> Result<Option<Arc<Tls>>, String> {
        if let Some(path) = &self.ssl_dist_optfile {
            let opts = optfile::read(path)?;
            let tls = Tls::new(&opts)
                .map_err(|e| format!("--ssl-dist-optfile {}: {e}", path.display()))?;
            for w in Tls::warnings(&opts) {
                tracing::warn!("--ssl-dist-optfile {}: {w}", path.display());
            }
            return Ok(Some(Arc::new(tls)));
        }
        match (&self.tls_cert, &self.tls_key, &self.tls_cacert) {
            (Some(cert), Some(key), Some(ca)) => Ok(Some(Arc::new(Tls::mutual(cert, key, ca)?))),
            (None, None, None) => Ok(None),
            // clap's `requires_all` keeps the flags together; this is for callers that build
            // NodeArgs themselves.
            _ => Err("--tls-cert, --tls-key and --tls-cacert go together".into()),
        }
    }
}

/// Whether `--cookie` is on our command line (clap takes it over `REXI_NODE_COOKIE`).
fn cookie_on_command_line() -> bool {
    std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--cookie" || a.to_string_lossy().starts_with("--cookie="))
}

/// This machine's host name up to the first dot, as `erl -sname` uses.
pub(crate) fn short_host_name() -> String {
    let full = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_else(|_| "localhost".into());
    let full = full.trim();
    let short = full.split('.').next().unwrap_or("localhost");
    if short.is_empty() {
        "localhost".into()
    } else {
        short.to_string()
    }
}
