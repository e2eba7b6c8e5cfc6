%% @doc Starts a send buffer (rexi_couch_buffer) for every visible node, as
%% CouchDB 2.0+ does on visible nodeup: `net_kernel:monitor_nodes(true)'
%% reports visible nodes only, so a hidden node never gets a buffer, and the
%% messages rexi_couch_send hands off for it are lost (docs/couchdb.md).
%%
%% Buffers are kept after nodedown (CouchDB removes them only at the next
%% stable-cluster event, 16-32 s later): what they still hold goes out through
%% a plain send, which reconnects, or is dropped if the node stays away.
%%
%% This process also owns rexi_couch_send's counter table.
-module(rexi_couch_buffer_mon).
-behaviour(gen_server).

-export([start_link/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

init([]) ->
    ok = rexi_couch_send:new_table(),
    ok = net_kernel:monitor_nodes(true),
    [start(N) || N <- nodes()],
    {ok, #{}}.

handle_call(_Req, _From, St) ->
    {reply, ignored, St}.

handle_cast(_Msg, St) ->
    {noreply, St}.

handle_info({nodeup, Node}, St) ->
    start(Node),
    {noreply, St};
handle_info(_Other, St) ->
    {noreply, St}.

start(Node) ->
    case rexi_couch_buffer_sup:start_buffer(Node) of
        ok -> ok;
        Error -> logger:warning("rexi_couch_buffer_mon: no send buffer for ~p: ~p; "
                                "casts to it that meet a busy connection are lost",
                                [Node, Error])
    end.
