//! Rust handlers, looked up by `{Module, Function, Arity}` like `apply(M, F, A)`.

pub use super::protocol::Args;
use super::worker::{Ctx, Failure};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send>>;
pub type HandlerFn = Arc<dyn Fn(Ctx, Args) -> HandlerFuture + Send + Sync>;

/// The handler table. Build it before the node starts serving.
#[derive(Clone, Default)]
pub struct Handlers {
    /// Each handler with its index, which names its job-duration series
    /// ([`super::durations`]) without a second lookup by name per job.
    table: HashMap<(String, String, usize), (HandlerFn, usize)>,
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
        let f: HandlerFn = Arc::new(move |ctx, args| Box::pin(f(ctx, args)));
        let key = (module.to_string(), function.to_string(), arity);
        let index = self.table.get(&key).map_or(self.table.len(), |(_, i)| *i);
        self.table.insert(key, (f, index));
    }

    pub fn lookup(&self, key: &(String, String, usize)) -> Option<HandlerFn> {
        self.lookup_indexed(key).map(|(f, _)| f)
    }

    /// The handler and its index (see [`Handlers::mfas`]).
    pub fn lookup_indexed(&self, key: &(String, String, usize)) -> Option<(HandlerFn, usize)> {
        self.table.get(key).map(|(f, i)| (f.clone(), *i))
    }

    /// Every registered MFA, in index order.
    pub fn mfas(&self) -> Vec<(String, String, usize)> {
        let mut v: Vec<(&(String, String, usize), usize)> =
            self.table.iter().map(|(k, (_, i))| (k, *i)).collect();
        v.sort_by_key(|(_, i)| *i);
        v.into_iter().map(|(k, _)| k.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}
