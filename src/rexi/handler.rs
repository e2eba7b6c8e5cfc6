//! Rust handlers, looked up by `{Module, Function, Arity}` like `apply(M, F, A)`.

pub use super::protocol::Args;
use super::worker::{Ctx, Failure};
use crate::fast_hash::FastMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send>>;
pub type HandlerFn = Arc<dyn Fn(Ctx, Args) -> HandlerFuture + Send + Sync>;

/// The handler table. Build it before the node starts serving.
///
/// Looked up on every doit by the M and F of the frame, borrowed: by module, then among
/// that module's few functions. Each handler has an index, which names its job-duration
/// series ([`super::durations`]) and its MFA for the job, without a lookup by name.
#[derive(Clone, Default)]
pub struct Handlers {
    table: FastMap<String, Vec<Entry>>,
    len: usize,
}

#[derive(Clone)]
struct Entry {
    function: String,
    arity: usize,
    handler: HandlerFn,
    index: usize,
}

impl Handlers {
    pub fn new() -> Handlers {
        Handlers::default()
    }

    /// Serves `Module:Function/Arity` with `f`, for rexi casts and for `erpc:call`,
    /// `rpc:call` and `spawn/4` alike (see [`super::erpc`]: there the first `reply` is the
    /// call's value).
    ///
    /// A job first runs right on the connection's reader, until its first `.await` that
    /// has to wait; only then is it spawned as a task of its own. That makes a job that
    /// answers at once (an echo, a hash) cost no spawn and no thread hop, but it also
    /// means the connection reads nothing else while a handler computes without
    /// awaiting: do long CPU work in `tokio::task::spawn_blocking` (or yield first), as a
    /// busy distribution connection makes CouchDB 2.0+ callers drop casts silently. The
    /// spawned task stays on the connection's thread (see [`crate::net::threads`]), so a
    /// handler that blocks between awaits also stalls the other connections of that
    /// thread.
    ///
    /// ```no_run
    /// # use rexi_node::rexi::Handlers;
    /// let mut h = Handlers::new();
    /// h.register("my_mod", "hello", 1, |ctx, mut args| async move {
    ///     let who = args.take(0);
    ///     ctx.reply(who);
    ///     Ok(())
    /// });
    /// ```
    pub fn register<F, Fut>(&mut self, module: &str, function: &str, arity: usize, f: F)
    where
        F: Fn(Ctx, Args) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Failure>> + Send + 'static,
    {
        let handler: HandlerFn = Arc::new(move |ctx, args| Box::pin(f(ctx, args)));
        let entries = self.table.entry(module.to_string()).or_default();
        match entries
            .iter_mut()
            .find(|e| e.arity == arity && e.function == function)
        {
            // Registered again: the new handler, the same index.
            Some(e) => e.handler = handler,
            None => {
                entries.push(Entry {
                    function: function.to_string(),
                    arity,
                    handler,
                    index: self.len,
                });
                self.len += 1;
            }
        }
    }

    pub fn lookup(&self, key: &(String, String, usize)) -> Option<HandlerFn> {
        self.find(&key.0, &key.1, key.2).map(|(f, _)| f)
    }

    /// The handler and its index (see [`Handlers::mfas`]).
    pub fn lookup_indexed(&self, key: &(String, String, usize)) -> Option<(HandlerFn, usize)> {
        self.find(&key.0, &key.1, key.2)
    }

    /// The handler of `module:function/arity` and its index, looked up without allocating.
    pub fn find(&self, module: &str, function: &str, arity: usize) -> Option<(HandlerFn, usize)> {
        self.table
            .get(module)?
            .iter()
            .find(|e| e.arity == arity && e.function == function)
            .map(|e| (e.handler.clone(), e.index))
    }

    /// Every registered MFA, in index order.
    pub fn mfas(&self) -> Vec<(String, String, usize)> {
        let mut v: Vec<(&str, &Entry)> = self
            .table
            .iter()
            .flat_map(|(m, es)| es.iter().map(move |e| (m.as_str(), e)))
            .collect();
        v.sort_by_key(|(_, e)| e.index);
        v.into_iter()
            .map(|(m, e)| (m.to_string(), e.function.clone(), e.arity))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}
