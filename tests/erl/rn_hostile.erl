%% Probes for tests/hostile_terms.rs: a legitimate caller checking it is still served while
%% (or after) a hostile peer attacked the daemon. Started with:
%%   erl -run rn_hostile Function Arg...
%% Each prints what it saw, then PASS (exit 0) or FAIL <why> (exit 1).
-module(rn_hostile).
-export([served/1, deep_echo/1, deep_fail/1, error_cap/1, stats/1, flood_sleep/1]).

-define(T(L), list_to_atom(hd(L))).

done(ok) -> io:format("PASS~n"), halt(0);
done({fail, Why}) -> io:format("FAIL ~P~n", [Why, 30]), halt(1).

check(Fun) ->
    try Fun() of
        ok -> done(ok);
        Other -> done({fail, Other})
    catch C:R:S -> done({fail, {C, R, S}})
    end.

cast(Dest, MFA) ->
    Ref = make_ref(),
    erlang:send(Dest, {'$gen_cast', {doit, {self(), Ref}, undefined, MFA}}),
    Ref.

rx(Ref, Timeout) -> receive {Ref, M} -> M after Timeout -> timeout end.

deep(N) -> lists:foldl(fun(_, A) -> {A} end, leaf, lists:seq(1, N)).

node_server(T) -> {list_to_atom("rexi_server_" ++ atom_to_list(node())), T}.

%% ping + one echo cast through this node's own rexi_server name.
served(L) ->
    T = ?T(L),
    check(fun() ->
        pong = net_adm:ping(T),
        R = cast(node_server(T), {rexi_node, echo, [still_here]}),
        case rx(R, 10000) of
            still_here -> io:format("SERVED~n"), ok;
            Other -> {not_served, Other}
        end
    end).

%% A term nested Depth deep goes to rexi_node:echo and must come back =:=.
deep_echo([Target, DepthS]) ->
    T = list_to_atom(Target),
    check(fun() ->
        pong = net_adm:ping(T),
        D = deep(list_to_integer(DepthS)),
        R = cast(node_server(T), {rexi_node, echo, [D]}),
        case rx(R, 60000) of
            timeout -> no_reply;
            Got when Got =:= D -> io:format("DEEP ECHO intact~n"), ok;
            _ -> differs
        end
    end).

%% The error ring keeps an entry for a job that failed with a 1,000,000-deep reason, and
%% that entry is a bounded summary.
deep_fail([Target, DepthS]) ->
    T = list_to_atom(Target),
    check(fun() ->
        pong = net_adm:ping(T),
        ok = gen_server:call({rexi_server, T}, {set_error_limit, 10}, 5000),
        D = deep(list_to_integer(DepthS)),
        R = cast(node_server(T), {rexi_node, fail, [D]}),
        {rexi_EXIT, {Reason, _Stack}} = rx(R, 60000),
        true = Reason =:= D,
        {ok, Entry} = gen_server:call({rexi_server, T}, get_last_error, 5000),
        Size = erts_debug:flat_size(Entry),
        io:format("ENTRY words ~p~n", [Size]),
        case Size < 20000 of true -> ok; false -> {entry_too_big, Size} end
    end).

%% set_error_limit 2^31-1 is accepted but capped: after Max + 5 failures at most Max
%% entries are kept.
error_cap([Target, MaxS]) ->
    T = list_to_atom(Target),
    Max = list_to_integer(MaxS),
    check(fun() ->
        pong = net_adm:ping(T),
        ok = gen_server:call({rexi_server, T}, {set_error_limit, 2147483647}, 5000),
        Refs = [cast(node_server(T), {rexi_node, fail, [N]}) || N <- lists:seq(1, Max + 5)],
        [{rexi_EXIT, _} = rx(R, 10000) || R <- Refs],
        {ok, Errors} = gen_server:call({rexi_server, T}, get_errors, 10000),
        io:format("ERRORS kept ~p~n", [length(Errors)]),
        case length(Errors) =< Max of true -> ok; false -> {ring_not_capped, length(Errors)} end
    end).

%% Prints rexi_server_mon stats once Key reaches Want (or after 20 s).
stats([Target, Key, WantS]) ->
    T = list_to_atom(Target),
    K = list_to_atom(Key),
    Want = list_to_integer(WantS),
    check(fun() ->
        pong = net_adm:ping(T),
        Wait = fun W(0) -> proplists:get_value(K, gen_server:call({rexi_server_mon, T}, stats, 5000));
                   W(N) ->
                       case proplists:get_value(K, gen_server:call({rexi_server_mon, T}, stats, 5000)) of
                           Want -> Want;
                           _ -> timer:sleep(100), W(N - 1)
                       end
               end,
        Got = Wait(200),
        io:format("STAT ~p ~p~n", [K, Got]),
        case Got of Want -> ok; _ -> {stat, K, Got} end
    end).

%% Casts N sleeps of Ms and counts how many were refused as overloaded at once; stays up
%% (holding its jobs) until killed.
flood_sleep([Target, NS, MsS]) ->
    T = list_to_atom(Target),
    pong = net_adm:ping(T),
    [cast(node_server(T), {rexi_node, sleep, [list_to_integer(MsS)]}) || _ <- lists:seq(1, list_to_integer(NS))],
    Over = count_overloaded(0),
    io:format("OVERLOADED ~p~n", [Over]),
    receive after infinity -> ok end.

count_overloaded(N) ->
    receive {_, {rexi_EXIT, {overloaded, []}}} -> count_overloaded(N + 1) after 2000 -> N end.
