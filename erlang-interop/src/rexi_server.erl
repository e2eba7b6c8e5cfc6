%% @doc A rexi server: runs jobs for callers (docs/design/protocol.md section 2).
%%
%% The same module runs as the singleton `rexi_server' and as every per-node
%% `rexi_server_<phash2(N)>'. For each `doit' it spawn_monitors an unlinked
%% worker and records the job under the worker monitor and the caller's Ref.
%% The worker talks to the caller directly; the server only reports abnormal
%% worker ends as `{Ref, {rexi_EXIT, Reason}}'.
-module(rexi_server).
-behaviour(gen_server).

-export([start_link/1, init_p/3]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

%% the #error{} record of the error ring (docs/design/protocol.md 2.5)
-record(error, {timestamp, reason, mfa, nonce, stack}).

-record(job, {worker :: pid(), mon :: reference(), caller :: pid(),
              ref :: term(), mfa :: term(), nonce :: term()}).

-record(st, {by_mon = #{} :: #{reference() => #job{}},
             by_ref = #{} :: #{term() => reference()},
             errors = [] :: list(),          % newest first
             error_limit = 20 :: non_neg_integer()}).

start_link(Name) ->
    gen_server:start_link({local, Name}, ?MODULE, [], []).

init([]) ->
    {ok, #st{error_limit = application:get_env(rexi, error_limit, 20)}}.

%% error ring calls
handle_call(get_errors, _From, St) ->
    {reply, {ok, St#st.errors}, St};
handle_call(get_last_error, _From, St = #st{errors = []}) ->
    {reply, {error, empty}, St};
handle_call(get_last_error, _From, St = #st{errors = [E | _]}) ->
    {reply, {ok, E}, St};
handle_call({set_error_limit, N}, _From, St) when is_integer(N), N >= 0 ->
    %% like the original: shrinking keeps the N oldest entries
    Errors = St#st.errors,
    Kept = case length(Errors) > N of
               true -> lists:nthtail(length(Errors) - N, Errors);
               false -> Errors
           end,
    {reply, ok, St#st{error_limit = N, errors = Kept}};
handle_call(jobs, _From, St) ->            % introspection for tests
    {reply, maps:size(St#st.by_ref), St};
handle_call(_Other, _From, St) ->
    {reply, ignored, St}.

handle_cast({doit, From, MFA}, St) ->          % legacy 3-tuple form
    handle_cast({doit, From, undefined, MFA}, St);
handle_cast({doit, {Caller, Ref} = From, Nonce, MFA}, St) ->
    {Pid, Mon} = spawn_monitor(?MODULE, init_p, [From, MFA, Nonce]),
    Job = #job{worker = Pid, mon = Mon, caller = Caller, ref = Ref,
               mfa = MFA, nonce = Nonce},
    {noreply, St#st{by_mon = maps:put(Mon, Job, St#st.by_mon),
                    by_ref = maps:put(Ref, Mon, St#st.by_ref)}};
handle_cast({kill, Ref}, St) ->
    {noreply, kill_job(Ref, St)};
handle_cast({kill_all, Refs}, St) when is_list(Refs) ->
    {noreply, lists:foldl(fun kill_job/2, St, Refs)};
handle_cast(Other, St) ->
    %% also a kill_all whose argument is not a list (the original crashed)
    logger:debug("rexi_server ~p: ignored_cast ~p", [self(), Other]),
    {noreply, St}.

handle_info({'DOWN', Mon, process, _Pid, Reason}, St) ->
    case maps:take(Mon, St#st.by_mon) of
        error ->
            {noreply, St};
        {Job, ByMon} ->
            St1 = St#st{by_mon = ByMon,
                        by_ref = maps:remove(Job#job.ref, St#st.by_ref)},
            {noreply, worker_down(Reason, Job, St1)}
    end;
handle_info(_Msg, St) ->
    {noreply, St}.

%% Kill: demonitor first, so no rexi_EXIT is sent. Unknown refs are ignored.
kill_job(Ref, St) ->
    case maps:take(Ref, St#st.by_ref) of
        error ->
            St;
        {Mon, ByRef} ->
            {#job{worker = Pid}, ByMon} = maps:take(Mon, St#st.by_mon),
            erlang:demonitor(Mon, [flush]),
            exit(Pid, kill),
            St#st{by_ref = ByRef, by_mon = ByMon}
    end.

%% docs/design/protocol.md 4.6: normal -> nothing; a failure caught in the worker (an
%% #error{}) -> {Reason, Stack} and into the error ring; anything else (e.g.
%% `killed', or a crash before the worker's try) -> the raw reason.
worker_down(normal, _Job, St) ->
    St;
worker_down(E = #error{reason = {_Class, Reason}, stack = Stack}, Job, St) ->
    notify_caller(Job, {Reason, Stack}),
    record_error(E, St);
worker_down(Reason, Job, St) ->
    notify_caller(Job, Reason),
    St.

notify_caller(#job{caller = Caller, ref = Ref}, Reason) ->
    rexi_utils:send(Caller, {Ref, {rexi_EXIT, Reason}}).

record_error(_E, St = #st{error_limit = 0}) ->
    St;
record_error(E, St = #st{errors = Errors, error_limit = Limit}) ->
    Kept = case length(Errors) >= Limit of
               true -> lists:sublist(Errors, Limit - 1);   % drop the oldest
               false -> Errors
           end,
    St#st{errors = [E | Kept]}.

%% @private The worker. Runs before the try: a bad MFA fails here
%% (function_clause / badarg) and the caller gets the raw crash reason.
init_p({_Caller, _Ref} = From, {M, F, A}, Nonce) ->
    put(rexi_from, From),
    put('$initial_call', {M, F, length(A)}),
    put(nonce, Nonce),
    try
        apply(M, F, A)
    catch
        exit:normal ->
            ok;
        Class:Reason:Stack ->
            exit(#error{timestamp = os:timestamp(), reason = {Class, Reason},
                        mfa = {M, F, A}, nonce = Nonce, stack = Stack})
    end.
