%% @doc The three-release migration between BEAM nodes (docs/design/migration.md).
%%
%% matrix: caller release x target release, 4x4, on fresh nodes started with
%%   `-rexi release N' (the "restart with another setting" path). The four
%%   non-adjacent mixes docs/design/migration.md lists lose the cast, all others deliver.
%% rolling_upgrade: three nodes go 0 -> 1 -> 2 -> 3 one node at a time, in
%%   place (rexi_release:set/1), under continuous cast traffic from every
%%   node to every node; zero lost casts at every step.
%% non_adjacent_jump: negative control for the traffic harness; a node
%%   jumping R1 -> R3 in place makes the R1 node's casts to it get lost.
%% upgrade_gap: the seed's check_nodes window after an in-place R0 -> R1
%%   upgrade: per-node servers of already-connected peers are missing until
%%   the first tick (60 s) or the next nodeup of any node, so an R2 caller's
%%   cast is lost meanwhile.
%%
%% Targets are the maps of rexi_ct_lib, so a Rust target (kind rust) can be
%% appended to the cluster of rolling_upgrade: the traffic generators cast to
%% every target, releases are changed through rexi_ct_lib:set_release/2 and
%% readiness through rexi_ct_lib:wait_ready/2.
-module(rexi_migration_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([matrix/1, rolling_upgrade/1, non_adjacent_jump/1, upgrade_gap/1,
         rust_target_matrix/1, migrate_check_agrees/1, rolling_upgrade_with_rust/1]).
-export([rolling_upgrade/2, run_traffic/2]).

-define(CHECK_MS, 500).         % check_interval_ms for the peers
-define(ANSWER_MS, 10000).      % a probe's cast that was delivered must be answered by then
-define(STEP_MS, 1500).         % traffic time per rolling step
-define(PERIOD_MS, 50).         % traffic: one cast per target every 50 ms
-define(REPLY_TIMEOUT_MS, 2000).% traffic: unanswered after 2 s = lost

suite() ->
    [{timetrap, {minutes, 5}}].

all() ->
    [matrix, rolling_upgrade, non_adjacent_jump, upgrade_gap,
     rust_target_matrix, migrate_check_agrees, rolling_upgrade_with_rust].

init_per_suite(Config) ->
    Config.

end_per_suite(_Config) ->
    ok.

init_per_testcase(_Case, Config) ->
    Config.

end_per_testcase(_Case, _Config) ->
    %% every case stops the nodes it started itself (try ... after)
    ok.

%% ---------------------------------------------------------------------------
%% matrix

%% caller -> target mixes that lose a doit (docs/design/migration.md section 2 / 7)
expected(2, 0) -> lost;
expected(3, 0) -> lost;
expected(0, 3) -> lost;
expected(1, 3) -> lost;
expected(_, _) -> answered.

matrix(_Config) ->
    Rs = [0, 1, 2, 3],
    Env = fun(R) -> [{release, R}, {check_interval_ms, ?CHECK_MS}] end,
    Callers = [{R, rexi_ct_lib:start_beam(name("mc", R), Env(R))} || R <- Rs],
    Targets = [{R, rexi_ct_lib:start_beam(name("mt", R), Env(R))} || R <- Rs],
    try
        [rexi_ct_lib:connect(C, T) || {_, C} <- Callers, {_, T} <- Targets],
        %% the footnote of the table: cast only once the target's
        %% rexi_server_mon has started the callers' per-node servers
        [ok = rexi_ct_lib:wait_ready(T, 10000) || {_, T} <- Targets],
        Results =
            [{RC, RT, probe(C, T, {RC, RT})} || {RC, C} <- Callers, {RT, T} <- Targets],
        Table = matrix_table("caller\\target", Rs, Results, fun expected/2),
        report("doit delivery, caller release x target release "
               "(\"!\" marks a result that differs from docs/design/migration.md)", Table),
        Wrong = [{RC, RT, R} || {RC, RT, R} <- Results, R =/= expected(RC, RT)],
        [] = Wrong
    after
        [rexi_ct_lib:stop(T) || {_, T} <- Callers ++ Targets]
    end.

%% rexi-node as the target at each of its releases (switched at runtime), against BEAM
%% callers of every release. It serves every name itself, so every cast the protocol
%% allows is answered: only R0/R1 callers (which use the singleton) lose their casts to
%% a rexi-node at release 3, where the singleton is retired, as docs/design/migration.md says for
%% any R3 target.
rust_target_matrix(_Config) ->
    Rs = [0, 1, 2, 3],
    Env = fun(R) -> [{release, R}, {check_interval_ms, ?CHECK_MS}] end,
    Callers = [{R, rexi_ct_lib:start_beam(name("rc", R), Env(R))} || R <- Rs],
    Rust = rexi_ct_lib:start_rust(rust_matrix, 1),
    try
        [rexi_ct_lib:connect(C, Rust) || {_, C} <- Callers],
        Results =
            lists:append(
              [begin
                   ok = rexi_ct_lib:set_release(Rust, RT),
                   ok = rexi_ct_lib:wait_ready(Rust, 10000),
                   [{RC, RT, probe(C, Rust, {RC, RT})} || {RC, C} <- Callers]
               end || RT <- Rs]),
        Table = matrix_table("caller\\rexi-node", Rs, Results, fun expected_rust/2),
        report("doit delivery to rexi-node, caller release x rexi-node release "
               "(\"!\" marks a result that differs from docs/design/migration.md)", Table),
        Wrong = [{RC, RT, R} || {RC, RT, R} <- Results, R =/= expected_rust(RC, RT)],
        [] = Wrong
    after
        rexi_ct_lib:stop(Rust),
        [rexi_ct_lib:stop(C) || {_, C} <- Callers]
    end.

%% `rexi-node migrate-check A B` on pairs of BEAM nodes at every pair of releases must
%% say "loses casts" (exit 1) exactly when this harness measures a loss in either
%% direction between A and B, and "consistent" (exit 0) otherwise.
migrate_check_agrees(_Config) ->
    Bin = rexi_ct_lib:rust_bin(),
    Rs = [0, 1, 2, 3],
    Env = fun(R) -> [{release, R}, {check_interval_ms, ?CHECK_MS}] end,
    Ns = [{R, rexi_ct_lib:start_beam(name("mk", R), Env(R))} || R <- Rs],
    try
        [rexi_ct_lib:connect(A, B) || {_, A} <- Ns, {_, B} <- Ns, A =/= B],
        [ok = rexi_ct_lib:wait_ready(T, 10000) || {_, T} <- Ns],
        Lost = maps:from_list([{{RA, RB}, probe(A, B, {mk, RA, RB}) =/= answered}
                               || {RA, A} <- Ns, {RB, B} <- Ns, RA =/= RB]),
        Rows = [{RA, RB, maps:get({RA, RB}, Lost) orelse maps:get({RB, RA}, Lost),
                 migrate_check(Bin, [A, B])}
                || {RA, A} <- Ns, {RB, B} <- Ns, RA < RB],
        Table = rexi_ct_lib:fmt_table(
                  ["pair", "measured", "migrate-check exit"],
                  [[io_lib:format("R~p+R~p", [RA, RB]),
                    case M of true -> "loses casts"; false -> "no loss" end,
                    integer_to_list(E)] || {RA, RB, M, E} <- Rows]),
        report("migrate-check verdicts against measured losses (BEAM pairs)", Table),
        Wrong = [Row || {_, _, M, E} = Row <- Rows, E =/= exit_for(M)],
        [] = Wrong,
        %% the whole mixed cluster loses casts today
        1 = migrate_check(Bin, [T || {_, T} <- Ns])
    after
        [rexi_ct_lib:stop(T) || {_, T} <- Ns]
    end.

exit_for(true) -> 1;
exit_for(false) -> 0.

migrate_check(Bin, Targets) ->
    Args = ["migrate-check", "--cookie", atom_to_list(erlang:get_cookie())]
        ++ [atom_to_list(N) || #{node := N} <- Targets],
    Port = open_port({spawn_executable, Bin}, [{args, Args}, exit_status, stderr_to_stdout, binary]),
    collect_exit(Port, <<>>).

collect_exit(Port, Acc) ->
    receive
        {Port, {data, D}} -> collect_exit(Port, <<Acc/binary, D/binary>>);
        {Port, {exit_status, S}} -> ct:log("~s", [Acc]), S
    after 60000 -> ct:log("~s", [Acc]), timeout
    end.

%% A C-node serves every name at every release: the only losses are casts to the
%% singleton once it is retired (release 3).
expected_rust(RC, 3) when RC =< 1 -> lost;
expected_rust(_, _) -> answered.

%% One row per caller release, one column per target release; "!" marks a cell that
%% differs from what Expected says.
matrix_table(Corner, Rs, Results, Expected) ->
    Rows = [[io_lib:format("R~p", [RC]) |
             [atom_to_list(R) ++ mark(R, Expected(RC, RT))
              || {RC1, RT, R} <- Results, RC1 =:= RC]] || RC <- Rs],
    rexi_ct_lib:fmt_table([Corner | [io_lib:format("R~p", [R]) || R <- Rs]], Rows).

mark(R, R) -> "";
mark(_, _) -> "!".

probe(#{node := C}, #{node := T}, Tag) ->
    rpc:call(C, rexi_traffic, probe, [T, {probe, Tag}, ?ANSWER_MS]).

name(Prefix, R) ->
    list_to_atom(Prefix ++ integer_to_list(R)).

%% ---------------------------------------------------------------------------
%% rolling upgrade

%% Which in-place steps are safe (each node switches alone, callers read the
%% release on every cast):
%%  * R0 -> R1 on X only adds servers (after the next nodeup/tick); every
%%    caller still uses the singleton. Safe at any time.
%%  * R1 -> R2 on X: X now casts to rexi_server_<phash2(X)> on every target,
%%    so every target must already be at R1+ AND have started that server:
%%    barrier "all nodes R1 and every rexi_server_mon status ok" before the
%%    first R2 step (run_steps waits for it). X's kills of jobs it cast under
%%    R1 reach the singleton through the double kill.
%%  * R2 -> R3 on X removes X's singleton: no caller may still use it, so
%%    barrier "all nodes R2" (the step order gives it; the previous step ran
%%    STEP_MS, longer than any cast takes to arrive). A singleton stopped with
%%    requests still in its mailbox would drop them, and its running workers
%%    become orphans (no rexi_EXIT, kills ignored).
%% The cluster thus never holds two non-adjacent releases at once.
rolling_upgrade(Config) ->
    Names = [n1, n2, n3],
    Env = [{release, 0}, {check_interval_ms, ?CHECK_MS}],
    Targets = [rexi_ct_lib:start_beam(N, Env) || N <- Names],
    try
        rolling_upgrade(Targets, Config)
    after
        [rexi_ct_lib:stop(T) || T <- Targets]
    end.

%% @doc The same rolling upgrade with the Rust daemon as a fourth, hidden
%% target (REXI_NODE_BIN must name the binary). BEAM callers
%% connect to it explicitly (rexi:cast/2 does not auto-connect), BEAM nodes
%% start no per-node servers for it (it is hidden and never a caller), and it
%% changes release through {set_release, N} on its rexi_server_mon.
rolling_upgrade_with_rust(Config) ->
    _ = rexi_ct_lib:rust_bin(),               % fails here, before any node starts, without it
    Env = [{release, 0}, {check_interval_ms, ?CHECK_MS}],
    Beams = [rexi_ct_lib:start_beam(N, Env) || N <- [r1, r2, r3]],
    try
        Rust = rexi_ct_lib:start_rust(rust, 0),
        try rolling_upgrade(Beams ++ [Rust], Config)
        after rexi_ct_lib:stop(Rust)
        end
    after
        [rexi_ct_lib:stop(T) || T <- Beams]
    end.

%% @doc The body, for any list of targets (BEAM and others). Casts go from
%% every BEAM target to every target.
rolling_upgrade(Targets, _Config) ->
    [ok = rexi_ct_lib:set_release(T, 0) || T <- Targets, not rexi_ct_lib:is_beam(T)],
    Steps = [{"all R0", none, 0}] ++
            [{step_name(T, R), T, R} || R <- [1, 2, 3], T <- Targets],
    Tables = run_traffic(Targets, Steps),
    Summary = rexi_ct_lib:fmt_table(
                ["step", "sent", "answered", "lost", "bad", "dup"],
                [[Name | tuple_to_list(Tot)] || {Name, Tot, _, _} <- Tables]),
    report("rolling upgrade 0 -> 3, totals per step", Summary),
    case lists:append([Problems || {_, _, Problems, _} <- Tables]) of
        [] -> ok;
        Bad -> ct:fail({lost_or_unanswered_casts, Bad})
    end.

%% @doc Negative control for the traffic harness: a non-adjacent in-place
%% jump R1 -> R3 under traffic. R1 callers keep casting to the singleton the
%% jumped node no longer has, and the generators must count those as lost.
non_adjacent_jump(Config) ->
    Env = [{release, 1}, {check_interval_ms, ?CHECK_MS}],
    Targets = [J, K] = [rexi_ct_lib:start_beam(N, Env) || N <- [j1, j2]],
    try
        [ok = rexi_ct_lib:wait_ready(T, 10000) || T <- Targets],
        Tables = run_traffic(Targets, [{"all R1", none, 1}, {step_name(J, 3), J, 3}]),
        #{node := JN} = J, #{node := KN} = K,
        [{_, _, [], _}, {_, _, _, Rows}] = Tables,
        %% a cast or two sent just before the switch may still be answered
        [{KN, JN, Sent, Ans, Lost, 0, 0, 0}] = [R || R = {KN1, JN1, _, _, _, _, _, _} <- Rows,
                                                     KN1 =:= KN, JN1 =:= JN],
        true = Lost > 0 andalso Ans + Lost =:= Sent andalso Ans =< 2,
        [{JN, KN, S2, S2, 0, 0, 0, 0}] = [R || R = {JN1, KN1, _, _, _, _, _, _} <- Rows,
                                               JN1 =:= JN, KN1 =:= KN],
        report("non-adjacent jump R1 -> R3 under traffic",
               io_lib:format("~p -> ~p: ~p sent, ~p lost, ~p answered before the switch "
                             "(docs/design/migration.md: R1->R3 loses); "
                             "~p -> ~p: ~p sent, all answered",
                             [KN, JN, Sent, Lost, Ans, JN, KN, S2])),
        _ = Config,
        ok
    after
        [rexi_ct_lib:stop(T) || T <- Targets]
    end.

%% @doc Run cast traffic from every BEAM target to every target through
%% `Steps' ({Name, Target | none, Release}); returns per step
%% {Name, {Sent, Answered, Lost, Bad}, Problems, Rows} after printing the
%% step's table.
run_traffic(Targets, Steps) ->
    ok = rexi_ct_lib:mesh(Targets),
    Nodes = [N || #{node := N} <- Targets],
    Callers = [N || #{node := N} <- rexi_ct_lib:callers(Targets)],
    [rpc:call(C, rexi_traffic, start, [Nodes, ?PERIOD_MS, ?REPLY_TIMEOUT_MS])
     || C <- Callers],
    try
        Done = run_steps(Steps, 0, Callers, Targets),
        %% drain: new casts count under a step of their own; wait until every
        %% cast of the reported steps has resolved and a marker cast to every
        %% target came back after them (so late duplicates are counted too)
        [rexi_traffic:set_step(C, drain) || C <- Callers],
        Settled = [{C, rexi_traffic:settle(C, 3 * ?REPLY_TIMEOUT_MS + 5000)} || C <- Callers],
        ct:log("settled: ~p", [Settled]),
        [step_table(I, Name, Callers, Nodes) || {I, Name} <- Done]
    after
        [rexi_traffic:stop(C) || C <- Callers]
    end.

step_name(#{node := N}, R) ->
    lists:flatten(io_lib:format("~s -> R~p", [N, R])).

run_steps([], _I, _Callers, _Targets) ->
    [];
run_steps([{Name, T, R} | Rest], I, Callers, Targets) ->
    [rexi_traffic:set_step(C, I) || C <- Callers],
    %% Before the first node moves to R2 (starts casting to per-node names),
    %% every target must have a per-node server for every caller; the
    %% rexi_server_mon status "ok" says so. R3 needs the same (and all
    %% callers at R2 already, which the step order gives).
    case R >= 2 of
        true -> [ok = rexi_ct_lib:wait_ready(X, 10000) || X <- Targets];
        false -> ok
    end,
    case T of
        none -> ok;
        _ -> ok = rexi_ct_lib:set_release(T, R)
    end,
    timer:sleep(?STEP_MS),
    [{I, Name} | run_steps(Rest, I + 1, Callers, Targets)].

%% One table per step: sent / answered / lost / bad / duplicates per ordered pair.
step_table(I, Name, Callers, Nodes) ->
    Rows = lists:append(
             [begin
                  {Pending, Counts} = rexi_traffic:counts(C, I),
                  [{C, T, S, A, L, B, D, Pending} || {T, {S, A, L, B, D}} <- Counts]
              end || C <- Callers]),
    Text = rexi_ct_lib:fmt_table(
             ["caller", "target", "sent", "answered", "lost", "bad", "dup", "pending"],
             [[C, T, S, A, L, B, D, P] || {C, T, S, A, L, B, D, P} <- Rows]),
    report(io_lib:format("step ~p: ~s", [I, Name]), Text),
    Tot = lists:foldl(fun({_, _, S, A, L, B, D, _}, {S0, A0, L0, B0, D0}) ->
                              {S0 + S, A0 + A, L0 + L, B0 + B, D0 + D}
                      end, {0, 0, 0, 0, 0}, Rows),
    Problems = [{Name, C, T, {sent, S}, {answered, A}, {lost, L}, {bad, B}, {dup, D},
                 {pending, P}}
                || {C, T, S, A, L, B, D, P} <- Rows,
                   S =:= 0 orelse A =/= S orelse L =/= 0 orelse B =/= 0 orelse D =/= 0
                   orelse P =/= 0],
    Seen = [{C, T} || {C, T, _, _, _, _, _, _} <- Rows],
    Missing = [{Name, C, T, no_casts} || C <- Callers, T <- Nodes,
                                         not lists:member({C, T}, Seen)],
    {Name, Tot, Problems ++ Missing, Rows}.

%% ---------------------------------------------------------------------------
%% the check_nodes window after an in-place R0 -> R1 upgrade

upgrade_gap(_Config) ->
    %% the target keeps the seed's 60 s tick
    T = rexi_ct_lib:start_beam(gap_t, [{release, 0}]),
    C = rexi_ct_lib:start_beam(gap_c, [{release, 2}, {check_interval_ms, ?CHECK_MS}]),
    try upgrade_gap(T, C)
    after [rexi_ct_lib:stop(X) || X <- [T, C]]
    end.

upgrade_gap(T, C) ->
    ok = rexi_ct_lib:connect(C, T),
    lost = probe(C, T, r2_to_r0),               % R2 -> R0: lost
    ok = rexi_ct_lib:set_release(T, 1),         % in place, peers connected
    ok = rexi_ct_lib:set_release(T, 2),
    {waiting, N} = rexi_ct_lib:status(T),
    lost = probe(C, T, during_gap),             % no rexi_server_<phash2(C)> yet
    %% a fresh connection produces a nodeup, and the monitor then starts
    %% every missing server (not only the new node's), which ends the gap
    %% before the 60 s tick
    D = rexi_ct_lib:start_beam(gap_d, [{release, 2}, {check_interval_ms, ?CHECK_MS}]),
    try
        ok = rexi_ct_lib:connect(D, T),
        answered = wait_answered(D, T, 20)
    after
        rexi_ct_lib:stop(D)
    end,
    ok = rexi_ct_lib:status(T),
    answered = probe(C, T, after_nodeup),
    report("in-place R0 -> R2 upgrade with the seed's 60 s check_nodes tick",
           io_lib:format("status after upgrade: {waiting, ~p}; cast from an already-connected "
                         "R2 caller: lost; after another node connects (nodeup): status ok, "
                         "both callers answered", [N])).

wait_answered(C, T, 0) -> probe(C, T, retry);
wait_answered(C, T, N) ->
    case probe(C, T, retry) of
        answered -> answered;
        _ -> timer:sleep(100), wait_answered(C, T, N - 1)
    end.

report(Title, Text) ->
    ct:pal("~s~n~s~n", [Title, Text]),
    ct:log("~s~n~s~n", [Title, Text]).
