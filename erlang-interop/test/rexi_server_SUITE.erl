%% @doc Server and API details on a BEAM peer that the other suites do not
%% cover: legacy 3-tuple doit, error ring calls, kill_all, rexi_EXIT shapes,
%% stream v1 ack errors, rexi_utils:recv/6, release switching and names.
-module(rexi_server_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([legacy_doit/1, error_ring/1, kill_all/1, exit_reasons/1,
         mismatched_ack/1, stream_timeout/1, recv_loop/1, names_by_release/1,
         release_switch/1, r2_double_kill/1]).

suite() -> [{timetrap, {minutes, 2}}].

all() ->
    [legacy_doit, error_ring, kill_all, exit_reasons, mismatched_ack,
     stream_timeout, recv_loop, names_by_release, release_switch,
     r2_double_kill].

init_per_suite(Config) ->
    T = rexi_ct_lib:start_beam(srv, [{release, 1}, {check_interval_ms, 500},
                                     {check_at_init, true}, {error_limit, 3}]),
    ok = rexi_ct_lib:wait_ready(T, 5000),
    [{t, T} | Config].

end_per_suite(Config) ->
    rexi_ct_lib:stop(?config(t, Config)).

node_of(Config) -> maps:get(node, ?config(t, Config)).

doit(Config, MFA) ->
    Ref = make_ref(),
    {rexi_server, node_of(Config)} ! {'$gen_cast', {doit, {self(), Ref}, "nonce-1", MFA}},
    Ref.

recv(Ref) ->
    receive {Ref, M} -> M; {Ref, F, M} -> {F, M} after 5000 -> ct:fail({no_reply, Ref}) end.

%% Nothing for Ref in the mailbox now. Called only once an event proved that
%% anything the node would send for Ref has arrived already.
quiet(Ref) ->
    receive {Ref, M} -> ct:fail({unexpected, M}); {Ref, F, M} -> ct:fail({unexpected, F, M})
    after 0 -> ok
    end.

%% A sleep job cast after others and answered after they would have been: once
%% its reply is here, any reply of a job that was due to end earlier is too.
marker(Config, Ms) ->
    {slept, Ms} = recv(doit(Config, {rexi_node, sleep, [Ms]})),
    ok.

%% Waits until the server has no job left: it then has handled every worker's
%% end, and any rexi_EXIT it sent for them (or message a worker sent before it
%% ended) came before this call's reply, over the same connection.
no_jobs(Config) ->
    wait_no_jobs({rexi_server, node_of(Config)}, erlang:monotonic_time(millisecond) + 5000).

wait_no_jobs(S, Deadline) ->
    case gen_server:call(S, jobs) of
        0 -> ok;
        N ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> ct:fail({jobs_left, N});
                false -> timer:sleep(20), wait_no_jobs(S, Deadline)
            end
    end.

legacy_doit(Config) ->
    Ref = make_ref(),
    {rexi_server, node_of(Config)} ! {'$gen_cast', {doit, {self(), Ref}, {rexi_node, echo, [old]}}},
    old = recv(Ref).

error_ring(Config) ->
    S = {rexi_server, node_of(Config)},
    {error, empty} = gen_server:call(S, get_last_error),
    [{rexi_EXIT, {R, _}} = recv(doit(Config, {rexi_node, fail, [R]}))
     || R <- [e1, e2, e3, e4]],
    {ok, Errs} = gen_server:call(S, get_errors),
    [e4, e3, e2] = [R || {error, _, {error, R}, _, _, _} <- Errs],   % newest first, limit 3
    {ok, {error, {_, _, _}, {error, e4}, {rexi_node, fail, [e4]}, "nonce-1", Stack}} =
        gen_server:call(S, get_last_error),
    true = is_list(Stack),
    ok = gen_server:call(S, {set_error_limit, 1}),
    {ok, [{error, _, {error, e2}, _, _, _}]} = gen_server:call(S, get_errors), % oldest kept
    ignored = gen_server:call(S, something_else).

kill_all(Config) ->
    Refs = [doit(Config, {rexi_node, sleep, [300]}) || _ <- [1, 2]],
    Keep = doit(Config, {rexi_node, sleep, [100]}),
    {rexi_server, node_of(Config)} ! {'$gen_cast', {kill_all, Refs}},
    {slept, 100} = recv(Keep),
    %% killed jobs would have answered at 300 ms, before this marker
    ok = marker(Config, 600),
    [quiet(R) || R <- Refs],
    0 = gen_server:call({rexi_server, node_of(Config)}, jobs).

exit_reasons(Config) ->
    {rexi_EXIT, {thrown, [_ | _]}} = recv(doit(Config, {erlang, throw, [thrown]})),
    {rexi_EXIT, {bye, [_ | _]}} = recv(doit(Config, {erlang, exit, [bye]})),
    Normal = doit(Config, {erlang, exit, [normal]}),
    ok = no_jobs(Config),
    quiet(Normal),
    {rexi_EXIT, {kill, [_ | _]}} = recv(doit(Config, {erlang, exit, [kill]})),
    {rexi_EXIT, killed} = recv(doit(Config, {rexi_ct_lib, job_suicide, []})),
    {rexi_EXIT, {function_clause, _}} = recv(doit(Config, not_an_mfa)),
    {rexi_EXIT, {badarg, _}} = recv(doit(Config, {rexi_node, echo, not_a_list})).

mismatched_ack(Config) ->
    Ref = doit(Config, {rexi_ct_lib, job_slow_stream, []}),
    {W, a} = recv(Ref),
    rexi:stream_ack(W, 2),                      % one more ack than rows
    {rexi_EXIT, {mismatched_rexi_ack, [_ | _]}} = recv(Ref).

stream_timeout(Config) ->
    %% a worker that streams with a 200 ms ack timeout and limit 1
    Ref = doit(Config, {rexi, stream, [row, 1, 200]}),
    {_W, row} = recv(Ref),
    %% the job ends normally after its one row (under the limit, no wait): once
    %% the server has no job left it has seen that end, and anything it or the
    %% worker sent for Ref crossed the one connection before its reply
    ok = no_jobs(Config),
    quiet(Ref),
    Ref2 = doit(Config, {rexi_ct_lib, job_stream_limit1, []}),
    {_, 1} = recv(Ref2),
    {rexi_EXIT, {timeout, [_ | _]}} = recv(Ref2).

recv_loop(Config) ->
    N = node_of(Config),
    Workers = [{w, rpc:call(N, rexi, cast, [N, self(), {rexi_node, echo, [I]}])} || I <- [1, 2, 3]],
    self() ! {rexi, '$rexi_ping'},
    self() ! {make_ref(), stray},
    Fun = fun(Msg, {w, _}, Acc) ->
                  case [Msg | Acc] of L when length(L) =:= 3 -> {stop, L}; L -> {ok, L} end
          end,
    {ok, Got} = rexi_utils:recv(Workers, 2, Fun, [], 5000, 2000),
    [1, 2, 3] = lists:sort(Got),
    {timeout, []} = rexi_utils:recv(Workers, 2, Fun, [], 100, infinity),
    {timeout, []} = rexi_utils:recv(Workers, 2, Fun, [], infinity, 100).

names_by_release(Config) ->
    N = node_of(Config),
    Per = rexi_ct_lib:per_node_name(N),
    [{rexi_server, N}, {rexi_server, N}, {Per, N}, {Per, N}] =
        [begin ok = rpc:call(N, application, set_env, [rexi, release, R]),
               rpc:call(N, rexi_utils, server_pid, [N])
         end || R <- [0, 1, 2, 3]],
    ok = rpc:call(N, application, set_env, [rexi, release, 1]),
    %% phash2 test vectors of docs/design/migration.md section 8
    'rexi_server_112927441' = rexi_ct_lib:per_node_name('rust@127.0.0.1'),
    'rexi_server_41428801' = rexi_ct_lib:per_node_name('a@127.0.0.1').

release_switch(Config) ->
    T = ?config(t, Config),
    N = node_of(Config),
    Regs = fun() -> lists:sort([X || X <- rpc:call(N, erlang, registered, []),
                                     lists:prefix("rexi", atom_to_list(X))]) end,
    Per = rexi_ct_lib:per_node_name(N),
    ok = rexi_ct_lib:set_release(T, 0),
    [rexi_server, rexi_sup] = Regs(),
    ok = rexi_ct_lib:set_release(T, 1),
    ok = rexi_ct_lib:wait_ready(T, 5000),       % check_at_init: no 60 s gap
    true = lists:member(Per, Regs()) andalso lists:member(rexi_server, Regs()),
    ok = rexi_ct_lib:set_release(T, 3),
    false = lists:member(rexi_server, Regs()),
    answered = rpc:call(N, rexi_traffic, probe, [N, self_cast, 2000]),
    ok = rexi_ct_lib:set_release(T, 1).

%% The reason for release 2's double kill: a job cast under R1 (to the
%% singleton) and killed after the caller moved to R2 is still killed; an R3
%% caller's kill (per-node name only) misses it and the job runs on. The ct
%% node is the caller here (the rexi app need not run on it; only its env).
r2_double_kill(Config) ->
    N = node_of(Config),
    ok = rexi_ct_lib:wait_ready(?config(t, Config), 5000),
    try
        Kill = fun(CallerRelease) ->
                       ok = application:set_env(rexi, release, 1),
                       Ref = rexi:cast(N, {rexi_node, sleep, [400]}),
                       ok = application:set_env(rexi, release, CallerRelease),
                       ok = rexi:kill(N, Ref),
                       %% a job that was not killed answers at 400 ms, before the marker
                       {slept, 600} = recv(doit(Config, {rexi_node, sleep, [600]})),
                       receive {Ref, R} -> R after 0 -> nothing end
               end,
        nothing = Kill(2),
        {slept, 400} = Kill(3)
    after
        application:unset_env(rexi, release)
    end.
