%% @doc The rexi protocol against the Rust rexi-node daemon (a hidden C-node).
%%
%% init_per_suite starts the binary from env REXI_NODE_BIN (default
%% ../target/release/rexi-node relative to erlang-interop) as
%% `rexi-node run --name rust@127.0.0.1 --cookie C --release 1' and waits for
%% a ping; the suite is skipped if the binary does not exist. The ct node is
%% the caller and sends raw rexi messages, so every case runs once per server
%% name form: `rexi_server', `rexi_server_<phash2(node())>' and
%% `rexi_server_<node()>'.
-module(rexi_node_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0, groups/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_group/2, end_per_group/2]).
-export([reply/1, sync_reply/1, stream_v1_flow_control/1, stream2_start/1,
         stream2_cancel/1, kill/1, kill_all/1, fail/1, undef/1,
         monitor_server/1, monitor_noproc/1, status/1, stats/1]).

-define(QUIET_MS, 400).          % "nothing arrives" window

suite() ->
    [{timetrap, {minutes, 2}}].

all() ->
    [{group, singleton}, {group, per_node_phash}, {group, per_node_nodename},
     monitor_noproc, status, stats].

groups() ->
    Cases = [reply, sync_reply, stream_v1_flow_control, stream2_start,
             stream2_cancel, kill, kill_all, fail, undef, monitor_server],
    [{G, [], Cases} || G <- [singleton, per_node_phash, per_node_nodename]].

init_per_suite(Config) ->
    Bin = rexi_ct_lib:rust_bin(),
    case filelib:is_regular(Bin) of
        false ->
            {skip, lists:flatten(io_lib:format("no rexi-node binary at ~s (set REXI_NODE_BIN)", [Bin]))};
        true ->
            T = rexi_ct_lib:start_rust(rust, 1),
            ct:log("rexi-node started: ~p", [T]),
            [{rust, T} | Config]
    end.

end_per_suite(Config) ->
    rexi_ct_lib:stop(?config(rust, Config)),
    ok.

init_per_group(singleton, Config) ->
    [{name, rexi_server} | Config];
init_per_group(per_node_phash, Config) ->
    [{name, rexi_ct_lib:per_node_name(node())} | Config];
init_per_group(per_node_nodename, Config) ->
    [{name, rexi_ct_lib:nodename_name(node())} | Config].

end_per_group(_, _Config) ->
    ok.

%% ---- helpers --------------------------------------------------------------

rust(Config) ->
    maps:get(node, ?config(rust, Config)).

dest(Config) ->
    {?config(name, Config), rust(Config)}.

cast(Config, MFA) ->
    Ref = make_ref(),
    erlang:send(dest(Config), {'$gen_cast', {doit, {self(), Ref}, undefined, MFA}}),
    Ref.

recv(Ref) ->
    receive
        {Ref, Msg} -> Msg;
        {Ref, From, Msg} -> {From, Msg}
    after 5000 ->
        ct:fail({no_reply, Ref})
    end.

nothing_for(Ref, Ms) ->
    receive
        {Ref, Msg} -> ct:fail({unexpected, Msg});
        {Ref, From, Msg} -> ct:fail({unexpected, From, Msg})
    after Ms ->
        ok
    end.

%% ---- cases ----------------------------------------------------------------

reply(Config) ->
    Payload = {hello, make_ref(), <<"bin">>, [1, 2.5, "str"]},
    Ref = cast(Config, {rexi_node, echo, [Payload]}),
    Payload = recv(Ref).

sync_reply(Config) ->
    Rust = rust(Config),
    Ref = cast(Config, {rexi_node, sync, [question]}),
    {{WPid, Tag} = From, question} = recv(Ref),
    true = is_pid(WPid) andalso node(WPid) =:= Rust andalso is_reference(Tag),
    gen_server:reply(From, forty_two),
    {answered, forty_two} = recv(Ref).

%% stream v1: at most 10 rows unacked; the worker waits for {rexi_ack, N}
stream_v1_flow_control(Config) ->
    N = 25,
    Ref = cast(Config, {rexi_node, stream, [N, v1]}),
    First = collect_rows(Ref, ?QUIET_MS * 2),
    10 = length(First),                         % stopped at the limit
    [{W, {1, v1}} | _] = First,
    Expected1 = [{I, v1} || I <- lists:seq(1, 10)],
    Expected1 = [Row || {_, Row} <- First],
    %% one ack frees exactly one slot
    rexi:stream_ack(W),
    [{W, {11, v1}}] = collect_rows(Ref, ?QUIET_MS),
    %% ack the rest row by row (each ack lets exactly one more row through)
    Rest = stream_rest(Ref, W, []),
    Expected2 = [{I, v1} || I <- lists:seq(12, N)],
    Expected2 = Rest,
    nothing_for(Ref, 100).

collect_rows(Ref, Quiet) ->
    receive
        {Ref, W, Row} when is_pid(W) -> [{W, Row} | collect_rows(Ref, Quiet)]
    after Quiet ->
        []
    end.

stream_rest(Ref, W, Acc) ->
    rexi:stream_ack(W),
    receive
        {Ref, W, Row} -> stream_rest(Ref, W, [Row | Acc]);
        {Ref, done} -> lists:reverse(Acc)
    after 5000 ->
        ct:fail({stream_stalled, lists:reverse(Acc)})
    end.

stream2_start(Config) ->
    Ref = cast(Config, {rexi_node, stream2, [5, v2]}),
    {{W, _Tag} = From, rexi_STREAM_INIT} = recv(Ref),
    rexi:stream_start(From),
    Rows = [receive {Ref, W, Row} -> rexi:stream_ack(W), Row
            after 5000 -> ct:fail({missing_row, I}) end || I <- lists:seq(1, 5)],
    Expected = [{I, v2} || I <- lists:seq(1, 5)],
    Expected = Rows,
    done = recv(Ref),
    nothing_for(Ref, 100).

stream2_cancel(Config) ->
    Ref = cast(Config, {rexi_node, stream2, [5, v2]}),
    {From, rexi_STREAM_INIT} = recv(Ref),
    rexi:stream_cancel(From),
    nothing_for(Ref, ?QUIET_MS).                % no rows, no rexi_EXIT

kill(Config) ->
    Ref = cast(Config, {rexi_node, sleep, [600]}),
    erlang:send(dest(Config), {'$gen_cast', {kill, Ref}}),
    nothing_for(Ref, 900),
    %% the server still works, and a kill of an unknown ref is harmless
    erlang:send(dest(Config), {'$gen_cast', {kill, make_ref()}}),
    reply(Config).

kill_all(Config) ->
    Refs = [cast(Config, {rexi_node, sleep, [600]}) || _ <- [1, 2, 3]],
    erlang:send(dest(Config), {'$gen_cast', {kill_all, Refs}}),
    [nothing_for(R, 300) || R <- Refs],
    nothing_for(hd(Refs), 400),
    reply(Config).

fail(Config) ->
    Ref = cast(Config, {rexi_node, fail, [boom]}),
    {rexi_EXIT, {boom, Stack}} = recv(Ref),
    true = is_list(Stack).

undef(Config) ->
    Ref = cast(Config, {no_such_module, no_such_fun, [1, two]}),
    {rexi_EXIT, {undef, Stack}} = recv(Ref),
    [{no_such_module, no_such_fun, [1, two], []} | _] = Stack.

%% a monitor on the served name stays quiet
monitor_server(Config) ->
    Mon = erlang:monitor(process, dest(Config)),
    receive
        {'DOWN', Mon, _, _, Reason} -> ct:fail({down, Reason})
    after ?QUIET_MS ->
        true = erlang:demonitor(Mon, [flush])
    end.

monitor_noproc(Config) ->
    Mon = erlang:monitor(process, {no_such, rust(Config)}),
    receive
        {'DOWN', Mon, process, _, noproc} -> ok;
        {'DOWN', Mon, process, _, Other} -> ct:fail({down, Other})
    after 5000 ->
        ct:fail(no_down)
    end.

status(Config) ->
    ok = gen_server:call({rexi_server_mon, rust(Config)}, status).

stats(Config) ->
    Stats = gen_server:call({rexi_server_mon, rust(Config)}, stats),
    ct:log("stats: ~p", [Stats]),
    true = is_map(Stats) orelse is_list(Stats).
