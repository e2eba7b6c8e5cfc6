%% @doc Helpers shared by the rexi suites. Runs on the ct node.
%%
%% A *target* is a map describing a node that serves rexi requests:
%%   #{kind := beam, node := Node, peer := PeerPid}
%%   #{kind := rust, node := Node, port := Port, os_pid := OsPid}
%% Callers (traffic generators, probes) only run on BEAM targets. Everything
%% that differs between a BEAM and a Rust target goes through this module:
%% start/stop, set_release/2, status/1, wait_ready/2, connect/2, so a suite
%% can add a Rust target to a BEAM cluster by adding one map.
-module(rexi_ct_lib).

-export([ebin/0, start_beam/2, start_beam/3, start_rust/2, start_rust/3, rust_bin/0, stop/1,
         kill_rust/1, load_on/2,
         set_release/2, release/1, status/1, wait_ready/2, wait_ready/3,
         connect/2, mesh/1, is_beam/1, callers/1, per_node_name/1,
         nodename_name/1, fmt_table/2]).
%% job bodies used by rexi_server_SUITE (this module is loaded on peers)
-export([job_suicide/0, job_slow_stream/0, job_stream_limit1/0]).

-define(HOST, "127.0.0.1").

ebin() ->
    filename:dirname(code:which(rexi)).

%% @doc Start a BEAM peer `Name@127.0.0.1' running the rexi application with
%% the given app env (e.g. [{release, 2}, {check_interval_ms, 500}]), and
%% load the test helper modules into it.
start_beam(Name, Env) ->
    start_beam(Name, Env, []).

%% @doc start_beam/2 with more `erl' arguments, e.g. ["+zdbbl", "1"].
start_beam(Name, Env, ExtraArgs) ->
    EnvArgs = lists:append([["-rexi", atom_to_list(K), lists:flatten(io_lib:format("~p", [V]))]
                            || {K, V} <- Env]),
    {ok, Peer, Node} =
        peer:start(#{name => Name, host => ?HOST, longnames => true,
                     args => ["-pa", ebin(),
                              "-setcookie", atom_to_list(erlang:get_cookie())
                              | EnvArgs ++ ExtraArgs]}),
    [load_on(Node, M) || M <- [rexi_traffic, ?MODULE]],
    {ok, _} = rpc:call(Node, application, ensure_all_started, [rexi]),
    #{kind => beam, node => Node, peer => Peer}.

load_on(Node, Mod) ->
    {Mod, Bin, File} = code:get_object_code(Mod),
    {module, Mod} = rpc:call(Node, code, load_binary, [Mod, File, Bin]).

%% @doc The rexi-node binary named by env REXI_NODE_BIN (scripts/ct makes it absolute and
%% checks it). There is no default: a case that tests the daemon fails, loudly, without it,
%% rather than testing a stale build or skipping.
rust_bin() ->
    case os:getenv("REXI_NODE_BIN") of
        Bin when is_list(Bin), Bin =/= "" ->
            case filelib:is_regular(Bin) of
                true -> Bin;
                false -> ct:fail({rexi_node_bin_missing, Bin})
            end;
        _ ->
            ct:fail("REXI_NODE_BIN is not set: this case runs against the rexi-node binary; "
                    "run it through scripts/ct with REXI_NODE_BIN=target/release/rexi-node")
    end.

%% @doc Start the Rust daemon as `Name@127.0.0.1' at release `Release'
%% (ERL_EPMD_PORT is inherited) and wait until it answers a ping. The port
%% is owned by a keeper process that outlives the calling process (e.g.
%% init_per_suite) and logs the daemon's output.
start_rust(Name, Release) ->
    start_rust(Name, Release, []).

%% @doc start_rust/2 with more `rexi-node run' arguments, e.g. ["--visible"].
start_rust(Name, Release, ExtraArgs) ->
    Bin = rust_bin(),
    Node = list_to_atom(atom_to_list(Name) ++ "@" ++ ?HOST),
    Args = ["run", "--name", atom_to_list(Node),
            "--cookie", atom_to_list(erlang:get_cookie()),
            "--release", integer_to_list(Release) | ExtraArgs],
    Parent = self(),
    Ref = make_ref(),
    Keeper = spawn(fun() -> keeper(Parent, Ref, Bin, Args) end),
    receive
        {Ref, {ok, Port, OsPid}} ->
            T = #{kind => rust, node => Node, port => Port, os_pid => OsPid,
                  keeper => Keeper},
            case wait_pong(Node, Keeper, 100) of
                ok ->
                    %% a pong can come before the daemon's names exist
                    ok = wait_ready(T, 10000, fun(S) -> S =/= noproc end),
                    T;
                Error -> stop(T), erlang:error({rexi_node_did_not_start, Bin, Error})
            end;
        {Ref, {error, E}} ->
            erlang:error({rexi_node_did_not_start, Bin, E})
    after 10000 ->
        erlang:error({rexi_node_did_not_start, Bin, keeper_timeout})
    end.

keeper(Parent, Ref, Bin, Args) ->
    try open_port({spawn_executable, Bin},
                  [{args, Args}, exit_status, use_stdio, stderr_to_stdout,
                   binary, {line, 4096}]) of
        Port ->
            {os_pid, OsPid} = erlang:port_info(Port, os_pid),
            Parent ! {Ref, {ok, Port, OsPid}},
            keeper_loop(Port, OsPid)
    catch
        _:E -> Parent ! {Ref, {error, E}}
    end.

keeper_loop(Port, OsPid) ->
    receive
        {Port, {data, {_, Line}}} ->
            ct:log("rexi-node ~p: ~s", [OsPid, Line]),
            keeper_loop(Port, OsPid);
        {Port, {exit_status, S}} ->
            ct:log("rexi-node ~p exited with status ~p", [OsPid, S]);
        stop ->
            catch port_close(Port),
            _ = os:cmd("kill " ++ integer_to_list(OsPid)),   % only the pid we started
            ok
    end.

wait_pong(_Node, _Keeper, 0) ->
    timeout;
wait_pong(Node, Keeper, N) ->
    case is_process_alive(Keeper) of
        false -> exited;
        true ->
            case net_adm:ping(Node) of
                pong -> ok;
                pang -> timer:sleep(100), wait_pong(Node, Keeper, N - 1)
            end
    end.

stop(#{kind := beam, peer := Peer}) ->
    catch peer:stop(Peer),
    ok;
stop(#{kind := rust, keeper := Keeper}) ->
    %% the keeper closes the port and kills the daemon's OS pid, unless the
    %% daemon has already exited (then the keeper is gone too)
    Mon = erlang:monitor(process, Keeper),
    Keeper ! stop,
    receive {'DOWN', Mon, _, _, _} -> ok after 5000 -> ok end.

%% @doc Kill the daemon with SIGKILL (a crash: no goodbye on any connection)
%% and wait until its keeper has seen it exit.
kill_rust(#{kind := rust, os_pid := OsPid, keeper := Keeper}) ->
    Mon = erlang:monitor(process, Keeper),
    _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),   % only the pid we started
    receive {'DOWN', Mon, _, _, _} -> ok
    after 10000 -> erlang:error({rexi_node_did_not_exit, OsPid})
    end.

%% @doc Change a target's release at runtime.
set_release(#{kind := beam, node := Node}, R) ->
    ok = rpc:call(Node, rexi_release, set, [R]);
set_release(#{kind := rust, node := Node}, R) ->
    ok = gen_server:call({rexi_server_mon, Node}, {set_release, R}).

release(#{kind := beam, node := Node}) ->
    rpc:call(Node, rexi_release, get, []);
release(#{kind := rust, node := Node}) ->
    maps:get(release, to_map(gen_server:call({rexi_server_mon, Node}, stats)), unknown).

to_map(M) when is_map(M) -> M;
to_map(L) when is_list(L) -> maps:from_list(L).

%% @doc rexi_server_mon status: ok | {waiting, N} | no_mon (R0 BEAM).
status(#{kind := beam, node := Node}) ->
    case rpc:call(Node, erlang, whereis, [rexi_server_mon]) of
        undefined -> no_mon;
        _ -> rpc:call(Node, rexi_server_mon, status, [])
    end;
status(#{kind := rust, node := Node}) ->
    gen_server:call({rexi_server_mon, Node}, status).

%% @doc Wait until the target serves every caller's per-node name (status
%% ok), or for a BEAM R0 target, which has no monitor, return at once.
wait_ready(T, TimeoutMs) ->
    wait_ready(T, TimeoutMs, fun(S) -> S =:= ok orelse S =:= no_mon end).

%% (a Ready fun sees `noproc' while the target has no rexi_server_mon yet)
wait_ready(T, TimeoutMs, Ready) ->
    Deadline = erlang:monotonic_time(millisecond) + TimeoutMs,
    wait_ready_loop(T, Deadline, Ready).

wait_ready_loop(T, Deadline, Ready) ->
    S = try status(T) catch exit:{noproc, _} -> noproc end,
    case Ready(S) of
        true -> ok;
        false ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> {not_ready, maps:get(node, T), S};
                false -> timer:sleep(100), wait_ready_loop(T, Deadline, Ready)
            end
    end.

%% @doc Connect the BEAM caller `C' to target `T'. Needed for a hidden
%% (Rust) target: rexi:cast/2 sends with noconnect.
connect(#{node := C}, #{node := T}) ->
    true = rpc:call(C, net_kernel, connect_node, [T]),
    ok.

%% @doc Connect every BEAM node to every target.
mesh(Targets) ->
    [connect(C, T) || C <- callers(Targets), T <- Targets, C =/= T],
    ok.

is_beam(#{kind := K}) -> K =:= beam.

callers(Targets) -> [T || T <- Targets, is_beam(T)].

per_node_name(CallerNode) ->
    list_to_atom("rexi_server_" ++ integer_to_list(erlang:phash2(CallerNode))).

nodename_name(CallerNode) ->
    list_to_atom("rexi_server_" ++ atom_to_list(CallerNode)).

%% @doc Format rows (lists of terms) under a header as a text table.
fmt_table(Header, Rows) ->
    Cells = [[to_s(C) || C <- R] || R <- [Header | Rows]],
    Widths = lists:foldl(fun(R, W) -> [max(length(C), X) || {C, X} <- lists:zip(R, W)] end,
                         [0 || _ <- Header], Cells),
    Lines = [string:join([string:pad(C, X) || {C, X} <- lists:zip(R, Widths)], "  ")
             || R <- Cells],
    lists:flatten(lists:join("\n", Lines)).

to_s(A) when is_atom(A) -> atom_to_list(A);
to_s(I) when is_integer(I) -> integer_to_list(I);
to_s(S) when is_list(S) -> S;
to_s(T) -> lists:flatten(io_lib:format("~p", [T])).

%% ---- job bodies, run as rexi MFAs on peers ------------------------------

%% killed by an exit signal from outside the MFA's try: raw reason `killed'
job_suicide() ->
    exit(self(), kill).

%% two v1 rows 200 ms apart, then done
job_slow_stream() ->
    rexi:stream(a),
    timer:sleep(200),
    rexi:stream(b),
    rexi:reply(done).

%% limit 1 and a 200 ms ack timeout: the second row waits, then exit(timeout)
job_stream_limit1() ->
    rexi:stream(1, 1, 200),
    rexi:stream(2, 1, 200),
    rexi:reply(done).
