%% @doc A stand-in for the Rust daemon, to check rexi_node_SUITE itself
%% (test/fake-rexi-node). A hidden BEAM node running the rexi app that also
%% serves `rexi_server_<phash2(C)>' and `rexi_server_<C>' for every node C
%% that connects, including hidden ones (which BEAM rexi never does). Unlike
%% the daemon, each name is a separate server with its own job table.
-module(rexi_fake_node).
-export([start/0, init/0]).

start() ->
    {ok, _} = application:ensure_all_started(rexi),
    spawn(?MODULE, init, []).

init() ->
    register(rexi_fake_node, self()),
    ok = net_kernel:monitor_nodes(true, [{node_type, all}]),
    loop().

loop() ->
    receive
        {nodeup, Node, _} ->
            [catch rexi_server:start_link(Name)
             || Name <- [rexi_utils:per_node_id(Node),
                         list_to_atom("rexi_server_" ++ atom_to_list(Node))],
                whereis(Name) =:= undefined],
            loop();
        _ ->
            loop()
    end.
