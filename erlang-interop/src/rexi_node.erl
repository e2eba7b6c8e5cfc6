%% @doc Built-in job handlers, the same MFAs the Rust rexi-node daemon serves
%% under the module name `rexi_node', so BEAM and Rust targets can be
%% compared with identical requests.
-module(rexi_node).

-export([echo/1, sleep/1, stream/2, stream2/2, sync/1, fail/1]).

%% reply T
echo(T) ->
    rexi:reply(T).

%% wait Ms milliseconds, reply {slept, Ms}
sleep(Ms) ->
    timer:sleep(Ms),
    rexi:reply({slept, Ms}).

%% stream v1 rows {I, T} for I in 1..N, then reply done
stream(N, T) ->
    lists:foreach(fun(I) -> rexi:stream({I, T}) end, lists:seq(1, N)),
    rexi:reply(done).

%% stream v2: handshake, rows {I, T}, stream_last(done)
stream2(N, T) ->
    lists:foreach(fun(I) -> rexi:stream2({I, T}) end, lists:seq(1, N)),
    rexi:stream_last(done).

%% sync_reply(T), then reply {answered, Answer}
sync(T) ->
    Answer = rexi:sync_reply(T),
    rexi:reply({answered, Answer}).

%% fail with error(Reason): the caller gets {rexi_EXIT, {Reason, Stack}}
fail(Reason) ->
    error(Reason).
