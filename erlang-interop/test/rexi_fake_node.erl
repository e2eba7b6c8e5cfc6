%% @doc A stand-in for the Rust daemon, to check rexi_node_SUITE and the
%% Rust hooks of rexi_migration_SUITE without it (test/fake-rexi-node).
%%
%% A hidden BEAM node running the rexi app at release 0 (singleton only)
%% that, like the daemon, serves every server name whatever its release:
%% for every node C that connects (hidden ones included, which BEAM rexi never
%% does) it starts `rexi_server_<phash2(C)>' and `rexi_server_<C>'. Unlike
%% the daemon, each name is a separate server with its own job table. This
%% process registers as `rexi_server_mon' and answers status (ok), stats (a
%% map) and {set_release, N} (recorded only).
-module(rexi_fake_node).
-export([start/1, init/1]).

start(Release) ->
    {ok, _} = application:ensure_all_started(rexi),
    spawn(?MODULE, init, [Release]).

init(Release) ->
    register(rexi_server_mon, self()),
    ok = net_kernel:monitor_nodes(true, [{node_type, all}]),
    %% nodes that connected before we subscribed (the ct node's first ping
    %% can beat this process)
    [self() ! {nodeup, N, []} || N <- nodes(connected)],
    loop(#{release => Release, servers => 1}).

loop(St) ->
    receive
        {nodeup, Node, _} ->
            New = [Name || Name <- [rexi_utils:per_node_id(Node),
                                    list_to_atom("rexi_server_" ++ atom_to_list(Node))],
                           whereis(Name) =:= undefined],
            [{ok, _} = rexi_server:start_link(Name) || Name <- New],
            loop(St#{servers := maps:get(servers, St) + length(New)});
        {'$gen_call', From, status} ->
            gen_server:reply(From, ok),
            loop(St);
        {'$gen_call', From, stats} ->
            gen_server:reply(From, St),
            loop(St);
        {'$gen_call', From, {set_release, R}} when is_integer(R), R >= 0, R =< 3 ->
            gen_server:reply(From, ok),
            loop(St#{release := R});
        {'$gen_call', From, _} ->
            gen_server:reply(From, ignored),
            loop(St);
        _ ->
            loop(St)
    end.
