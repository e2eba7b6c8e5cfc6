%% @doc Erlang load generator for rexi servers (the BEAM side of scripts/bench).
%%
%% Callers cast doits at {rexi_server, Target} in the shape rexi:cast/2 sends:
%% {'$gen_cast', {doit, {self(), Ref}, undefined, {rexi_node, echo, [Payload]}}}, and time
%% each reply {Ref, Reply} with the monotonic clock. Replies that arrive in the measured
%% window (after the warm-up) count towards throughput and latency.
%%
%%   erl -name G@127.0.0.1 -hidden -setcookie C -noshell -pa DIR -run rexi_bench main \
%%       Target Callers Window Seconds WarmupSeconds PayloadBytes [Rate [TargetOsPid [Pace]]]
%%
%% Two modes:
%%   * closed loop (Rate 0 or absent): each of the Callers keeps Window casts in flight;
%%   * open loop at a fixed Rate casts/s (Window ignored): cast i of caller k is due at the
%%     absolute time T0 + (i * Callers + k) / Rate, whatever the replies do, so a slow server
%%     faces the same arrivals as a fast one. The BEAM's timers wake a caller at millisecond
%%     granularity, so casts leave in the bursts due since the last wake-up; latency is timed
%%     from each cast's actual send, and how late sends left against their schedule is
%%     reported (lag_p99_us, lag_max_us), as is the achieved send rate and its shortfall
%%     against Rate (a generator that cannot keep up says so instead of hiding it).
%%     Pace `spin' sends each cast when it is due instead: a caller with nothing due looks
%%     at its mailbox and yields, never sleeps, so casts arrive evenly spaced and a reply is
%%     taken as it arrives. It keeps the generator's cores busy, so it is for a generator
%%     with a core of its own (the pinned runs); the latency then measures the server, not
%%     the bursts of the millisecond timers. Pace `timer' (the default) is described above.
%%
%% With TargetOsPid (the target's OS process on this machine) the generator also reads the
%% target's CPU time and context switches from /proc at the start and the end of the measured
%% window, and reports them per cast measured in that window: server_cpu_100k (CPU seconds
%% per 100k casts), server_cs_per_cast, and server_busy_pct (CPU seconds per second of the
%% window, in % of one core: well below 100 on a pinned target means the generator, not the
%% server, set the pace). CPU is the sum over the target's threads of
%% /proc/PID/task/TID/schedstat (nanoseconds, unlike the 10 ms ticks of /proc/PID/stat, so
%% 1k casts/s for a few seconds still measures); a thread that exits inside the window takes
%% its share with it, which neither server does under load.
%%
%% The generator's own CPU is read the same way, from its own /proc entry over the same
%% window: gen_cpu_s and gen_busy_pct (% of one core). Near 100 on a pinned generator means
%% the generator, not the server, set the pace. (statistics(runtime) is no substitute: it
%% leaves out the kernel's share, which is about half of what the generator's sends and
%% receives cost: 2.4 s against 5.3 s from time(1) in one pinned run.)
%%
%% Prints a human line and then `BENCH mode=erl|erl_rate throughput=... p50_us=... ...', and
%% halts with status 0 (1 when the target could not be reached or casts got no reply).
%%
%% Also: `-run rexi_bench schedulers Target N' sets the target BEAM's schedulers_online.
-module(rexi_bench).
-export([main/1, schedulers/1]).

-record(r, {dest, mfa, hz, step, k, t0, rec_start, rec_end, pace = timer,
            i = 0, in_flight = 0, sent = 0, sent_in = 0, measured = 0,
            lats = [], lags = []}).

main([Target, C, W, Secs, Warm, Payload | Opt]) ->
    {Rate, OsPid, Pace} = case Opt of
                              [] -> {0.0, 0, timer};
                              [R] -> {to_float(R), 0, timer};
                              [R, P] -> {to_float(R), list_to_integer(P), timer};
                              [R, P, Pc | _] -> {to_float(R), list_to_integer(P), pace(Pc)}
                          end,
    Code = try run(list_to_atom(Target), list_to_integer(C), list_to_integer(W),
                   to_float(Secs), to_float(Warm), list_to_integer(Payload), Rate,
                   {OsPid, Pace}) of
               ok -> 0;
               {error, Why} -> io:format(standard_error, "rexi_bench: ~s~n", [Why]), 1
           catch Class:Reason:Stack ->
               io:format(standard_error, "rexi_bench: ~p:~p ~p~n", [Class, Reason, Stack]), 1
           end,
    erlang:halt(Code).

schedulers([Target, N]) ->
    T = list_to_atom(Target),
    Code = case net_kernel:connect_node(T) of
               true ->
                   case rpc:call(T, erlang, system_flag,
                                 [schedulers_online, list_to_integer(N)]) of
                       Old when is_integer(Old) -> 0;
                       Bad -> io:format(standard_error, "rexi_bench: ~s: ~p~n", [Target, Bad]), 1
                   end;
               _ -> io:format(standard_error, "rexi_bench: cannot connect to ~s~n", [Target]), 1
           end,
    erlang:halt(Code).

pace("timer") -> timer;
pace("spin") -> spin;
pace(Other) -> erlang:error({bad_pace, Other, "expected timer or spin"}).

to_float(S) ->
    try list_to_float(S) catch error:badarg -> float(list_to_integer(S)) end.

run(Target, C, W, Secs, Warm, Payload, Rate, Opts) ->
    case net_kernel:connect_node(Target) of
        true -> go(Target, C, W, Secs, Warm, Payload, Rate, Opts);
        _ -> {error, io_lib:format("cannot connect to ~s", [Target])}
    end.

go(Target, C, W, Secs, Warm, Payload, Rate, {OsPid, Pace}) ->
    Bin = binary:copy(<<"x">>, Payload),
    Dest = {rexi_server, Target},
    MFA = {rexi_node, echo, [Bin]},
    Hz = erlang:convert_time_unit(1, second, native),
    T0 = erlang:monotonic_time(),
    RecStart = T0 + round(Warm * Hz),
    RecEnd = RecStart + round(Secs * Hz),
    Self = self(),
    Pids = case Rate > 0 of
               false ->
                   [spawn_link(fun() -> caller(Self, Dest, MFA, W, RecStart, RecEnd) end)
                    || _ <- lists:seq(1, C)];
               true ->
                   %% Due times in native units: T0 + (i * C + k) * Hz / Rate, kept exact
                   %% as a rational: step = Hz * C / Rate per cast of one caller.
                   R0 = #r{dest = Dest, mfa = MFA, hz = Hz, step = {Hz, Rate}, pace = Pace,
                           t0 = T0, rec_start = RecStart, rec_end = RecEnd},
                   [spawn_link(fun() -> put(parent, Self), put(callers, C),
                                        rate_loop(R0#r{k = K}) end)
                    || K <- lists:seq(0, C - 1)]
           end,
    {Server, GenCpu} = window(OsPid, RecStart, RecEnd),
    Results = [receive {done, P, Res} -> Res end || P <- Pids],
    report(Target, C, W, Secs, Payload, Rate, Results, Server, GenCpu).

%% /proc figures over the measured window: the target's {CpuSeconds, ContextSwitches} (none
%% without its OS pid) and the generator's own CPU seconds.
window(OsPid, RecStart, RecEnd) ->
    Me = list_to_integer(os:getpid()),
    wait_until(RecStart),
    S0 = OsPid > 0 andalso proc_sample(OsPid),
    {Me0, _} = proc_sample(Me),
    wait_until(RecEnd),
    S1 = OsPid > 0 andalso proc_sample(OsPid),
    {Me1, _} = proc_sample(Me),
    Server = case {S0, S1} of
                 {{Cpu0, Cs0}, {Cpu1, Cs1}} -> {(Cpu1 - Cpu0) / 1.0e9, Cs1 - Cs0};
                 _ -> none
             end,
    {Server, (Me1 - Me0) / 1.0e9}.

wait_until(T) ->
    Ms = erlang:convert_time_unit(T - erlang:monotonic_time(), native, millisecond),
    receive after max(0, Ms) -> ok end.

%% Sum over the target's threads of schedstat run time (ns) and of voluntary plus
%% involuntary context switches.
proc_sample(OsPid) ->
    Dir = "/proc/" ++ integer_to_list(OsPid) ++ "/task",
    {ok, Tids} = file:list_dir(Dir),
    lists:foldl(fun(Tid, {Ns, Cs}) ->
                        T = Dir ++ "/" ++ Tid,
                        {Ns + schedstat_ns(T), Cs + ctx_switches(T)}
                end, {0, 0}, Tids).

schedstat_ns(T) ->
    case file:read_file(T ++ "/schedstat") of
        {ok, B} -> [Ns | _] = binary:split(B, <<" ">>), binary_to_integer(Ns);
        _ -> 0  % the thread ended between list_dir and here
    end.

ctx_switches(T) ->
    case file:read_file(T ++ "/status") of
        {ok, B} ->
            lists:sum([binary_to_integer(V)
                       || L <- binary:split(B, <<"\n">>, [global]),
                          [K, V0] <- [binary:split(L, <<":">>)],
                          K =:= <<"voluntary_ctxt_switches">>
                              orelse K =:= <<"nonvoluntary_ctxt_switches">>,
                          V <- [string:trim(V0)]]);
        _ -> 0
    end.

report(Target, C, W, Secs, Payload, Rate, Results, Server, GenCpu) ->
    Measured = lists:sum([M || {M, _, _, _, _, _, _} <- Results]),
    Sent = lists:sum([S || {_, S, _, _, _, _, _} <- Results]),
    Lost = lists:sum([L || {_, _, L, _, _, _, _} <- Results]),
    Errors = lists:sum([E || {_, _, _, _, E, _, _} <- Results]),
    SentIn = lists:sum([S || {_, _, _, _, _, S, _} <- Results]),
    Lats = lists:sort(lists:append([L || {_, _, _, L, _, _, _} <- Results])),
    Lags = lists:sort(lists:append([L || {_, _, _, _, _, _, L} <- Results])),
    Thr = Measured / Secs,
    Q = fun(Xs, F) -> quantile(Xs, F) / 1000 end,
    Max = fun([]) -> 0.0; (Xs) -> lists:last(Xs) / 1000 end,
    {Mode, ModeText, Extra} =
        case Rate > 0 of
            false -> {erl, io_lib:format("~b callers x ~b in flight", [C, W]), ""};
            true ->
                SentRate = SentIn / Secs,
                Short = max(0.0, 100 * (1 - SentRate / Rate)),
                {erl_rate,
                 io_lib:format("~b callers, fixed ~b casts/s: sent ~b/s (shortfall ~.1f%), "
                               "send lag p99 ~.1f us", [C, round(Rate), round(SentRate), Short,
                                                       Q(Lags, 0.99)]),
                 io_lib:format(" rate=~b sent_rate=~b shortfall_pct=~.1f lag_p99_us=~.1f "
                               "lag_max_us=~.1f",
                               [round(Rate), round(SentRate), Short, Q(Lags, 0.99), Max(Lags)])}
        end,
    ServerText = case Server of
                     none -> "";
                     {Cpu, Cs} when Measured > 0 ->
                         io_lib:format(" server_cpu_s=~.4f server_cpu_100k=~.4f "
                                       "server_cs_per_cast=~.3f server_busy_pct=~.1f",
                                       [Cpu, Cpu / Measured * 100000, Cs / Measured,
                                        100 * Cpu / Secs]);
                     {Cpu, _} ->
                         io_lib:format(" server_cpu_s=~.4f server_cpu_100k=0 "
                                       "server_cs_per_cast=0", [Cpu])
                 end,
    io:format("rexi_bench (erl) -> ~s (~s, payload ~b B): ~b casts/s; "
              "latency p50 ~.1f us, p99 ~.1f us, p99.9 ~.1f us, max ~.1f us; ~b sent, ~b lost~n",
              [Target, ModeText, Payload, round(Thr), Q(Lats, 0.5), Q(Lats, 0.99),
               Q(Lats, 0.999), Max(Lats), Sent, Lost]),
    io:format("BENCH mode=~s throughput=~b p50_us=~.1f p99_us=~.1f p999_us=~.1f max_us=~.1f "
              "measured=~b sent=~b replies=~b errors=~b gen_cpu_s=~.3f gen_busy_pct=~.1f~s~s~n",
              [Mode, round(Thr), Q(Lats, 0.5), Q(Lats, 0.99), Q(Lats, 0.999), Max(Lats),
               Measured, Sent, Sent - Lost, Errors, GenCpu, 100 * GenCpu / Secs, Extra,
               ServerText]),
    case Lost of
        0 -> ok;
        _ -> {error, io_lib:format("~b casts got no reply", [Lost])}
    end.

quantile([], _) -> 0.0;
quantile(Xs, F) ->
    N = length(Xs),
    lists:nth(max(1, min(N, ceil(N * F))), Xs).

%% ---- closed loop: W casts in flight until RecEnd, then drain -------------------------------
caller(Parent, Dest, MFA, W, RecStart, RecEnd) ->
    put(parent, Parent),
    [cast(Dest, MFA) || _ <- lists:seq(1, W)],
    loop(Dest, MFA, RecStart, RecEnd, W, W, 0, []),
    ok.

cast(Dest, MFA) ->
    Ref = make_ref(),
    Now = erlang:monotonic_time(),
    put(Ref, Now),
    erlang:send(Dest, {'$gen_cast', {doit, {self(), Ref}, undefined, MFA}}),
    Now.

loop(Dest, MFA, RecStart, RecEnd, InFlight, Sent, Measured, Lats) ->
    receive
        {Ref, Reply} when is_reference(Ref) ->
            {Now, Measured1, Lats1} = take_reply(Ref, Reply, RecStart, RecEnd, Measured, Lats),
            case Now < RecEnd of
                true ->
                    cast(Dest, MFA),
                    loop(Dest, MFA, RecStart, RecEnd, InFlight, Sent + 1, Measured1, Lats1);
                false when InFlight > 1 ->
                    loop(Dest, MFA, RecStart, RecEnd, InFlight - 1, Sent, Measured1, Lats1);
                false ->
                    finish(Sent, Measured1, 0, Lats1, Sent, [])
            end
    after 5000 ->
        finish(Sent, Measured, InFlight, Lats, Sent, [])
    end.

%% A reply: its latency counts when it arrives inside the measured window.
take_reply(Ref, Reply, RecStart, RecEnd, Measured, Lats) ->
    count_error(Reply),
    Now = erlang:monotonic_time(),
    T0 = erase(Ref),
    case Now >= RecStart andalso Now < RecEnd of
        true ->
            Ns = erlang:convert_time_unit(Now - T0, native, nanosecond),
            {Now, Measured + 1, [Ns | Lats]};
        false -> {Now, Measured, Lats}
    end.

finish(Sent, Measured, Lost, Lats, SentIn, Lags) ->
    get(parent) ! {done, self(), {Measured, Sent, Lost, Lats, get_errors(), SentIn, Lags}}.

%% ---- open loop at a fixed rate ------------------------------------------------------------
%% Cast i of caller k is due at T0 + (i * C + k) * Hz / Rate (native units).
due(#r{t0 = T0, step = {Hz, Rate}, i = I, k = K}) ->
    T0 + round((I * get(callers) + K) * Hz / Rate).

rate_loop(R = #r{rec_end = RecEnd}) ->
    Now = erlang:monotonic_time(),
    Due = due(R),
    if
        Due < RecEnd, Due =< Now ->
            rate_loop(send_due(R, Now));
        Due >= RecEnd, R#r.in_flight =:= 0 ->
            rate_done(R, 0);
        R#r.pace =:= spin, Due < RecEnd ->
            %% Spin pacing: look at the mailbox, then let the other callers and the
            %% distribution port run, until the next cast is due.
            receive
                {Ref, Reply} when is_reference(Ref) ->
                    rate_loop(reply(R, Ref, Reply))
            after 0 ->
                erlang:yield(),
                rate_loop(R)
            end;
        true ->
            Timeout = case Due < RecEnd of
                          true -> ceil_ms(Due - Now, R#r.hz);
                          false -> 5000
                      end,
            receive
                {Ref, Reply} when is_reference(Ref) ->
                    rate_loop(reply(R, Ref, Reply))
            after Timeout ->
                case Due >= RecEnd of
                    true -> rate_done(R, R#r.in_flight);
                    false -> rate_loop(R)
                end
            end
    end.

reply(R, Ref, Reply) ->
    {_, M1, L1} = take_reply(Ref, Reply, R#r.rec_start, R#r.rec_end, R#r.measured, R#r.lats),
    R#r{in_flight = R#r.in_flight - 1, measured = M1, lats = L1}.

ceil_ms(Native, Hz) -> max(1, -((-Native * 1000) div Hz)).

%% Sends every cast due by Now (the burst since the last wake-up), recording how late each
%% left against its schedule.
send_due(R = #r{rec_start = RecStart, rec_end = RecEnd}, Now) ->
    Due = due(R),
    case Due =< Now andalso Due < RecEnd of
        false -> R;
        true ->
            Sent = cast(R#r.dest, R#r.mfa),
            R1 = R#r{i = R#r.i + 1, in_flight = R#r.in_flight + 1, sent = R#r.sent + 1},
            R2 = case Due >= RecStart of
                     true ->
                         Lag = erlang:convert_time_unit(Sent - Due, native, nanosecond),
                         R1#r{sent_in = R1#r.sent_in + 1, lags = [Lag | R1#r.lags]};
                     false -> R1
                 end,
            send_due(R2, Now)
    end.

rate_done(R, Lost) ->
    finish(R#r.sent, R#r.measured, Lost, R#r.lats, R#r.sent_in, R#r.lags).

%% A rexi_EXIT reply is an answer, but not the echo asked for: counted as an error.
count_error({rexi_EXIT, _}) -> put(errors, get_errors() + 1);
count_error(_) -> ok.

get_errors() ->
    case get(errors) of undefined -> 0; N -> N end.
