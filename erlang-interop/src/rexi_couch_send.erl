%% @doc The CouchDB 2.0+ send path (docs/couchdb.md): never block, never
%% connect; when the distribution buffer to the node is busy, or the node is
%% not connected, hand the message to that node's buffer process
%% (rexi_couch_buffer), which exists only for visible nodes. For any other
%% node the message is dropped, silently in CouchDB; here it is counted.
%%
%% Counters per node (stats/1): `handed' (messages given to a buffer) and
%% `unbuffered' (messages dropped because the node has no buffer). They live
%% in a public table owned by rexi_couch_buffer_mon; without it nothing is
%% counted and sending still works.
-module(rexi_couch_send).

-export([cast/3, send/2, stats/1, new_table/0]).

-define(TABLE, rexi_couch_send).

%% @doc Cast `{M, F, A}' to the per-node server on `Node' that handles this
%% node's requests (rexi_utils:per_node_id/1; CouchDB 2.0+ callers use
%% `rexi_server_<node()>': run with the env `per_node_name' = `nodename').
%% Replies go to `Caller'. Returns the reply tag.
-spec cast(node(), pid(), {module(), atom(), list()}) -> reference().
cast(Node, Caller, MFA) ->
    Ref = make_ref(),
    send({rexi_utils:per_node_id(node()), Node},
         {'$gen_cast', {doit, {Caller, Ref}, get(nonce), MFA}}),
    Ref.

-spec send(pid() | {atom(), node()}, term()) -> ok.
send(Dest, Msg) ->
    case erlang:send(Dest, Msg, [noconnect, nosuspend]) of
        ok ->
            ok;
        _NosuspendOrNoconnect ->
            Node = node_of(Dest),
            case rexi_couch_buffer:deliver(Node, Dest, Msg) of
                ok -> count(Node, handed);
                no_buffer -> count(Node, unbuffered)
            end
    end.

-spec stats(node()) -> #{handed := non_neg_integer(), unbuffered := non_neg_integer()}.
stats(Node) ->
    #{handed => read(Node, handed), unbuffered => read(Node, unbuffered)}.

%% @doc Create the counter table (called by its owner, rexi_couch_buffer_mon).
new_table() ->
    ?TABLE = ets:new(?TABLE, [named_table, public, {write_concurrency, true}]),
    ok.

count(Node, Key) ->
    try ets:update_counter(?TABLE, {Node, Key}, 1, {{Node, Key}, 0}) of
        _ -> ok
    catch
        error:badarg -> ok          % no table: counting is off
    end.

read(Node, Key) ->
    try ets:lookup(?TABLE, {Node, Key}) of
        [{_, N}] -> N;
        [] -> 0
    catch
        error:badarg -> 0
    end.

node_of(Pid) when is_pid(Pid) -> node(Pid);
node_of({_Name, Node}) -> Node.
