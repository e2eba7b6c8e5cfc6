%% @doc The rexi protocol against the Rust rexi-node daemon (a hidden C-node).
%%
%% init_per_suite starts the binary named by env REXI_NODE_BIN (no default: the
%% suite fails without it) as
%% `rexi-node run --name rust@127.0.0.1 --cookie C --release 1' and waits for
%% a ping. The ct node is
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

%% How long "no 11th row" is watched for while a v1 stream waits for an ack:
%% the only check here that waits for something not to happen, since a worker
%% that waits sends nothing that could mark the end of the wait. Every other
%% "nothing more" is checked after an event that proves it (a marker reply, the
%% worker's 'DOWN').
-define(NO_ROW_MS, 400).

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
    T = rexi_ct_lib:start_rust(rust, 1),
    ct:log("rexi-node started: ~p", [T]),
    [{rust, T} | Config].

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

%% Waits for worker W to end, then checks that nothing more came for Ref: the
%% daemon sends W's messages and its 'DOWN' in order on the one connection.
ended(Ref, W) ->
    Mon = erlang:monitor(process, W),
    receive {'DOWN', Mon, process, _, _} -> ok
    after 5000 -> ct:fail({worker_did_not_end, W})
    end,
    nothing_for(Ref, 0).

%% A sleep job cast after others and due after them: once its reply is here,
%% the reply of any job due earlier would be here too (the daemon's timers fire
%% in deadline order and its replies share the one connection).
marker(Config, Ms) ->
    {slept, Ms} = recv(cast(Config, {rexi_node, sleep, [Ms]})),
    ok.

%% Exactly N rows for Ref, in order, each within 5 s.
rows(_Ref, 0) -> [];
rows(Ref, N) ->
    receive {Ref, W, Row} when is_pid(W) -> [{W, Row} | rows(Ref, N - 1)]
    after 5000 -> ct:fail({missing_rows, N})
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
    First = rows(Ref, 10),
    [{W, {1, v1}} | _] = First,
    Expected1 = [{I, v1} || I <- lists:seq(1, 10)],
    Expected1 = [Row || {_, Row} <- First],
    nothing_for(Ref, ?NO_ROW_MS),               % stopped at the limit
    %% one ack frees exactly one slot
    rexi:stream_ack(W),
    [{W, {11, v1}}] = rows(Ref, 1),
    nothing_for(Ref, ?NO_ROW_MS),
    %% ack the rest row by row (each ack lets exactly one more row through)
    Rest = stream_rest(Ref, W, []),
    Expected2 = [{I, v1} || I <- lists:seq(12, N)],
    Expected2 = Rest,
    ended(Ref, W).

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
    ended(Ref, W).

stream2_cancel(Config) ->
    Ref = cast(Config, {rexi_node, stream2, [5, v2]}),
    {{W, _} = From, rexi_STREAM_INIT} = recv(Ref),
    rexi:stream_cancel(From),
    ended(Ref, W).                              % no rows, no rexi_EXIT

kill(Config) ->
    Ref = cast(Config, {rexi_node, sleep, [300]}),
    erlang:send(dest(Config), {'$gen_cast', {kill, Ref}}),
    ok = marker(Config, 600),                   % the job was due at 300 ms
    nothing_for(Ref, 0),
    %% the server still works, and a kill of an unknown ref is harmless
    erlang:send(dest(Config), {'$gen_cast', {kill, make_ref()}}),
    reply(Config).

kill_all(Config) ->
    Refs = [cast(Config, {rexi_node, sleep, [300]}) || _ <- [1, 2, 3]],
    erlang:send(dest(Config), {'$gen_cast', {kill_all, Refs}}),
    ok = marker(Config, 600),                   % the jobs were due at 300 ms
    [nothing_for(R, 0) || R <- Refs],
    reply(Config).

fail(Config) ->
    Ref = cast(Config, {rexi_node, fail, [boom]}),
    {rexi_EXIT, {boom, Stack}} = recv(Ref),
    true = is_list(Stack).

undef(Config) ->
    Ref = cast(Config, {no_such_module, no_such_fun, [1, two]}),
    {rexi_EXIT, {undef, Stack}} = recv(Ref),
    [{no_such_module, no_such_fun, [1, two], []} | _] = Stack.

%% a monitor on the served name stays quiet: a name that is not there answers
%% 'DOWN' noproc at once, before the reply to a cast sent after the monitor
monitor_server(Config) ->
    Mon = erlang:monitor(process, dest(Config)),
    reply(Config),
    receive
        {'DOWN', Mon, _, _, Reason} -> ct:fail({down, Reason})
    after 0 ->
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

%% Every counter of the stats call, compared with the traffic this case sends:
%% the difference between two snapshots, field by field, and the field list.
stats(Config) ->
    Rust = rust(Config),
    Single = {rexi_server, Rust},
    Phash = {rexi_ct_lib:per_node_name(node()), Rust},
    ByName = {rexi_ct_lib:nodename_name(node()), Rust},
    Call = fun(Dest, MFA) ->
                   Ref = make_ref(),
                   erlang:send(Dest, {'$gen_cast', {doit, {self(), Ref}, undefined, MFA}}),
                   Ref
           end,
    S0 = gen_server:call({rexi_server_mon, Rust}, stats),
    [x1 = recv(Call(Single, {rexi_node, echo, [x1]})) || _ <- [1, 2, 3]],
    [y = recv(Call(Phash, {rexi_node, echo, [y]})) || _ <- [1, 2]],
    {rexi_EXIT, {boom, _}} = recv(Call(ByName, {rexi_node, fail, [boom]})),
    {rexi_EXIT, {undef, _}} = recv(Call(Single, {no_such_module, f, []})),
    Killed = Call(Single, {rexi_node, sleep, [60000]}),
    erlang:send(Single, {'$gen_cast', {kill, Killed}}),
    erlang:send(Single, {'$gen_cast', {kill, make_ref()}}),
    Bad = make_ref(),
    erlang:send(Single, {'$gen_cast', {doit, {self(), Bad}, undefined, not_an_mfa}}),
    {rexi_EXIT, {function_clause, []}} = recv(Bad),
    %% the daemon handles one connection's messages in order: this reply comes
    %% after the kills above were counted
    done = recv(Call(Single, {rexi_node, echo, [done]})),
    S1 = gen_server:call({rexi_server_mon, Rust}, stats),
    ct:log("stats before: ~p~nafter: ~p", [S0, S1]),
    Keys = [release, casts_singleton, casts_phash2, casts_nodename, replies, replies_dropped,
            errors, kills, kills_unknown, tombstones_hit, dropped_retired, overloaded, malformed,
            jobs_running, jobs_cancelled_nodedown, monitors_held, links_held,
            jobs_started, jobs_ended, dropped_unserved,
            epmd_registered, accepting, connections_handshaking, connections_up,
            connections_refused_max_connections, connections_refused_max_handshakes,
            connections_refused_max_handshakes_per_address, nodeup,
            nodedown_closed, nodedown_tick_timeout, nodedown_io, nodedown_bad_frame,
            nodedown_shutdown, nodedown_replaced, nodedown_write_queue_overflow,
            nodedown_write_stalled,
            handshake_failures_wrong_cookie, handshake_failures_timeout,
            handshake_failures_refused, handshake_failures_unreachable, handshake_failures_tls,
            handshake_failures_other,
            dist_bytes_in, dist_bytes_out, dist_frames_in, dist_frames_out,
            outbox_bytes_queued, outbox_bytes_queued_max_peer,
            frames_refused_max_frame, frames_refused_frame_type, frames_refused_term,
            frames_refused_max_outbox, connections_closed_max_outbox_total],
    Keys = [K || {K, _} <- S0],
    Keys = [K || {K, _} <- S1],
    Want = #{release => 0, casts_singleton => 3 + 1 + 1 + 1, casts_phash2 => 2,
             casts_nodename => 1, replies => 3 + 2 + 1, replies_dropped => 0, errors => 2, kills => 1,
             kills_unknown => 1, tombstones_hit => 0, dropped_retired => 0,
             overloaded => 0, malformed => 1, jobs_running => 0,
             jobs_cancelled_nodedown => 0, monitors_held => 0, links_held => 0,
             %% jobs: 3 + 2 echoes, the fail, the killed sleep, the last echo (undef and
             %% the malformed doit start none); all of them ended
             jobs_started => 8, jobs_ended => 8, dropped_unserved => 0,
             epmd_registered => 0, accepting => 0, connections_handshaking => 0,
             connections_up => 0, connections_refused_max_connections => 0,
             connections_refused_max_handshakes => 0,
             connections_refused_max_handshakes_per_address => 0, nodeup => 0,
             nodedown_closed => 0, nodedown_tick_timeout => 0, nodedown_io => 0,
             nodedown_bad_frame => 0, nodedown_shutdown => 0, nodedown_replaced => 0,
             nodedown_write_queue_overflow => 0, nodedown_write_stalled => 0,
             handshake_failures_wrong_cookie => 0, handshake_failures_timeout => 0,
             handshake_failures_refused => 0, handshake_failures_unreachable => 0,
             handshake_failures_tls => 0, handshake_failures_other => 0,
             frames_refused_max_frame => 0, frames_refused_frame_type => 0,
             frames_refused_term => 0, frames_refused_max_outbox => 0,
             connections_closed_max_outbox_total => 0},
    %% Bytes, frames and queue sizes move by amounts this case does not control (ticks,
    %% the stats calls themselves): present in the key list above, left out of the deltas.
    Moving = [dist_bytes_in, dist_bytes_out, dist_frames_in, dist_frames_out,
              outbox_bytes_queued, outbox_bytes_queued_max_peer],
    Got = maps:from_list([{K, V1 - proplists:get_value(K, S0)}
                          || {K, V1} <- S1, not lists:member(K, Moving)]),
    case Got =:= Want of
        true -> ok;
        false -> ct:fail({stats_differ, [{K, {want, maps:get(K, Want)}, {got, maps:get(K, Got)}}
                                         || K <- Keys -- Moving, maps:get(K, Want) =/= maps:get(K, Got)]})
    end,
    1 = proplists:get_value(release, S1).
