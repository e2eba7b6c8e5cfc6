%% @doc Stand-in BEAM rexi server for scripts/bench, used only when the `rexi' application
%% (erlang-interop) is not available. It does what rexi_server does for a doit: a
%% gen_server registered as `rexi_server' spawn_monitors one worker per job, the worker
%% runs apply(M, F, A) with rexi_from set, and the server forgets the job on 'DOWN'.
-module(rexi_bench_server).
-behaviour(gen_server).
-export([start/0, init_p/2]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

start() ->
    {ok, _} = gen_server:start({local, rexi_server}, ?MODULE, [], []),
    ok.

init([]) -> {ok, #{}}.

handle_call(jobs, _From, Jobs) -> {reply, map_size(Jobs), Jobs};
handle_call(_, _From, Jobs) -> {reply, ignored, Jobs}.

handle_cast({doit, From, MFA}, Jobs) ->
    handle_cast({doit, From, undefined, MFA}, Jobs);
handle_cast({doit, {_Caller, Ref} = From, _Nonce, MFA}, Jobs) ->
    {_Pid, Mon} = spawn_monitor(?MODULE, init_p, [From, MFA]),
    {noreply, Jobs#{Mon => Ref}};
handle_cast(_, Jobs) -> {noreply, Jobs}.

handle_info({'DOWN', Mon, process, _, _}, Jobs) -> {noreply, maps:remove(Mon, Jobs)};
handle_info(_, Jobs) -> {noreply, Jobs}.

init_p(From, {M, F, A}) ->
    put(rexi_from, From),
    apply(M, F, A).
