%% @doc Supervisor of the per-node send buffers (rexi_couch_buffer), one per
%% node, started by rexi_couch_buffer_mon.
-module(rexi_couch_buffer_sup).
-behaviour(supervisor).

-export([start_link/0, start_buffer/1]).
-export([init/1]).

start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

-spec start_buffer(node()) -> ok | {error, term()}.
start_buffer(Node) ->
    case supervisor:start_child(?MODULE, [Node]) of
        {ok, _} -> ok;
        {error, {already_started, _}} -> ok;
        {error, _} = Error -> Error
    end.

init([]) ->
    {ok, {#{strategy => simple_one_for_one, intensity => 10, period => 10},
          [#{id => rexi_couch_buffer,
             start => {rexi_couch_buffer, start_link, []},
             restart => permanent, shutdown => 2000, type => worker,
             modules => [rexi_couch_buffer]}]}}.
