%% A small rexi for the operator tools' tests (tests/cli_tools.rs). It registers the names a
%% node at a given migration release registers (docs/design/migration.md §1) and, with
%% `env`, sets application env `release` of app `rexi` the way erlang-interop's app exposes
%% it. One `erl -run` gives a node at any release in a state the tests choose (e.g. a
%% rexi_server_mon still waiting), which erlang-interop's supervised app does not offer;
%% erlang-interop's own suites test that app against the same tools (migrate_check_agrees).
%%
%% erl -run rn_rexi_standin start Release env|noenv|env_waiting [PeerNode...]
%% erl -run rn_rexi_standin start couchdb [PeerNode...]
%%
%% Kill messages are printed, not acted on: `KILL_ALL N via Name` or `KILL via Name`.
%%
%% env_waiting: as env, and rexi_server_mon answers status -> {waiting, 1}, as a real one
%% does before its per-node servers exist.
%%
%% Release 0: rexi_server. Releases 1 and 2: rexi_server, rexi_server_mon, rexi_server_sup
%% and rexi_server_<phash2(N)> for N in [node() | nodes()]. Release 3: the same without
%% rexi_server. rexi_server_mon answers status -> ok; the servers run doit jobs.
-module(rn_rexi_standin).
-behaviour(gen_server).
-export([start/1, reply/1, sync/1, sleep/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

%% CouchDB's rexi (2.3+): the singleton, the monitors and per-node servers named after
%% each node of [node() | nodes()], and no release env.
start(["couchdb" | Peers]) ->
    [pong = net_adm:ping(list_to_atom(P)) || P <- Peers],
    Names = [rexi_server, rexi_server_mon, rexi_server_sup, rexi_buffer_mon, rexi_buffer_sup |
             [list_to_atom("rexi_server_" ++ atom_to_list(N)) || N <- [node() | nodes()]]],
    [{ok, _} = gen_server:start({local, N}, ?MODULE, N, []) || N <- Names],
    io:format("STANDIN couchdb names=~p~n", [Names]);
start([Rel, Env | Peers]) ->
    R = list_to_integer(Rel),
    [pong = net_adm:ping(list_to_atom(P)) || P <- Peers],
    case Env of
        "env" -> application:set_env(rexi, release, R);
        "env_waiting" ->
            application:set_env(rexi, release, R),
            application:set_env(rn_rexi_standin, waiting, true);
        "noenv" -> ok
    end,
    Names = names(R),
    [{ok, _} = gen_server:start({local, N}, ?MODULE, N, []) || N <- Names],
    io:format("STANDIN release=~p names=~p~n", [R, Names]).

names(0) -> [rexi_server];
names(R) when R =:= 1; R =:= 2 -> [rexi_server | names(3)];
names(3) ->
    [rexi_server_mon, rexi_server_sup |
     [list_to_atom("rexi_server_" ++ integer_to_list(erlang:phash2(N))) || N <- [node() | nodes()]]].

%% Job helpers, for `rexi-node cast` against this node.
reply(T) ->
    {Pid, Ref} = get(rexi_from),
    Pid ! {Ref, T}.

sync(T) ->
    {Pid, Ref} = get(rexi_from),
    Tag = make_ref(),
    Pid ! {Ref, {self(), Tag}, T},
    receive {Tag, Answer} -> Pid ! {Ref, {answered, Answer}}
    after 10000 -> exit(timeout)
    end.

sleep(Ms) -> timer:sleep(Ms).

init(Name) -> {ok, Name}.

handle_call(status, _From, rexi_server_mon = S) ->
    case application:get_env(rn_rexi_standin, waiting) of
        {ok, true} -> {reply, {waiting, 1}, S};
        _ -> {reply, ok, S}
    end;
handle_call(_, _From, S) -> {reply, ignored, S}.

handle_cast({doit, {Pid, Ref} = From, _Nonce, {M, F, A}}, S) ->
    spawn(fun() ->
        put(rexi_from, From),
        try apply(M, F, A)
        catch _:R:St -> Pid ! {Ref, {rexi_EXIT, {R, St}}}
        end
    end),
    {noreply, S};
%% Kills are only printed (the tests read which message and name a caller used).
handle_cast({kill_all, Refs}, S) ->
    io:format("KILL_ALL ~p via ~p~n", [length(Refs), S]),
    {noreply, S};
handle_cast({kill, _Ref}, S) ->
    io:format("KILL via ~p~n", [S]),
    {noreply, S};
handle_cast(_, S) -> {noreply, S}.

handle_info(_, S) -> {noreply, S}.
