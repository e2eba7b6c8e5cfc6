%% Probes for tests/visible.rs: rexi-node as a visible node (global, nodes()), erpc and
%% rpc against it beside a BEAM node, and replies to callers on nodes it is not connected
%% to. Each entry point prints what it saw, then PASS (exit 0) or FAIL <why> (exit 1).
-module(rn_visible).
-export([stay/0, global_probe/1, rpc_probe/1, relay_probe/1, relay/2]).

done(ok) -> io:format("PASS~n"), halt(0);
done({fail, Why}) -> io:format("FAIL ~p~n", [Why]), halt(1).

check(Fun) ->
    try Fun() of
        ok -> done(ok);
        Other -> done({fail, Other})
    catch C:R:S -> done({fail, {C, R, S}})
    end.

atoms(L) -> [list_to_atom(A) || A <- L].

%% A node that only stays up (a BEAM peer or target for the probes).
stay() -> io:format("UP~n").

%% ---- visible: nodes(), global --------------------------------------------------------

global_probe(L) ->
    [D, A] = atoms(L),
    check(fun() ->
        ok = net_kernel:monitor_nodes(true),
        pong = net_adm:ping(A),
        pong = net_adm:ping(D),
        true = lists:member(D, nodes()),
        false = lists:member(D, nodes(hidden)),
        pong = erpc:call(A, net_adm, ping, [D]),
        true = lists:member(D, erpc:call(A, erlang, nodes, [])),
        %% global on both BEAM nodes asked rexi-node to sync; its in_sync ends that
        {Tb, ok} = timer:tc(global, sync, []),
        {Ta, ok} = erpc:call(A, timer, tc, [global, sync, []]),
        io:format("SYNC here ~p us, on ~p ~p us~n", [Tb, A, Ta]),
        true = Tb < 1000000,
        true = Ta < 1000000,
        %% global names and locks still work across the BEAM nodes
        yes = global:register_name(rn_visible_name, self()),
        Me = self(),
        Me = erpc:call(A, global, whereis_name, [rn_visible_name]),
        {Tt, done} = timer:tc(global, trans, [{rn_visible_lock, self()}, fun() -> done end]),
        io:format("TRANS ~p us~n", [Tt]),
        true = Tt < 1000000,
        %% rexi-node never registers global_name_server: a monitor gets noproc at once
        Mon = erlang:monitor(process, {global_name_server, D}),
        noproc = receive {'DOWN', Mon, process, _, Why} -> Why after 1000 -> no_down end,
        %% and a second sync after all that is still immediate
        {Tb2, ok} = timer:tc(global, sync, []),
        true = Tb2 < 1000000,
        receive {nodedown, N} -> {nodedown, N} after 0 -> ok end
    end).

%% ---- erpc and rpc, rexi-node (D) beside a BEAM node (T) ---------------------------------

caught(F) ->
    try F() of V -> {value, V} catch C:R -> {C, R} end.

down(M, P) ->
    receive {'DOWN', M, process, P, Why} -> Why after 5000 -> no_down end.

rpc_probe(L) ->
    [D, T] = atoms(L),
    check(fun() ->
        pong = net_adm:ping(D),
        pong = net_adm:ping(T),
        Term = {a, [1, 2, 3], <<"bin">>, 1.5, #{k => v}},
        %% a registered MFA gives its value, the BEAM's value for the same function
        H = erpc:call(T, erlang, phash2, [Term]),
        H = erpc:call(D, erlang, phash2, [Term]),
        H = rpc:call(D, erlang, phash2, [Term]),
        H = rpc:call(D, erlang, phash2, [Term], 5000),
        D = erpc:call(D, erlang, node, []),
        hello = erpc:call(D, rexi_node, echo, [hello]),
        %% an unknown MFA: what a BEAM node gives, for every caller
        Same = fun(What, F) ->
                   Beam = F(T),
                   Rexi = F(D),
                   io:format("~s~n  beam: ~p~n  rexi: ~p~n", [What, Beam, Rexi]),
                   Beam = Rexi
               end,
        {error, {exception, undef, [{nosuch_mod, nosuch_fun, [1, x], []}]}} =
            Same("erpc:call undef",
                 fun(N) -> caught(fun() -> erpc:call(N, nosuch_mod, nosuch_fun, [1, x]) end) end),
        {badrpc, {'EXIT', {undef, _}}} =
            Same("rpc:call undef", fun(N) -> rpc:call(N, nosuch_mod, nosuch_fun, [1]) end),
        Same("erpc:multicall undef",
             fun(N) -> erpc:multicall([N], nosuch_mod, nosuch_fun, []) end),
        Same("spawn_monitor undef",
             fun(N) -> {P, M} = spawn_monitor(N, nosuch_mod, nosuch_fun, [a]), down(M, P) end),
        %% multicalls over both, and over nodes() (rexi-node is visible)
        [{ok, H}, {ok, H}] = erpc:multicall([D, T], erlang, phash2, [Term]),
        {[H, H], []} = rpc:multicall([D, T], erlang, phash2, [Term]),
        Nodes = lists:sort(nodes()),
        Nodes = lists:sort([D, T]),
        {Hs, []} = rpc:multicall(nodes(), erlang, phash2, [Term]),
        [H, H] = Hs,
        %% a handler's failure, and a job that outlives the call's timeout
        {error, {exception, boom, [{rexi_node, fail, 1, []}]}} =
            caught(fun() -> erpc:call(D, rexi_node, fail, [boom]) end),
        {error, {erpc, timeout}} =
            caught(fun() -> erpc:call(D, rexi_node, sleep, [3000], 100) end),
        %% rexi's caller-only calls have no rexi caller here
        {error, {exception, {badmatch, undefined}, _}} =
            caught(fun() -> erpc:call(D, rexi_node, sync, [x]) end),
        %% links and monitors asked for in the spawn are honoured
        process_flag(trap_exit, true),
        P1 = spawn_link(D, rexi_node, sleep, [50]),
        normal = receive {'EXIT', P1, W1} -> W1 after 5000 -> no_exit end,
        {P2, M2} = spawn_monitor(D, rexi_node, sleep, [30000]),
        exit(P2, kill),
        killed = down(M2, P2),
        P3 = spawn_link(D, rexi_node, sleep, [30000]),
        exit(P3, stop),
        stop = receive {'EXIT', P3, W3} -> W3 after 5000 -> no_exit end,
        ok
    end).

%% ---- a reply to a caller on a node rexi-node is not connected to -----------------------

relay(Parent, Ref) ->
    receive
        {Ref, X} -> Parent ! {relayed, Ref, X}
    after 20000 -> Parent ! {relayed, Ref, timeout}
    end.

%% The pid of a process on Node (which need not exist): NEW_PID_EXT with that node name.
ghost_pid(Node) ->
    Name = atom_to_binary(Node, utf8),
    binary_to_term(<<131, 88, 119, (byte_size(Name)), Name/binary, 1:32, 0:32, 1:32>>).

relay_probe(L) ->
    [D, E2, Ghost] = atoms(L),
    check(fun() ->
        pong = net_adm:ping(E2),
        pong = net_adm:ping(D),
        Known = fun() -> lists:member(D, erpc:call(E2, erlang, nodes, [connected])) end,
        false = Known(),
        %% the caller is a process on E2: rexi-node connects to E2 to deliver the reply
        Ref = make_ref(),
        P = spawn(E2, ?MODULE, relay, [self(), Ref]),
        Server = {list_to_atom("rexi_server_" ++ atom_to_list(node())), D},
        Server ! {'$gen_cast', {doit, {P, Ref}, undefined, {rexi_node, echo, [relayed]}}},
        {relayed, Ref, relayed} = receive {relayed, Ref, _} = R -> R after 25000 -> no_relay end,
        true = Known(),
        %% a caller on a node that does not exist: the reply is dropped (the daemon says so)
        Server ! {'$gen_cast', {doit, {ghost_pid(Ghost), make_ref()}, undefined,
                                {rexi_node, echo, [lost]}}},
        %% and the daemon keeps serving
        Ref2 = make_ref(),
        Server ! {'$gen_cast', {doit, {self(), Ref2}, undefined, {rexi_node, echo, [still]}}},
        still = receive {Ref2, S} -> S after 5000 -> no_reply end,
        io:format("RELAYED~n"),
        ok
    end).
