%% @doc Starts a per-node server (rexi_utils:per_node_id/1) for every node N in
%% `[node() | nodes()]' (releases 1..3).
%%
%% Seed design ([1/3]): servers are started on `{nodeup, N}' and on a periodic
%% `check_nodes' tick, NOT at init. The tick interval is the application env
%% `check_interval_ms' (default 60000, the seed's 60 s). Consequence, kept on
%% purpose because it is what the seed did: after boot, or after an in-place
%% upgrade from R0 to R1 (rexi_release:set/1), peers that were already
%% connected produce no `nodeup', so their servers -- and the node's own
%% server -- appear only at the first tick, up to `check_interval_ms' later.
%% Until then `status/0' answers `{waiting, N}' and casts from R2/R3 callers
%% to this node are lost. Setting the env `check_at_init' to true runs one
%% check right away (the later Cloudant 2.4.0 fix); it defaults to false.
%%
%% Hidden nodes never appear in `nodes()' and send no `nodeup', so no server
%% is ever started for them (docs/design/migration.md section 6).
-module(rexi_server_mon).
-behaviour(gen_server).

-export([start_link/0, status/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-record(st, {interval :: pos_integer(), checks = 0 :: non_neg_integer(),
             started = 0 :: non_neg_integer()}).

start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc `ok' when a server exists for every node in [node() | nodes()],
%% otherwise `{waiting, NumberMissing}'.
-spec status() -> ok | {waiting, pos_integer()}.
status() ->
    gen_server:call(?MODULE, status).

init([]) ->
    ok = net_kernel:monitor_nodes(true),
    Interval = application:get_env(rexi, check_interval_ms, 60000),
    case application:get_env(rexi, check_at_init, false) of
        true -> self() ! check_nodes_once;
        false -> ok
    end,
    erlang:send_after(Interval, self(), check_nodes),
    {ok, #st{interval = Interval}}.

handle_call(status, _From, St) ->
    Reply = case missing_servers() of
                [] -> ok;
                Missing -> {waiting, length(Missing)}
            end,
    {reply, Reply, St};
handle_call(stats, _From, St) ->
    {reply, #{release => rexi_release:get(),
              servers => length(rexi_server_sup:server_ids()),
              missing => length(missing_servers()),
              checks => St#st.checks,
              started => St#st.started,
              check_interval_ms => St#st.interval}, St};
handle_call(_Other, _From, St) ->
    {reply, ignored, St}.

handle_cast(_Msg, St) ->
    {noreply, St}.

handle_info({nodeup, _Node}, St) ->
    {noreply, start_missing(St)};
handle_info({nodedown, _Node}, St) ->
    %% seed behaviour: servers of departed nodes are kept
    {noreply, St};
handle_info(check_nodes, St = #st{interval = Interval}) ->
    erlang:send_after(Interval, self(), check_nodes),
    {noreply, start_missing(St#st{checks = St#st.checks + 1})};
handle_info(check_nodes_once, St) ->
    {noreply, start_missing(St#st{checks = St#st.checks + 1})};
handle_info(_Msg, St) ->
    {noreply, St}.

missing_servers() ->
    Running = rexi_server_sup:server_ids(),
    [Id || Id <- wanted_servers(), not lists:member(Id, Running)].

wanted_servers() ->
    lists:usort([rexi_utils:per_node_id(N) || N <- [node() | nodes()]]).

%% Unlike the seed, a failing start is logged and retried at the next tick
%% instead of crashing the monitor (docs/design/migration.md section 3, 5.6).
start_missing(St) ->
    lists:foldl(
      fun(Id, Acc) ->
              case rexi_server_sup:start_server(Id) of
                  ok -> Acc#st{started = Acc#st.started + 1};
                  Error ->
                      logger:warning("rexi_server_mon: cannot start ~p: ~p",
                                     [Id, Error]),
                      Acc
              end
      end, St, missing_servers()).
