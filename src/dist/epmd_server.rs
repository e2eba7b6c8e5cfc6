//! An epmd-compatible name server of our own, run as `rexi-node epmd`.
//!
//! `erl` starts epmd itself when none answers; rexi-node must work on machines without
//! Erlang installed, so it carries this server and starts it the same way: detached, so
//! that BEAM nodes that register with it later keep their registration after the daemon
//! exits. It speaks what nodes and tools use: ALIVE2 (register, kept while the socket is
//! open), PORT_PLEASE2 (look up), NAMES (`epmd -names`), DUMP and KILL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ALIVE2_REQ: u8 = 120;
const ALIVE2_X_RESP: u8 = 118;
const PORT_PLEASE2_REQ: u8 = 122;
const PORT2_RESP: u8 = 119;
const NAMES_REQ: u8 = 110;
const DUMP_REQ: u8 = 100;
const KILL_REQ: u8 = 107;

#[derive(Clone)]
struct Entry {
    port: u16,
    node_type: u8,
    protocol: u8,
    highest: u16,
    lowest: u16,
    extra: Vec<u8>,
    conn: u64,
}

#[derive(Default)]
struct State {
    nodes: HashMap<String, Entry>,
    creation: u32,
    next_conn: u64,
}

/// Starts `rexi-node epmd --port PORT` as a detached process (its own process group, no
/// stdio), so it outlives this daemon like erl's epmd does. Returns the child's pid.
pub fn spawn_detached(port: u16) -> Result<u32, String> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find our own executable to start epmd: {e}"))?;
    let child = std::process::Command::new(exe)
        .args(["epmd", "--port", &port.to_string()])
        // The port mapper needs no cookie; keep it out of its environment (/proc/PID/environ).
        .env_remove("REXI_NODE_COOKIE")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start epmd: {e}"))?;
    tracing::info!(
        pid = child.id(),
        port,
        "no epmd answered: started rexi-node epmd (detached)"
    );
    Ok(child.id())
}

/// Serves until KILL_REQ (with no node registered) or the process is stopped.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    let port = listener.local_addr()?.port();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(7);
    let state = Arc::new(Mutex::new(State {
        creation: seed | 4,
        ..State::default()
    }));
    let (kill_tx, mut kill_rx) = tokio::sync::mpsc::channel::<()>(1);
    loop {
        let (sock, _) = tokio::select! {
            r = listener.accept() => r?,
            _ = kill_rx.recv() => return Ok(()),
        };
        let state = state.clone();
        let kill_tx = kill_tx.clone();
        tokio::spawn(async move {
            let _ = sock.set_nodelay(true);
            if let Err(e) = handle(sock, state, port, kill_tx).await {
                tracing::debug!(error = %e, "epmd client");
            }
        });
    }
}

fn lock(s: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

async fn handle(
    mut sock: TcpStream,
    state: Arc<Mutex<State>>,
    port: u16,
    kill: tokio::sync::mpsc::Sender<()>,
) -> std::io::Result<()> {
    let mut len = [0u8; 2];
    sock.read_exact(&mut len).await?;
    let len = u16::from_be_bytes(len) as usize;
    if len == 0 {
        return Ok(());
    }
    let mut req = vec![0u8; len];
    sock.read_exact(&mut req).await?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed epmd request");
    match req[0] {
        ALIVE2_REQ => {
            let r = &req[1..];
            if r.len() < 10 {
                return Err(bad());
            }
            let nlen = u16::from_be_bytes([r[8], r[9]]) as usize;
            if r.len() < 10 + nlen + 2 {
                return Err(bad());
            }
            let name = String::from_utf8_lossy(&r[10..10 + nlen]).into_owned();
            let elen = u16::from_be_bytes([r[10 + nlen], r[11 + nlen]]) as usize;
            let extra = r.get(12 + nlen..12 + nlen + elen).unwrap_or(&[]).to_vec();
            let (ok, creation, conn) = {
                let mut st = lock(&state);
                st.next_conn += 1;
                let conn = st.next_conn;
                if st.nodes.contains_key(&name) {
                    (false, 0, conn)
                } else {
                    st.creation = st.creation.wrapping_add(1).max(4);
                    let creation = st.creation;
                    st.nodes.insert(
                        name.clone(),
                        Entry {
                            port: u16::from_be_bytes([r[0], r[1]]),
                            node_type: r[2],
                            protocol: r[3],
                            highest: u16::from_be_bytes([r[4], r[5]]),
                            lowest: u16::from_be_bytes([r[6], r[7]]),
                            extra,
                            conn,
                        },
                    );
                    (true, creation, conn)
                }
            };
            let mut resp = vec![ALIVE2_X_RESP, if ok { 0 } else { 1 }];
            resp.extend_from_slice(&creation.to_be_bytes());
            sock.write_all(&resp).await?;
            if !ok {
                return Ok(());
            }
            // The registration lives as long as this socket.
            let mut buf = [0u8; 64];
            loop {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let mut st = lock(&state);
            if matches!(st.nodes.get(&name), Some(e) if e.conn == conn) {
                st.nodes.remove(&name);
            }
            Ok(())
        }
        PORT_PLEASE2_REQ => {
            let name = String::from_utf8_lossy(&req[1..]).into_owned();
            let entry = lock(&state).nodes.get(&name).cloned();
            let mut resp = vec![PORT2_RESP];
            match entry {
                None => resp.push(1),
                Some(e) => {
                    resp.push(0);
                    resp.extend_from_slice(&e.port.to_be_bytes());
                    resp.push(e.node_type);
                    resp.push(e.protocol);
                    resp.extend_from_slice(&e.highest.to_be_bytes());
                    resp.extend_from_slice(&e.lowest.to_be_bytes());
                    resp.extend_from_slice(&(name.len() as u16).to_be_bytes());
                    resp.extend_from_slice(name.as_bytes());
                    resp.extend_from_slice(&(e.extra.len() as u16).to_be_bytes());
                    resp.extend_from_slice(&e.extra);
                }
            }
            sock.write_all(&resp).await
        }
        NAMES_REQ | DUMP_REQ => {
            let mut resp = (port as u32).to_be_bytes().to_vec();
            let mut nodes: Vec<(String, u16)> = lock(&state)
                .nodes
                .iter()
                .map(|(n, e)| (n.clone(), e.port))
                .collect();
            nodes.sort();
            for (n, p) in nodes {
                if req[0] == NAMES_REQ {
                    resp.extend_from_slice(format!("name {n} at port {p}\n").as_bytes());
                } else {
                    resp.extend_from_slice(
                        format!("active name     <{n}> at port {p}, fd = 0\n").as_bytes(),
                    );
                }
            }
            sock.write_all(&resp).await
        }
        KILL_REQ => {
            let empty = lock(&state).nodes.is_empty();
            sock.write_all(if empty { b"OK" } else { b"NO" }).await?;
            if empty {
                let _ = kill.send(()).await;
            }
            Ok(())
        }
        _ => Err(bad()),
    }
}
