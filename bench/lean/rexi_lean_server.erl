%% @doc The lean BEAM baseline of scripts/bench: the least a BEAM node must do to serve a
%% rexi doit the way rexi_server does, and nothing more.
%%
%% Why this is the baseline the ratios are stated against: a comparison with a full rexi
%% application measures that application's extras too (error rings, node monitors, several
%% registered servers, supervisors), so a ratio could improve because our own Erlang app got
%% heavier. This server keeps only what any faithful rexi server must do per job:
%%   * one gen_server registered as `rexi_server' receives `{'$gen_cast', {doit, ...}}';
%%   * it spawn_monitors one worker per doit, which runs apply(M, F, A) with `rexi_from'
%%     set to the caller's {Pid, Ref} (the job's reply goes straight to the caller);
%%   * it remembers the job until its 'DOWN' arrives (a real server must, to kill jobs
%%     when their caller goes away), in one map.
%% Dropping any of these would no longer be rexi's job model (one process per job, the
%% server knows its jobs); adding anything (error logging, per-caller monitors, nonce
%% checks) is what erlang-interop's app measures in the second BEAM column.
%%
%% The `jobs' call answers how many jobs are held (scripts/bench's hold mode asks it).
-module(rexi_lean_server).
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
