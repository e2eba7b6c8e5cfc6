%% @doc Top supervisor of the rexi application.
%%
%% Its children depend on the release (rexi_release):
%%   singleton `rexi_server'          in R0, R1, R2
%%   `rexi_server_sup' + `rexi_server_mon'   in R1, R2, R3
%% `reconcile/0' brings a running tree in line with the current release:
%% it first starts what is missing, then stops what the release dropped,
%% so a request is never left without the server its caller uses.
-module(rexi_sup).
-behaviour(supervisor).

-export([start_link/0, reconcile/0]).
-export([init/1]).

start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

init([]) ->
    %% one_for_one: a crash of the singleton must not take the per-node
    %% servers with it. An emptied rexi_server_sup is refilled by
    %% rexi_server_mon on its next check_nodes tick (seed behaviour).
    {ok, {#{strategy => one_for_one, intensity => 3, period => 10},
          wanted(rexi_release:get())}}.

reconcile() ->
    Wanted = wanted(rexi_release:get()),
    WantedIds = [Id || #{id := Id} <- Wanted],
    Running = [Id || {Id, _, _, _} <- supervisor:which_children(?MODULE)],
    Starts = [start(S) || S = #{id := Id} <- Wanted, not lists:member(Id, Running)],
    %% stop in reverse start order: the monitor before the supervisor it fills
    Stops = [stop(Id) || Id <- lists:reverse(Running), not lists:member(Id, WantedIds)],
    case [E || E <- Starts ++ Stops, E =/= ok] of
        [] -> ok;
        Errors -> {error, Errors}
    end.

start(Spec) ->
    case supervisor:start_child(?MODULE, Spec) of
        {ok, _} -> ok;
        {error, {already_started, _}} -> ok;
        Error -> Error
    end.

stop(Id) ->
    _ = supervisor:terminate_child(?MODULE, Id),
    case supervisor:delete_child(?MODULE, Id) of
        ok -> ok;
        {error, not_found} -> ok;
        Error -> Error
    end.

wanted(Release) ->
    lists:append([specs(S) || S <- rexi_release:servers(Release)]) ++ couch_specs().

%% The CouchDB-style per-node send buffers (application env `couch_buffers',
%% default false), whatever the release: they serve this node as a caller.
couch_specs() ->
    case application:get_env(rexi, couch_buffers, false) of
        true ->
            [#{id => rexi_couch_buffer_sup,
               start => {rexi_couch_buffer_sup, start_link, []},
               restart => permanent, shutdown => infinity, type => supervisor,
               modules => [rexi_couch_buffer_sup]},
             #{id => rexi_couch_buffer_mon,
               start => {rexi_couch_buffer_mon, start_link, []},
               restart => permanent, shutdown => 2000, type => worker,
               modules => [rexi_couch_buffer_mon]}];
        false ->
            []
    end.

specs(singleton) ->
    [#{id => rexi_server,
       start => {rexi_server, start_link, [rexi_server]},
       restart => permanent, shutdown => 2000, type => worker,
       modules => [rexi_server]}];
specs(per_node) ->
    [#{id => rexi_server_sup,
       start => {rexi_server_sup, start_link, []},
       restart => permanent, shutdown => infinity, type => supervisor,
       modules => [rexi_server_sup]},
     #{id => rexi_server_mon,
       start => {rexi_server_mon, start_link, []},
       restart => permanent, shutdown => 2000, type => worker,
       modules => [rexi_server_mon]}].
