%% Probes run by the Rust integration tests (tests/*.rs) on real erl nodes against a
%% running rexi-node. Each entry point prints what it saw, then PASS (exit 0) or
%% FAIL <why> (exit 1). Started with: erl -run rn_probe Function Arg...
-module(rn_probe).
-export([ping/1, expect_ping/1, monitors/1, wait_connected/1, idle/1, big/1, traffic/1,
         shapes/1, fresh_connect/1, storm/1, panic/1, never_returns/1, cast_and_die/1,
         await_cancelled/1, release_switch/1, call_mfa/1, links/1, traced/1, phash2_served/1, overload/1, worker_timeouts/1, dial_until_up/1]).

-define(T(L), list_to_atom(hd(L))).

done(ok) -> io:format("PASS~n"), halt(0);
done({fail, Why}) -> io:format("FAIL ~p~n", [Why]), halt(1).

check(Fun) ->
    try Fun() of
        ok -> done(ok);
        Other -> done({fail, Other})
    catch C:R:S -> done({fail, {C, R, S}})
    end.

rx(Timeout) -> receive M -> M after Timeout -> timeout end.

names(T) ->
    [{rexi_server, T},
     {list_to_atom("rexi_server_" ++ integer_to_list(erlang:phash2(node()))), T},
     {list_to_atom("rexi_server_" ++ atom_to_list(node())), T}].

cast(Dest, MFA) ->
    Ref = make_ref(),
    erlang:send(Dest, {'$gen_cast', {doit, {self(), Ref}, undefined, MFA}}),
    Ref.

stats(T) -> gen_server:call({rexi_server_mon, T}, stats, 5000).
stat(T, K) -> proplists:get_value(K, stats(T)).

%% ---- distribution ------------------------------------------------------------------

ping(L) ->
    T = ?T(L),
    check(fun() ->
        pong = net_adm:ping(T),
        Hidden = lists:member(T, nodes(hidden)),
        Visible = lists:member(T, nodes()),
        io:format("PING pong hidden=~p visible=~p~n", [Hidden, Visible]),
        case {Hidden, Visible} of {true, false} -> ok; X -> {not_hidden, X} end
    end).

expect_ping([Target, Want]) ->
    R = net_adm:ping(list_to_atom(Target)),
    io:format("PING ~p~n", [R]),
    case atom_to_list(R) of Want -> done(ok); _ -> done({fail, R}) end.

monitors(L) ->
    T = ?T(L),
    check(fun() ->
        pong = net_adm:ping(T),
        {Us, {'EXIT', {noproc, _}}} = timer:tc(fun() -> catch gen_server:call({no_such_name, T}, x, 5000) end),
        io:format("NOPROC after ~p us~n", [Us]),
        true = Us < 1000000,
        M1 = erlang:monitor(process, {rexi_server, T}),
        timeout = rx(300),
        ok = gen_server:call({rexi_server_mon, T}, {set_release, 3}),
        {'DOWN', M1, process, {rexi_server, T}, R1} = rx(2000),
        io:format("DOWN on unregister: ~p~n", [R1]),
        M2 = erlang:monitor(process, {rexi_server, T}),
        {'DOWN', M2, process, _, noproc} = rx(2000),
        ok = gen_server:call({rexi_server_mon, T}, {set_release, 1}),
        M3 = erlang:monitor(process, {rexi_server_mon, T}),
        timeout = rx(200),
        io:format("MONITORING~n"),
        {'DOWN', M3, process, _, R3} = rx(20000),
        io:format("DOWN on connection loss: ~p~n", [R3]),
        noconnection = R3,
        ok
    end).

wait_connected(L) ->
    T = ?T(L),
    Wait = fun W(N) ->
        case lists:member(T, nodes(hidden)) of
            true -> ok;
            false when N > 0 -> timer:sleep(100), W(N - 1);
            false -> not_connected
        end
    end,
    check(fun() ->
        ok = Wait(300),
        io:format("CONNECTED~n"),
        %% the connection carries casts both ways without a ping from this side
        Ref = cast({rexi_server, T}, {rexi_node, echo, [hi]}),
        {Ref, hi} = rx(5000),
        ok
    end).

idle(L) ->
    T = ?T(L),
    pong = net_adm:ping(T),
    io:format("CONNECTED~n"),
    timer:sleep(infinity).

big(L) ->
    T = ?T(L),
    check(fun() ->
        pong = net_adm:ping(T),
        Deep = lists:foldl(fun(I, A) -> {I, A} end, nil, lists:seq(1, 5000)),
        R1 = cast({rexi_server, T}, {rexi_node, echo, [Deep]}),
        {R1, Deep} = rx(20000),
        io:format("DEEP echoed~n"),
        Key2000 = lists:foldl(fun(I, A) -> {I, A} end, nil, lists:seq(1, 2000)),
        DeepKey = #{Key2000 => v, small => #{Key2000 => k}},
        RK = cast({rexi_server, T}, {rexi_node, echo, [DeepKey]}),
        {RK, DeepKey} = rx(20000),
        io:format("DEEP map key echoed~n"),
        Big = binary:copy(<<"0123456789">>, 10000000),
        {net_kernel, T} ! {junk, Big},
        R2 = cast({rexi_server, T}, {rexi_node, echo, [Big]}),
        {R2, Big} = rx(60000),
        io:format("BIG echoed~n"),
        pong = net_adm:ping(T),
        ok
    end).

%% Echo round trips for Secs seconds; every one must be answered.
traffic([Target, Secs]) ->
    T = list_to_atom(Target),
    pong = net_adm:ping(T),
    io:format("CONNECTED~n"),
    End = erlang:monotonic_time(millisecond) + list_to_integer(Secs) * 1000,
    Loop = fun Lp(N) ->
        case erlang:monotonic_time(millisecond) < End of
            false -> N;
            true ->
                Ref = cast({rexi_server, T}, {rexi_node, echo, [N]}),
                receive {Ref, N} -> Lp(N + 1) after 5000 -> {lost, N} end
        end
    end,
    case Loop(0) of
        N when is_integer(N), N > 0 -> io:format("ROUNDTRIPS ~p~n", [N]), done(ok);
        Other -> done({fail, Other})
    end.

%% ---- rexi shapes ---------------------------------------------------------------------

shapes(L) ->
    T = ?T(L),
    check(fun() ->
        pong = net_adm:ping(T),
        lists:foreach(fun(Dest) -> ok = shapes_via(Dest), io:format("SHAPES ok via ~p~n", [element(1, Dest)]) end, names(T)),
        ok
    end).

shapes_via(Dest) ->
    R1 = cast(Dest, {rexi_node, echo, [{a, [1, 2], <<"b">>}]}),
    {R1, {a, [1, 2], <<"b">>}} = rx(5000),
    %% legacy 3-tuple doit
    R0 = make_ref(),
    erlang:send(Dest, {'$gen_cast', {doit, {self(), R0}, {rexi_node, echo, [legacy]}}}),
    {R0, legacy} = rx(5000),
    R2 = cast(Dest, {rexi_node, sync, [question]}),
    {R2, {WPid, Tag}, question} = rx(5000),
    true = is_pid(WPid),
    gen_server:reply({WPid, Tag}, yes),
    {R2, {answered, yes}} = rx(5000),
    %% stream v1: never more than 10 rows unacked
    R3 = cast(Dest, {rexi_node, stream, [25, x]}),
    timer:sleep(300),
    First = drain_rows(R3, []),
    10 = length(First),
    [P ! {rexi_ack, 1} || {P, _} <- First],
    Rows = [Row || {_, Row} <- First] ++ collect_stream(R3, []),
    Expected = [{I, x} || I <- lists:seq(1, 25)] ++ [done],
    Expected = Rows,
    %% stream2: START
    R4 = cast(Dest, {rexi_node, stream2, [3, y]}),
    {R4, {W4, T4}, rexi_STREAM_INIT} = rx(5000),
    W4 ! {T4, rexi_STREAM_START},
    [{1, y}, {2, y}, {3, y}, done] = collect_stream(R4, []),
    %% stream2: CANCEL -> nothing more
    R5 = cast(Dest, {rexi_node, stream2, [3, z]}),
    {R5, {W5, T5}, rexi_STREAM_INIT} = rx(5000),
    W5 ! {T5, rexi_STREAM_CANCEL},
    timeout = rx(300),
    %% failures
    R6 = cast(Dest, {rexi_node, fail, [{unauthorized, <<"no">>}]}),
    {R6, {rexi_EXIT, {{unauthorized, <<"no">>}, Stack}}} = rx(5000),
    true = is_list(Stack),
    R7 = cast(Dest, {no_mod, no_fun, [1, 2]}),
    {R7, {rexi_EXIT, {undef, [{no_mod, no_fun, [1, 2], []}]}}} = rx(5000),
    %% kill: nothing follows
    R8 = cast(Dest, {rexi_node, sleep, [300]}),
    gen_server:cast(Dest, {kill, R8}),
    timeout = rx(600),
    %% kill_all
    R9 = cast(Dest, {rexi_node, sleep, [300]}),
    R10 = cast(Dest, {rexi_node, sleep, [300]}),
    gen_server:cast(Dest, {kill_all, [R9, R10]}),
    timeout = rx(600),
    %% a kill that arrives before its doit: the late job never runs
    R11 = make_ref(),
    gen_server:cast(Dest, {kill, R11}),
    erlang:send(Dest, {'$gen_cast', {doit, {self(), R11}, undefined, {rexi_node, echo, [late]}}}),
    timeout = rx(300),
    %% malformed MFA with a readable {Pid, Ref}: answered
    R12 = make_ref(),
    erlang:send(Dest, {'$gen_cast', {doit, {self(), R12}, undefined, not_an_mfa}}),
    {R12, {rexi_EXIT, {function_clause, []}}} = rx(5000),
    %% error ring
    ok = gen_server:call(Dest, {set_error_limit, 5}),
    R13 = cast(Dest, {rexi_node, fail, [ring]}),
    {R13, {rexi_EXIT, {ring, _}}} = rx(5000),
    {ok, [{error, _, {error, ring}, _, undefined, _} | _]} = gen_server:call(Dest, get_errors),
    {ok, {error, _, {error, ring}, _, _, _}} = gen_server:call(Dest, get_last_error),
    ignored = gen_server:call(Dest, something_else),
    ok = gen_server:call(Dest, {set_error_limit, 0}),
    ok.

%% The stream rows already queued, without acking them.
drain_rows(Ref, Acc) ->
    receive {Ref, Pid, Row} when is_pid(Pid) -> drain_rows(Ref, [{Pid, Row} | Acc])
    after 0 -> lists:reverse(Acc)
    end.

collect_stream(Ref, Acc) ->
    receive
        {Ref, Pid, Row} when is_pid(Pid) -> Pid ! {rexi_ack, 1}, collect_stream(Ref, [Row | Acc]);
        {Ref, Final} -> lists:reverse([Final | Acc])
    after 5000 -> lists:reverse([timeout | Acc])
    end.

%% A fresh connection whose very first message is a cast to this node's per-node name.
fresh_connect([Target, NStr]) ->
    T = list_to_atom(Target),
    N = list_to_integer(NStr),
    [_, PerHash, PerName] = names(T),
    Lost = lists:foldl(
        fun(I, Acc) ->
            erlang:disconnect_node(T),
            wait_gone(T, 100),
            Dest = case I rem 2 of 0 -> PerHash; 1 -> PerName end,
            Ref = cast(Dest, {rexi_node, echo, [I]}),
            receive {Ref, I} -> Acc after 5000 -> Acc + 1 end
        end, 0, lists:seq(1, N)),
    io:format("FRESH ~p casts, ~p lost~n", [N, Lost]),
    case Lost of 0 -> done(ok); _ -> done({fail, {lost, Lost}}) end.

wait_gone(_T, 0) -> ok;
wait_gone(T, K) ->
    case lists:member(T, nodes(connected)) of
        true -> timer:sleep(5), wait_gone(T, K - 1);
        false -> ok
    end.

%% Callers x PerCaller casts; 1 in 10 is a long sleep killed at once (must get nothing),
%% the rest are echoes (each must get exactly one reply).
storm([Target, CallersStr, PerStr]) ->
    T = list_to_atom(Target),
    pong = net_adm:ping(T),
    Callers = list_to_integer(CallersStr),
    Per = list_to_integer(PerStr),
    Parent = self(),
    Names = names(T),
    Pids = [spawn_link(fun() -> Parent ! {self(), storm_caller(Names, Per, C)} end) || C <- lists:seq(1, Callers)],
    Results = [receive {P, R} -> R end || P <- Pids],
    {Answered, Dups, Lost, KilledReplied, Killed} = lists:foldl(
        fun({A, D, L, K, KC}, {A0, D0, L0, K0, KC0}) -> {A + A0, D + D0, L + L0, K + K0, KC + KC0} end,
        {0, 0, 0, 0, 0}, Results),
    Running = wait_jobs_zero(T, 100),
    io:format("STORM casts=~p answered=~p duplicates=~p lost=~p killed=~p killed_but_replied=~p jobs_running=~p~n",
              [Callers * Per, Answered, Dups, Lost, Killed, KilledReplied, Running]),
    case {Dups, Lost, KilledReplied, Running} of
        {0, 0, 0, 0} -> done(ok);
        X -> done({fail, X})
    end.

storm_caller(Names, Per, Seed) ->
    rand:seed(exsss, {Seed, 7, 11}),
    Sent = lists:map(
        fun(I) ->
            Dest = lists:nth(1 + (I rem 3), Names),
            case rand:uniform(10) of
                1 ->
                    Ref = cast(Dest, {rexi_node, sleep, [60000]}),
                    gen_server:cast(Dest, {kill, Ref}),
                    {Ref, killed};
                _ ->
                    {cast(Dest, {rexi_node, echo, [I]}), I}
            end
        end, lists:seq(1, Per)),
    Want = maps:from_list([{R, V} || {R, V} <- Sent, V =/= killed]),
    KilledRefs = maps:from_list([{R, true} || {R, killed} <- Sent]),
    storm_collect(Want, KilledRefs, #{}, 0, 0).

storm_collect(Want, Killed, Seen, Dups, KR) ->
    case map_size(Want) of
        0 ->
            %% give late or duplicate messages a moment to show up
            receive {R, _} -> storm_collect(Want, Killed, Seen, Dups + maps:get(R, Seen, 0), KR + case maps:is_key(R, Killed) of true -> 1; false -> 0 end)
            after 500 -> {map_size(Seen), Dups, 0, KR, map_size(Killed)}
            end;
        _ ->
            receive
                {R, V} ->
                    case maps:take(R, Want) of
                        {V, W2} -> storm_collect(W2, Killed, Seen#{R => 1}, Dups, KR);
                        _ ->
                            case maps:is_key(R, Killed) of
                                true -> storm_collect(Want, Killed, Seen, Dups, KR + 1);
                                false -> storm_collect(Want, Killed, Seen, Dups + 1, KR)
                            end
                    end
            after 20000 -> {map_size(Seen), Dups, map_size(Want), KR, map_size(Killed)}
            end
    end.

wait_jobs_zero(T, 0) -> stat(T, jobs_running);
wait_jobs_zero(T, K) ->
    case stat(T, jobs_running) of
        0 -> 0;
        _ -> timer:sleep(100), wait_jobs_zero(T, K - 1)
    end.

panic(L) ->
    T = ?T(L),
    check(fun() ->
        pong = net_adm:ping(T),
        R = cast({rexi_server, T}, {rexi_node, panic, [<<"boom">>]}),
        {R, {rexi_EXIT, {{rust_panic, Msg}, Stack}}} = rx(5000),
        io:format("PANIC reported: ~p ~p~n", [Msg, Stack]),
        true = is_list(Stack),
        %% the daemon still serves
        R2 = cast({rexi_server, T}, {rexi_node, echo, [after_panic]}),
        {R2, after_panic} = rx(5000),
        ok
    end).

never_returns(L) ->
    T = ?T(L),
    check(fun() ->
        pong = net_adm:ping(T),
        Before = stat(T, jobs_running),
        R = cast({rexi_server, T}, {rexi_node, sleep, [250000]}),
        timer:sleep(200),
        true = stat(T, jobs_running) =:= Before + 1,
        gen_server:cast({rexi_server, T}, {kill, R}),
        timeout = rx(500),
        Before = wait_jobs_zero(T, 50) + Before,
        ok
    end).

cast_and_die(L) ->
    T = ?T(L),
    pong = net_adm:ping(T),
    _ = cast({rexi_server, T}, {rexi_node, sleep, [250000]}),
    _ = cast({rexi_server, T}, {rexi_node, sleep, [250000]}),
    timer:sleep(300),
    io:format("RUNNING ~p~n", [stat(T, jobs_running)]),
    done(ok).

await_cancelled(L) ->
    T = ?T(L),
    check(fun() ->
        pong = net_adm:ping(T),
        0 = wait_jobs_zero(T, 50),
        C = stat(T, jobs_cancelled_nodedown),
        io:format("CANCELLED ~p~n", [C]),
        true = C >= 2,
        ok
    end).

%% Release 1 -> 2 -> 3 at runtime while per-node callers cast continuously: none of their
%% casts is lost; casts to the singleton are answered until release 3 and then dropped and
%% counted.
release_switch(L) ->
    T = ?T(L),
    pong = net_adm:ping(T),
    [Single, PerHash, PerName] = names(T),
    Parent = self(),
    Stop = make_ref(),
    Workers = [spawn_link(fun() -> Parent ! {self(), steady(Dest, Stop, 0, 0)} end) || Dest <- [PerHash, PerName]],
    ok = gen_server:call({rexi_server_mon, T}, {set_release, 1}),
    A1 = single_round(Single, 200),
    ok = gen_server:call({rexi_server_mon, T}, {set_release, 2}),
    A2 = single_round(Single, 200),
    Dropped0 = stat(T, dropped_retired),
    ok = gen_server:call({rexi_server_mon, T}, {set_release, 3}),
    A3 = single_round(Single, 200),
    Dropped = stat(T, dropped_retired) - Dropped0,
    [W ! Stop || W <- Workers],
    Steady = [receive {W, R} -> R end || W <- Workers],
    ok = gen_server:call({rexi_server_mon, T}, {set_release, 1}),
    io:format("SWITCH singleton answered r1=~p/200 r2=~p/200 r3=~p/200 dropped_counted=~p per_node(sent,lost)=~p~n",
              [A1, A2, A3, Dropped, Steady]),
    case {A1, A2, A3, Dropped, [Lost || {_, Lost} <- Steady]} of
        {200, 200, 0, 200, [0, 0]} -> done(ok);
        X -> done({fail, X})
    end.

single_round(Dest, N) ->
    Refs = [cast(Dest, {rexi_node, echo, [I]}) || I <- lists:seq(1, N)],
    count_replies(maps:from_list([{R, 1} || R <- Refs]), 0).

count_replies(M, C) when map_size(M) =:= 0 -> C;
count_replies(M, C) ->
    receive {R, _} when is_map_key(R, M) -> count_replies(maps:remove(R, M), C + 1)
    after 1000 -> C
    end.

steady(Dest, Stop, Sent, Lost) ->
    receive Stop -> {Sent, Lost}
    after 0 ->
        Ref = cast(Dest, {rexi_node, echo, [Sent]}),
        receive {Ref, Sent} -> steady(Dest, Stop, Sent + 1, Lost)
        after 5000 -> steady(Dest, Stop, Sent + 1, Lost + 1)
        end
    end.

%% call_mfa Target Module Function ArgsTerm WantTerm: one cast, and its reply must equal Want.
call_mfa([Target, Mod, Fun, ArgsStr, WantStr]) ->
    T = list_to_atom(Target),
    check(fun() ->
        pong = net_adm:ping(T),
        Args = parse(ArgsStr),
        Want = parse(WantStr),
        R = cast({rexi_server, T}, {list_to_atom(Mod), list_to_atom(Fun), Args}),
        Got = rx(5000),
        io:format("REPLY ~p~n", [Got]),
        case Got of {R, Want} -> ok; _ -> {unexpected, Got} end
    end).

parse(S) ->
    {ok, Toks, _} = erl_scan:string(S ++ "."),
    {ok, Term} = erl_parse:parse_term(Toks),
    Term.

%% Links to a job's pid: unlink is acknowledged (UNLINK_ID_ACK), a link to a pid that is gone
%% gives EXIT noproc, and a linked job that ends abnormally sends its exit signal.
links(L) ->
    T = ?T(L),
    check(fun() ->
        pong = net_adm:ping(T),
        process_flag(trap_exit, true),
        R = cast({rexi_server, T}, {rexi_node, sync, [q]}),
        {R, {W, Tag}, q} = rx(5000),
        true = link(W),
        true = unlink(W),
        true = link(W),
        W ! {Tag, done},
        {R, {answered, done}} = rx(5000),
        %% the job ended normally: a normal exit signal, which trap_exit shows
        {'EXIT', W, normal} = rx(5000),
        true = link(W),
        {'EXIT', W, noproc} = rx(5000),
        %% a linked job killed through rexi: exit signal 'killed'
        R2 = cast({rexi_server, T}, {rexi_node, sync, [q2]}),
        {R2, {W2, _}, q2} = rx(5000),
        true = link(W2),
        gen_server:cast({rexi_server, T}, {kill, R2}),
        {'EXIT', W2, killed} = rx(5000),
        io:format("LINKS ok~n"),
        ok
    end).

%% With a seq_trace token set, the BEAM sends REG_SEND_TT / SEND_TT.
traced(L) ->
    T = ?T(L),
    check(fun() ->
        pong = net_adm:ping(T),
        seq_trace:set_token(label, 17),
        R = cast({rexi_server, T}, {rexi_node, sync, [traced]}),
        {R, {W, Tag}, traced} = rx(5000),
        W ! {Tag, yes},
        {R, {answered, yes}} = rx(5000),
        seq_trace:set_token([]),
        ok
    end).

%% erlang:phash2/1,2 and erlang:node/0 served by rexi-node agree with this BEAM.
phash2_served(L) ->
    T = ?T(L),
    check(fun() ->
        pong = net_adm:ping(T),
        Terms = [node(), 'hôte@ñu', -1, 1 bsl 70, 0.0, -0.0, [1, 2 | x], "abc", <<1:3>>,
                 #{a => [1], {b} => <<"c">>}, {self(), make_ref()}, fun lists:map/2,
                 lists:foldl(fun(I, A) -> [I | A] end, [], lists:seq(1, 300))],
        Bad = [{X, Got} || X <- Terms,
                           Got <- [rpc_cast(T, erlang, phash2, [X]), rpc_cast(T, erlang, phash2, [X, 1 bsl 32])],
                           not lists:member(Got, [erlang:phash2(X), erlang:phash2(X, 1 bsl 32)])],
        [] = Bad,
        T = rpc_cast(T, erlang, node, []),
        {rexi_EXIT, {badarg, _}} = rpc_cast(T, erlang, phash2, [x, 0]),
        io:format("PHASH2 ~p terms agree~n", [length(Terms)]),
        ok
    end).

rpc_cast(T, M, F, A) ->
    R = cast({rexi_server, T}, {M, F, A}),
    receive {R, V} -> V after 5000 -> timeout end.

%% With --max-jobs 5: the sixth concurrent job is refused at once with overloaded.
overload(L) ->
    T = ?T(L),
    check(fun() ->
        pong = net_adm:ping(T),
        Refs = [cast({rexi_server, T}, {rexi_node, sleep, [2000]}) || _ <- lists:seq(1, 5)],
        R6 = cast({rexi_server, T}, {rexi_node, echo, [six]}),
        {R6, {rexi_EXIT, {overloaded, []}}} = rx(1000),
        1 = stat(T, overloaded),
        [receive {R, {slept, 2000}} -> ok after 5000 -> error(lost) end || R <- Refs],
        R7 = cast({rexi_server, T}, {rexi_node, echo, [seven]}),
        {R7, seven} = rx(1000),
        ok
    end).

%% With --worker-timeout 1: an unanswered sync_reply returns timeout to the job, an
%% unanswered stream2 INIT and unacked stream rows end the job with {timeout, Stack}.
worker_timeouts(L) ->
    T = ?T(L),
    check(fun() ->
        pong = net_adm:ping(T),
        R1 = cast({rexi_server, T}, {rexi_node, sync, [q]}),
        {R1, {_, _}, q} = rx(2000),
        {R1, {answered, timeout}} = rx(3000),
        R2 = cast({rexi_server, T}, {rexi_node, stream2, [3, x]}),
        {R2, {_, _}, rexi_STREAM_INIT} = rx(2000),
        {R2, {rexi_EXIT, {timeout, S2}}} = rx(3000),
        true = is_list(S2),
        R3 = cast({rexi_server, T}, {rexi_node, stream, [20, x]}),
        Rows = [receive {R3, _, Row} -> Row after 2000 -> missing end || _ <- lists:seq(1, 10)],
        10 = length([X || X <- Rows, X =/= missing]),
        {R3, {rexi_EXIT, {timeout, _}}} = rx(3000),
        ok
    end).

%% Dials Target every 20 ms until connected (the daemon dials us too, with --connect),
%% then checks that one working connection stays up.
dial_until_up(L) ->
    T = ?T(L),
    check(fun() ->
        Up = fun U(0) -> false;
                 U(N) -> case net_kernel:connect_node(T) of
                             true -> true;
                             _ -> timer:sleep(20), U(N - 1)
                         end
             end,
        true = Up(500),
        io:format("CONNECTED~n"),
        R = cast({rexi_server, T}, {rexi_node, echo, [sim]}),
        {R, sim} = rx(5000),
        timer:sleep(1500),
        [T] = [N || N <- nodes(hidden), N =:= T],
        R2 = cast({rexi_server, T}, {rexi_node, echo, [still]}),
        {R2, still} = rx(5000),
        ok
    end).
