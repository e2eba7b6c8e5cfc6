%% @doc A fan-out coordinator shaped like CouchDB's (fabric_doc_open and
%% about 30 others, docs/couchdb.md): watch the servers, cast to each node,
%% then take replies and `rexi_DOWN's until every node has answered, is
%% down, or the deadline passes.
%%
%% call/3 runs the coordination in a process of its own, as CouchDB runs it in
%% the request's process: replies that arrive after a node was given up
%% (a hidden node's worker still runs and answers) die with that process
%% instead of piling up in the caller's mailbox.
-module(rexi_couch_coordinator).

-export([call/3]).

-type result() :: {ok, term()} | {rexi_EXIT, term()} | {rexi_DOWN, term()} | timeout.

%% @doc Run `MFA' on every node of `Nodes' (no duplicates) through
%% rexi_couch_send; `[{Node, Result}]' in the order of `Nodes'.
-spec call([node()], {module(), atom(), list()}, timeout()) -> [{node(), result()}].
call(Nodes, MFA, TimeoutMs) ->
    Tag = make_ref(),
    Parent = self(),
    {Pid, Mon} = spawn_monitor(fun() -> Parent ! {Tag, coordinate(Nodes, MFA, TimeoutMs)} end),
    receive
        {Tag, Results} ->
            erlang:demonitor(Mon, [flush]),
            Results;
        {'DOWN', Mon, process, Pid, Reason} ->
            erlang:error({coordinator_died, Reason})
    end.

coordinate(Nodes, MFA, TimeoutMs) ->
    Server = rexi_utils:per_node_id(node()),
    Watcher = rexi_couch_monitor:start([{Server, N} || N <- Nodes]),
    Workers = [{N, rexi_couch_send:cast(N, self(), MFA)} || N <- Nodes],
    Done = try rexi_utils:recv(Workers, 2, fun handle/3, {Workers, #{}}, TimeoutMs, infinity) of
               {ok, {_, Acc}} -> Acc;
               {timeout, {_, Acc}} -> Acc
           after
               rexi_couch_monitor:stop(Watcher)
           end,
    [{N, maps:get(N, Done, timeout)} || N <- Nodes].

%% Acc: {Pending workers, #{Node => result()}}. A resolved worker leaves the
%% list recv/6 matches against, so its late messages are ignored.
handle({rexi_DOWN, _Watcher, {_Server, Node}, Reason}, nil, {Pending, Done}) ->
    resolve([W || W = {N, _} <- Pending, N =:= Node], {rexi_DOWN, Reason}, Pending, Done);
handle({rexi_DOWN, _, _, _}, nil, Acc) ->
    {ok, Acc};
handle({rexi_EXIT, Reason}, Worker, {Pending, Done}) ->
    resolve([Worker], {rexi_EXIT, Reason}, Pending, Done);
handle(Msg, {{Node, Ref} = Worker, _From}, {Pending, Done}) when is_atom(Node), is_reference(Ref) ->
    resolve([Worker], {ok, Msg}, Pending, Done);        % a sync_reply or stream row
handle(Reply, Worker, {Pending, Done}) ->
    resolve([Worker], {ok, Reply}, Pending, Done).

resolve([], _Result, Pending, Done) ->
    {ok, {Pending, Done}};
resolve(Resolved, Result, Pending, Done0) ->
    Done = lists:foldl(fun({N, _}, D) -> D#{N => Result} end, Done0, Resolved),
    case Pending -- Resolved of
        [] -> {stop, {[], Done}};
        Left -> {new_refs, Left, {Left, Done}}
    end.
