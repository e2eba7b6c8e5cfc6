%% @doc Names, the non-blocking send path, and the caller's receive loop.
-module(rexi_utils).

-export([server_id/1, server_pid/1, per_node_id/1, singleton_pid/1,
         send/2, recv/6]).

%% @doc The server name a caller on this node uses on any target, for `Node'
%% the node whose requests that server handles (normally `node()').
%% R0/R1: the singleton `rexi_server'; R2/R3: `rexi_server_<phash2(Node)>'.
-spec server_id(node()) -> atom().
server_id(Node) ->
    case rexi_release:get() of
        R when R >= 2 -> per_node_id(Node);
        _ -> rexi_server
    end.

%% @doc `{server_id(node()), Node}': on `Node', the server that handles
%% requests from this node.
-spec server_pid(node()) -> {atom(), node()}.
server_pid(Node) ->
    {server_id(node()), Node}.

%% @doc The per-node server name for `Node', whatever the release:
%% `rexi_server_<phash2(Node)>' (the seed scheme, the default), or, with the
%% application env `per_node_name' set to `nodename', `rexi_server_<Node>'
%% (the name CouchDB 2.0+ callers and servers use). Callers and servers of
%% one cluster must agree on it.
-spec per_node_id(node()) -> atom().
per_node_id(Node) ->
    case application:get_env(rexi, per_node_name, phash2) of
        nodename -> list_to_atom("rexi_server_" ++ atom_to_list(Node));
        phash2 -> list_to_atom("rexi_server_" ++ integer_to_list(erlang:phash2(Node)))
    end.

singleton_pid(Node) ->
    {rexi_server, Node}.

%% @doc Send without blocking and without auto-connecting. If that fails
%% (not connected, or the distribution buffer is busy) fall back, like the
%% seed-era rexi_governor, to a short-lived process doing a plain
%% `erlang:send/2', which may block and does auto-connect. There is no
%% buffering and no cap on the number of such processes (the governor capped
%% at 10000); ordering between a direct send and a fallback send is not
%% guaranteed, so a kill can overtake its doit.
-spec send(pid() | atom() | {atom(), node()}, term()) -> ok.
send(Dest, Msg) ->
    case erlang:send(Dest, Msg, [noconnect, nosuspend]) of
        ok -> ok;
        _NoconnectOrNosuspend ->
            _ = spawn(erlang, send, [Dest, Msg]),
            ok
    end.

%% @doc The coordinator's receive loop (docs/design/callers.md section 3).
%% `Fun(Msg, Worker | {Worker, From} | nil, Acc)' returns `{ok, Acc}',
%% `{stop, Acc}', `{new_refs, Workers, Acc}' or anything else (returned as is).
recv(Workers, KeyPos, Fun, Acc0, GlobalTimeout, PerMsgTimeout) ->
    {GTag, TRef} = case GlobalTimeout of
                       infinity -> {undefined, undefined};
                       T ->
                           Tag = make_ref(),
                           {Tag, erlang:send_after(T, self(), {timeout, Tag})}
                   end,
    try
        loop(Workers, KeyPos, Fun, Acc0, GTag, PerMsgTimeout)
    after
        cancel(TRef, GTag)
    end.

cancel(undefined, _) -> ok;
cancel(TRef, GTag) ->
    _ = erlang:cancel_timer(TRef),
    receive {timeout, GTag} -> ok after 0 -> ok end.

loop(Workers, KeyPos, Fun, Acc, GTag, PerMsg) ->
    receive
        {timeout, GTag} when GTag =/= undefined ->
            {timeout, Acc};
        {rexi, '$rexi_ping'} ->
            loop(Workers, KeyPos, Fun, Acc, GTag, PerMsg);
        {rexi, Ref, Msg} ->
            handle_msg(Ref, Msg, nofrom, Workers, KeyPos, Fun, Acc, GTag, PerMsg);
        {rexi, Ref, From, Msg} ->
            handle_msg(Ref, Msg, {from, From}, Workers, KeyPos, Fun, Acc, GTag, PerMsg);
        {rexi_DOWN, _, _, _} = Down ->
            result(Fun(Down, nil, Acc), Workers, KeyPos, Fun, GTag, PerMsg);
        {Ref, From, Msg} ->
            handle_msg(Ref, Msg, {from, From}, Workers, KeyPos, Fun, Acc, GTag, PerMsg);
        {Ref, Msg} ->
            handle_msg(Ref, Msg, nofrom, Workers, KeyPos, Fun, Acc, GTag, PerMsg)
    after PerMsg ->
        {timeout, Acc}
    end.

handle_msg(Ref, Msg, From, Workers, KeyPos, Fun, Acc, GTag, PerMsg) ->
    case lists:keyfind(Ref, KeyPos, Workers) of
        false ->
            loop(Workers, KeyPos, Fun, Acc, GTag, PerMsg);
        Worker ->
            Arg = case From of nofrom -> Worker; {from, F} -> {Worker, F} end,
            result(Fun(Msg, Arg, Acc), Workers, KeyPos, Fun, GTag, PerMsg)
    end.

result({ok, Acc}, Workers, KeyPos, Fun, GTag, PerMsg) ->
    loop(Workers, KeyPos, Fun, Acc, GTag, PerMsg);
result({new_refs, NewWorkers, Acc}, _Workers, KeyPos, Fun, GTag, PerMsg) ->
    loop(NewWorkers, KeyPos, Fun, Acc, GTag, PerMsg);
result({stop, Acc}, _, _, _, _, _) ->
    {ok, Acc};
result(Other, _, _, _, _, _) ->
    Other.
