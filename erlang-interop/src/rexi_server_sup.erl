%% @doc Supervisor of the per-node servers (rexi_utils:per_node_id/1).
%% It starts empty; rexi_server_mon adds one child per node.
-module(rexi_server_sup).
-behaviour(supervisor).

-export([start_link/0, start_server/1, server_ids/0]).
-export([init/1]).

start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% @doc Start the server registered as `Name' (idempotent).
start_server(Name) ->
    Spec = #{id => Name,
             start => {rexi_server, start_link, [Name]},
             restart => permanent, shutdown => 2000, type => worker,
             modules => [rexi_server]},
    case supervisor:start_child(?MODULE, Spec) of
        {ok, _} -> ok;
        {error, {already_started, _}} -> ok;
        {error, already_present} ->
            _ = supervisor:delete_child(?MODULE, Name),
            start_server(Name);
        Error -> Error
    end.

server_ids() ->
    [Id || {Id, Pid, _, _} <- supervisor:which_children(?MODULE), is_pid(Pid)].

init([]) ->
    %% seed values: at most one restart per second
    {ok, {#{strategy => one_for_one, intensity => 1, period => 1}, []}}.
