%% Probes run by the Rust integration tests (tests/*.rs) on real erl nodes against a
%% running rexi-node. Each entry point prints what it saw, then PASS (exit 0) or
%% FAIL <why> (exit 1). Started with: erl -run rn_probe Function Arg...
-module(rn_probe).
-export([ping/1, expect_ping/1, monitors/1, wait_connected/1, idle/1, big/1, traffic/1,
         shapes/1, fresh_connect/1, storm/1, panic/1, never_returns/1, cast_and_die/1,
         await_cancelled/1, release_switch/1, call_mfa/1, links/1, traced/1, phash2_served/1,
         overload/1, worker_timeouts/1, dial_while_dialed/1, frame_cap/1, await_idle/1,
         stream_limits/1, error_ring/1, unserved_name/1]).

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

%% Polls until stat K of T equals Want (up to 10 s); its last value.
wait_stat(T, K, Want) -> wait_stat(T, K, Want, 200).
wait_stat(T, K, _Want, 0) -> stat(T, K);
wait_stat(T, K, Want, N) ->
    case stat(T, K) of
        Want -> Want;
        _ -> timer:sleep(50), wait_stat(T, K, Want, N - 1)
    end.

%% Messages for Ref already in the mailbox, taken out. Called once an event
%% proved that anything the daemon would send for Ref has arrived.
taken(Ref) ->
    receive {Ref, M} -> [M | taken(Ref)]; {Ref, P, M} -> [{P, M} | taken(Ref)]
    after 0 -> []
    end.

%% A sleep job cast after others and due after them: once its reply is here, the
%% reply of any job due earlier would be here too (the daemon's timers fire in
%% deadline order, and its replies share the one connection).
marker(Dest, Ms) ->
    R = cast(Dest, {rexi_node, sleep, [Ms]}),
    {R, {slept, Ms}} = rx_ref(R, 5000 + Ms),
    ok.

%% The next message for Ref (others stay queued).
rx_ref(Ref, Timeout) ->
    receive {Ref, M} -> {Ref, M}; {Ref, P, M} -> {Ref, P, M} after Timeout -> timeout end.

%% Waits for W's 'DOWN' (the daemon sends W's messages before it, on the one
%% connection): W's exit reason.
ended(W) ->
    Mon = erlang:monitor(process, W),
    receive {'DOWN', Mon, process, _, Why} -> Why after 5000 -> error({not_ended, W}) end.

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
        %% a name that is not there answers 'DOWN' at once, before this echo
        Echo = cast({rexi_server, T}, {rexi_node, echo, [up]}),
        {Echo, up} = rx(5000),
        ok = gen_server:call({rexi_server_mon, T}, {set_release, 3}),
        {'DOWN', M1, process, {rexi_server, T}, R1} = rx(2000),
        io:format("DOWN on unregister: ~p~n", [R1]),
        M2 = erlang:monitor(process, {rexi_server, T}),
        {'DOWN', M2, process, _, noproc} = rx(2000),
        ok = gen_server:call({rexi_server_mon, T}, {set_release, 1}),
        M3 = erlang:monitor(process, {rexi_server_mon, T}),
        ok = gen_server:call({rexi_server_mon, T}, status),
        receive {'DOWN', M3, _, _, Early} -> error({down, Early}) after 0 -> ok end,
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
    First = rows(R3, 10),
    %% a worker waiting for acks sends nothing that could mark the wait: the one
    %% check here that watches for something not to happen
    receive {R3, _, Extra} -> error({row_past_the_limit, Extra}) after 300 -> ok end,
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
    _ = ended(W5),
    [] = taken(R5),
    %% failures
    R6 = cast(Dest, {rexi_node, fail, [{unauthorized, <<"no">>}]}),
    {R6, {rexi_EXIT, {{unauthorized, <<"no">>}, Stack}}} = rx(5000),
    true = is_list(Stack),
    R7 = cast(Dest, {no_mod, no_fun, [1, 2]}),
    {R7, {rexi_EXIT, {undef, [{no_mod, no_fun, [1, 2], []}]}}} = rx(5000),
    %% kill: nothing follows (the job was due at 300 ms, the marker at 600)
    R8 = cast(Dest, {rexi_node, sleep, [300]}),
    gen_server:cast(Dest, {kill, R8}),
    ok = marker(Dest, 600),
    [] = taken(R8),
    %% kill_all
    R9 = cast(Dest, {rexi_node, sleep, [300]}),
    R10 = cast(Dest, {rexi_node, sleep, [300]}),
    gen_server:cast(Dest, {kill_all, [R9, R10]}),
    ok = marker(Dest, 600),
    [] = taken(R9) ++ taken(R10),
    %% a kill that arrives before its doit: the late job never runs (an echo is
    %% answered as its doit is read, so the next echo's reply marks it)
    R11 = make_ref(),
    gen_server:cast(Dest, {kill, R11}),
    erlang:send(Dest, {'$gen_cast', {doit, {self(), R11}, undefined, {rexi_node, echo, [late]}}}),
    R11b = cast(Dest, {rexi_node, echo, [after_late]}),
    {R11b, after_late} = rx_ref(R11b, 5000),
    [] = taken(R11),
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

%% Exactly N stream rows for Ref, without acking them, each within 5 s.
rows(_Ref, 0) -> [];
rows(Ref, N) ->
    receive {Ref, Pid, Row} when is_pid(Pid) -> [{Pid, Row} | rows(Ref, N - 1)]
    after 5000 -> error({missing_rows, N})
    end.

collect_stream(Ref, Acc) ->
    receive
        {Ref, Pid, Row} when is_pid(Pid) -> Pid ! {rexi_ack, 1}, collect_stream(Ref, [Row | Acc]);
        {Ref, Final} -> lists:reverse([Final | Acc])
    after 5000 -> lists:reverse([timeout | Acc])
    end.

%% Without acks a stream2 job sends exactly Want2 rows and then waits; one
%% {rexi_ack, 1} lets exactly one more through. The same for stream (v1) and Want1.
stream_limits([Target, Want2, Want1]) ->
    T = list_to_atom(Target),
    {W2, W1} = {list_to_integer(Want2), list_to_integer(Want1)},
    check(fun() ->
        pong = net_adm:ping(T),
        R2 = cast({rexi_server, T}, {rexi_node, stream2, [W2 + 5, y]}),
        {R2, {P2, T2}, rexi_STREAM_INIT} = rx(5000),
        P2 ! {T2, rexi_STREAM_START},
        ok = limit_then_one(R2, W2, y),
        R1 = cast({rexi_server, T}, {rexi_node, stream, [W1 + 5, x]}),
        ok = limit_then_one(R1, W1, x),
        io:format("STREAM LIMITS stream2 ~p stream ~p~n", [W2, W1]),
        ok
    end).

limit_then_one(Ref, Limit, Tag) ->
    First = rows(Ref, Limit),
    Want = [{I, Tag} || I <- lists:seq(1, Limit)],
    Want = [Row || {_, Row} <- First],
    %% a worker waiting for an ack sends nothing that could mark the wait: watched
    %% for a while, as in shapes_via
    none = no_row(Ref),
    {P, _} = hd(First),
    P ! {rexi_ack, 1},
    [{P, {Next, Tag}}] = rows(Ref, 1),
    Next = Limit + 1,
    none = no_row(Ref),
    ok.

no_row(Ref) ->
    receive {Ref, _, Extra} -> {row_past_the_limit, Extra} after 500 -> none end.

%% The error ring records {M, F, Args} as rexi does; a huge argument is kept as a
%% bounded summary, never whole.
error_ring(L) ->
    T = ?T(L),
    S = {rexi_server, T},
    check(fun() ->
        pong = net_adm:ping(T),
        ok = gen_server:call(S, {set_error_limit, 5}),
        R1 = cast(S, {rexi_node, fail, [ring]}),
        {R1, {rexi_EXIT, {ring, _}}} = rx(5000),
        {ok, {error, _, {error, ring}, {rexi_node, fail, [ring]}, undefined, _}} =
            gen_server:call(S, get_last_error),
        R2 = cast(S, {no_mod, no_fun, [1, 2]}),
        {R2, {rexi_EXIT, {undef, _}}} = rx(5000),
        {ok, [{error, _, {error, undef}, {no_mod, no_fun, [1, 2]}, _, _},
              {error, _, {error, ring}, {rexi_node, fail, [ring]}, _, _}]} =
            gen_server:call(S, get_errors),
        %% 100,000 integers and a 1 MB binary in the arguments
        Big = {big, lists:seq(1, 100000)},
        Bin = binary:copy(<<"x">>, 1000000),
        R3 = cast(S, {rexi_node, fail, [Big]}),
        {R3, {rexi_EXIT, {Big, _}}} = rx(5000),
        {ok, E3 = {error, _, _, {rexi_node, fail, [{big, Kept}]}, _, _}} =
            gen_server:call(S, get_last_error),
        true = length(Kept) < 256,
        '...' = lists:last(Kept),
        [1, 2, 3] = lists:sublist(Kept, 3),
        R4 = cast(S, {no_mod, no_fun, [Bin]}),
        {R4, {rexi_EXIT, {undef, [{no_mod, no_fun, [Bin], []}]}}} = rx(5000),
        {ok, E4 = {error, _, _, {no_mod, no_fun, [KeptBin]}, _, _}} =
            gen_server:call(S, get_last_error),
        true = KeptBin =:= binary:part(Bin, 0, 1024),
        Sizes = [byte_size(term_to_binary(E)) || E <- [E3, E4]],
        io:format("ERROR RING entry sizes ~p~n", [Sizes]),
        true = lists:all(fun(Sz) -> Sz < 20000 end, Sizes),
        ok = gen_server:call(S, {set_error_limit, 0}),
        ok
    end).

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
    %% jobs_running is daemon-wide and other callers may still be casting: the
    %% test checks it once every caller is done (await_idle)
    io:format("STORM casts=~p answered=~p duplicates=~p lost=~p killed=~p killed_but_replied=~p~n",
              [Callers * Per, Answered, Dups, Lost, Killed, KilledReplied]),
    case {Dups, Lost, KilledReplied} of
        {0, 0, 0} -> done(ok);
        X -> done({fail, X})
    end.

%% No job left running on Target (within 10 s).
await_idle(L) ->
    T = ?T(L),
    check(fun() ->
        pong = net_adm:ping(T),
        Running = wait_stat(T, jobs_running, 0),
        io:format("IDLE jobs_running=~p~n", [Running]),
        0 = Running,
        ok
    end).

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
    storm_collect(Want, KilledRefs, #{}, 0, 0, Names).

storm_collect(Want, Killed, Seen, Dups, KR, Names) ->
    case map_size(Want) of
        0 ->
            %% Every echo answered. A duplicate would be sent as its doit is read,
            %% like the original: once a marker echo to each name is answered, all
            %% duplicates are here; count every message left for our refs.
            Markers = [cast(Dest, {rexi_node, echo, [marker]}) || Dest <- Names],
            [{M, marker} = rx_ref(M, 20000) || M <- Markers],
            Left = [R || R <- maps:keys(Seen) ++ maps:keys(Killed), _ <- taken(R)],
            Dups2 = Dups + length([R || R <- Left, maps:is_key(R, Seen)]),
            KR2 = KR + length([R || R <- Left, maps:is_key(R, Killed)]),
            {map_size(Seen), Dups2, 0, KR2, map_size(Killed)};
        _ ->
            receive
                {R, V} ->
                    case maps:take(R, Want) of
                        {V, W2} -> storm_collect(W2, Killed, Seen#{R => 1}, Dups, KR, Names);
                        _ ->
                            case maps:is_key(R, Killed) of
                                true -> storm_collect(Want, Killed, Seen, Dups, KR + 1, Names);
                                false -> storm_collect(Want, Killed, Seen, Dups + 1, KR, Names)
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
        Running = Before + 1,
        Running = wait_stat(T, jobs_running, Running),
        gen_server:cast({rexi_server, T}, {kill, R}),
        Before = wait_stat(T, jobs_running, Before),
        %% the kill and this echo are read in order: nothing for R came before it
        E = cast({rexi_server, T}, {rexi_node, echo, [after_kill]}),
        {E, after_kill} = rx_ref(E, 5000),
        [] = taken(R),
        ok
    end).

cast_and_die(L) ->
    T = ?T(L),
    pong = net_adm:ping(T),
    _ = cast({rexi_server, T}, {rexi_node, sleep, [250000]}),
    _ = cast({rexi_server, T}, {rexi_node, sleep, [250000]}),
    io:format("RUNNING ~p~n", [wait_stat(T, jobs_running, 2)]),
    done(ok).

await_cancelled(L) ->
    T = ?T(L),
    check(fun() ->
        pong = net_adm:ping(T),
        0 = wait_jobs_zero(T, 100),
        C = stat(T, jobs_cancelled_nodedown),
        io:format("CANCELLED ~p~n", [C]),
        2 = C,
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
    A1 = single_round(Single, PerHash, 200),
    ok = gen_server:call({rexi_server_mon, T}, {set_release, 2}),
    A2 = single_round(Single, PerHash, 200),
    Dropped0 = stat(T, dropped_retired),
    ok = gen_server:call({rexi_server_mon, T}, {set_release, 3}),
    A3 = single_round(Single, PerHash, 200),
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

%% 50 casts to a rexi_server_<N> the target does not serve (N hashed from a node that is
%% not connected), then an echo through our own per-node name: no cast is answered, and
%% all 50 are counted as dropped by the time the echo's reply is here (one connection's
%% messages are handled in order).
unserved_name(L) ->
    T = ?T(L),
    pong = net_adm:ping(T),
    [_Single, PerHash, _PerName] = names(T),
    Name = list_to_atom("rexi_server_" ++ integer_to_list(erlang:phash2('nobody@127.0.0.9'))),
    Before = stat(T, dropped_unserved),
    Refs = [cast({Name, T}, {rexi_node, echo, [I]}) || I <- lists:seq(1, 50)],
    M = cast(PerHash, {rexi_node, echo, [marker]}),
    {M, marker} = rx_ref(M, 10000),
    Answered = lists:sum([length(taken(R)) || R <- Refs]),
    Counted = stat(T, dropped_unserved) - Before,
    io:format("UNSERVED ~s answered=~p dropped_counted=~p~n", [Name, Answered, Counted]),
    case {Answered, Counted} of
        {0, 50} -> done(ok);
        X -> done({fail, X})
    end.

%% N echoes to Dest, then one to Marker (a name that answers at every release):
%% echoes are answered (or dropped) as they are read, in order, so once the
%% marker's reply is here every reply to the N is too; count them, and any
%% duplicate fails.
single_round(Dest, Marker, N) ->
    Refs = [cast(Dest, {rexi_node, echo, [I]}) || I <- lists:seq(1, N)],
    M = cast(Marker, {rexi_node, echo, [marker]}),
    {M, marker} = rx_ref(M, 10000),
    Counts = [length(taken(R)) || R <- Refs],
    [] = [C || C <- Counts, C > 1],
    lists:sum(Counts).

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
        Ranges = [1, 2, 7, 1000, 1 bsl 16, 1 bsl 27, (1 bsl 32) - 1, 1 bsl 32],
        %% each answer against this BEAM's own value for the same call
        Calls = [{X, []} || X <- Terms] ++ [{X, [R]} || X <- Terms, R <- Ranges],
        Bad = [{X, Range, {want, Want}, {got, Got}}
               || {X, Range} <- Calls,
                  Want <- [apply(erlang, phash2, [X | Range])],
                  Got <- [rpc_cast(T, erlang, phash2, [X | Range])],
                  Got =/= Want],
        [] = Bad,
        T = rpc_cast(T, erlang, node, []),
        {rexi_EXIT, {badarg, _}} = rpc_cast(T, erlang, phash2, [x, 0]),
        {rexi_EXIT, {badarg, _}} = rpc_cast(T, erlang, phash2, [x, (1 bsl 32) + 1]),
        io:format("PHASH2 ~p terms x (phash2/1 and ~p ranges of phash2/2) agree~n",
                  [length(Terms), length(Ranges)]),
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
        {R6, {rexi_EXIT, {overloaded, []}}} = rx(5000),
        1 = stat(T, overloaded),
        [receive {R, {slept, 2000}} -> ok after 5000 -> error(lost) end || R <- Refs],
        R7 = cast({rexi_server, T}, {rexi_node, echo, [seven]}),
        {R7, seven} = rx(5000),
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

%% Both nodes dial each other at the same time, made certain rather than left to
%% timing. This node's dist acceptor is suspended, so the daemon (started with
%% --connect to this node) dials and then waits in the handshake, its connection
%% sitting in this node's listen backlog; only then does this node dial the
%% daemon, which so receives a connection from a node it is dialing itself and
%% must pick one of the two (the greater node name's attempt wins). The acceptor
%% is resumed once the test saw the daemon log its decision and created Go (a
%% file): a BEAM whose attempt lost waits for the other one, which needs the
%% acceptor. Then: connected, casts answered, the losing attempt gone, and no
%% nodedown at any point. The node then stays up (printing ONE CONNECTION), for
%% the test to read the daemon's log before it ends the node.
dial_while_dialed([Target, Go]) ->
    T = list_to_atom(Target),
    try
        [TAlive, _] = string:split(Target, "@"),
        [MyAlive, _] = string:split(atom_to_list(node()), "@"),
        {port, MyPort, _} = erl_epmd:port_please(MyAlive, {127, 0, 0, 1}),
        Acceptor = acceptor(),
        true = erlang:suspend_process(Acceptor),
        io:format("ACCEPTOR SUSPENDED~n"),
        %% the daemon's attempt: an established connection to our listen port
        ok = wait_for(fun() -> length(conns(local, MyPort)) >= 1 end, 30000),
        Self = self(),
        spawn_link(fun() -> Self ! {dialed, net_kernel:connect_node(T)} end),
        ok = wait_for(fun() -> filelib:is_file(Go) end, 30000),
        true = erlang:resume_process(Acceptor),
        Won = receive {dialed, W} -> W after 30000 -> error(connect_node_hangs) end,
        io:format("SIMULTANEOUS connect_node=~p~n", [Won]),
        ok = wait_for(fun() -> lists:member(T, nodes(hidden)) end, 30000),
        monitor_node(T, true),
        R = cast({rexi_server, T}, {rexi_node, echo, [sim]}),
        {R, sim} = rx_ref(R, 5000),
        %% the losing attempt ends: one TCP connection between the two is left
        {port, TPort, _} = erl_epmd:port_please(TAlive, {127, 0, 0, 1}),
        Both = fun() -> conns(local, MyPort) ++ conns(remote, TPort) end,
        ok = wait_for(fun() -> length(Both()) =:= 1 end, 20000),
        R2 = cast({rexi_server, T}, {rexi_node, echo, [still]}),
        {R2, still} = rx_ref(R2, 5000),
        [T] = [N || N <- nodes(hidden), N =:= T],
        receive {nodedown, T} -> error(nodedown) after 0 -> ok end,
        io:format("ONE CONNECTION~n"),
        receive {nodedown, T} -> done({fail, nodedown}) end
    catch Class:Reason:Stack -> done({fail, {Class, Reason, Stack}})
    end.

%% The dist acceptor of this node (inet_tcp_dist's accept loop, linked to net_kernel).
acceptor() ->
    {links, Links} = process_info(whereis(net_kernel), links),
    [A] = [P || P <- Links, is_pid(P),
                element(2, process_info(P, initial_call)) =:= {inet_tcp_dist, accept_loop, 3}],
    A.

%% Established TCP connections (from /proc/net/tcp) whose local or remote port is Port.
conns(Side, Port) ->
    {ok, Text} = file:read_file("/proc/net/tcp"),
    [_ | Lines] = string:split(binary_to_list(Text), "\n", all),
    [L || L <- Lines,
          [_, Local, Remote, "01" | _] <- [string:lexemes(L, " ")],
          port_of(case Side of local -> Local; remote -> Remote end) =:= Port].

port_of(Addr) ->
    [_, Hex] = string:split(Addr, ":"),
    list_to_integer(Hex, 16).

wait_for(F, Ms) when Ms =< 0 -> case F() of true -> ok; false -> timeout end;
wait_for(F, Ms) ->
    case F() of
        true -> ok;
        false -> timer:sleep(20), wait_for(F, Ms - 20)
    end.

%% With --max-frame 1000000: a 2 MB cast closes this node's connection (nodedown,
%% no reply), and a new connection is served.
frame_cap(L) ->
    T = ?T(L),
    check(fun() ->
        pong = net_adm:ping(T),
        monitor_node(T, true),
        R = cast({rexi_server, T}, {rexi_node, echo, [binary:copy(<<"x">>, 2000000)]}),
        receive {nodedown, T} -> ok after 30000 -> error(no_nodedown) end,
        [] = taken(R),
        io:format("FRAMECAP nodedown, no reply~n"),
        pong = net_adm:ping(T),
        R2 = cast({rexi_server, T}, {rexi_node, echo, [small]}),
        {R2, small} = rx_ref(R2, 5000),
        ok
    end).
