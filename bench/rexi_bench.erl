%% @doc Erlang load generator for rexi servers (the BEAM side of scripts/bench).
%%
%% C caller processes each keep W doits in flight against {rexi_server, Target}, in the
%% shape rexi:cast/2 sends: {'$gen_cast', {doit, {self(), Ref}, undefined, {M, F, A}}}.
%% Replies {Ref, Reply} are timed with the monotonic clock; replies that arrive in the
%% measured window (after the warm-up) count towards throughput and latency.
%%
%%   erl -name G@127.0.0.1 -hidden -setcookie C -noshell -pa DIR \
%%       -run rexi_bench main Target Callers Window Seconds WarmupSeconds PayloadBytes
%%
%% Prints a human line and then `BENCH mode=erl throughput=... p50_us=... ...', and halts
%% with status 0 (1 when the target could not be reached or casts were lost).
-module(rexi_bench).
-export([main/1, run/6]).

main([Target, C, W, Secs, Warm, Payload]) ->
    Code = try run(list_to_atom(Target), list_to_integer(C), list_to_integer(W),
                   to_float(Secs), to_float(Warm), list_to_integer(Payload)) of
               ok -> 0;
               {error, Why} -> io:format(standard_error, "rexi_bench: ~s~n", [Why]), 1
           catch Class:Reason:Stack ->
               io:format(standard_error, "rexi_bench: ~p:~p ~p~n", [Class, Reason, Stack]), 1
           end,
    erlang:halt(Code).

to_float(S) ->
    try list_to_float(S) catch error:badarg -> float(list_to_integer(S)) end.

run(Target, C, W, Secs, Warm, Payload) ->
    case net_kernel:connect_node(Target) of
        true -> go(Target, C, W, Secs, Warm, Payload);
        _ -> {error, io_lib:format("cannot connect to ~s", [Target])}
    end.

go(Target, C, W, Secs, Warm, Payload) ->
    Bin = binary:copy(<<"x">>, Payload),
    Now = erlang:monotonic_time(),
    RecStart = Now + erlang:convert_time_unit(round(Warm * 1000), millisecond, native),
    RecEnd = RecStart + erlang:convert_time_unit(round(Secs * 1000), millisecond, native),
    Self = self(),
    {_, Cpu0} = statistics(runtime),
    Pids = [spawn_link(fun() -> caller(Self, Target, W, Bin, RecStart, RecEnd) end)
            || _ <- lists:seq(1, C)],
    Results = [receive {done, P, R} -> R end || P <- Pids],
    {_, CpuMs} = statistics(runtime),
    _ = Cpu0,
    Measured = lists:sum([M || {M, _, _, _, _} <- Results]),
    Sent = lists:sum([S || {_, S, _, _, _} <- Results]),
    Lost = lists:sum([L || {_, _, L, _, _} <- Results]),
    Errors = lists:sum([E || {_, _, _, _, E} <- Results]),
    Lats = lists:sort(lists:append([L || {_, _, _, L, _} <- Results])),
    Thr = Measured / Secs,
    N = length(Lats),
    Q = fun(_) when N =:= 0 -> 0.0;
           (F) -> lists:nth(max(1, min(N, ceil(N * F))), Lats) / 1000
        end,
    Max = case Lats of [] -> 0.0; _ -> lists:last(Lats) / 1000 end,
    io:format("rexi_bench (erl) -> ~s (~b callers x ~b in flight, payload ~b B): ~b casts/s; "
              "latency p50 ~.1f us, p99 ~.1f us, p99.9 ~.1f us, max ~.1f us; ~b sent, ~b lost~n",
              [Target, C, W, Payload, round(Thr), Q(0.5), Q(0.99), Q(0.999), Max, Sent, Lost]),
    io:format("BENCH mode=erl throughput=~b p50_us=~.1f p99_us=~.1f p999_us=~.1f max_us=~.1f "
              "measured=~b sent=~b replies=~b errors=~b gen_cpu_s=~.3f~n",
              [round(Thr), Q(0.5), Q(0.99), Q(0.999), Max, Measured, Sent, Sent - Lost, Errors, CpuMs / 1000]),
    case Lost of
        0 -> ok;
        _ -> {error, io_lib:format("~b casts got no reply", [Lost])}
    end.

%% One caller: W casts in flight until RecEnd, then drain.
caller(Parent, Target, W, Bin, RecStart, RecEnd) ->
    put(parent, Parent),
    Dest = {rexi_server, Target},
    MFA = {rexi_node, echo, [Bin]},
    [cast(Dest, MFA) || _ <- lists:seq(1, W)],
    loop(Dest, MFA, RecStart, RecEnd, W, W, 0, []),
    ok.

cast(Dest, MFA) ->
    Ref = make_ref(),
    put(Ref, erlang:monotonic_time()),
    erlang:send(Dest, {'$gen_cast', {doit, {self(), Ref}, undefined, MFA}}),
    ok.

loop(Dest, MFA, RecStart, RecEnd, InFlight, Sent, Measured, Lats) ->
    receive
        {Ref, Reply} when is_reference(Ref) ->
            count_error(Reply),
            Now = erlang:monotonic_time(),
            T0 = erase(Ref),
            {Measured1, Lats1} =
                case Now >= RecStart andalso Now < RecEnd of
                    true ->
                        Ns = erlang:convert_time_unit(Now - T0, native, nanosecond),
                        {Measured + 1, [Ns | Lats]};
                    false -> {Measured, Lats}
                end,
            case Now < RecEnd of
                true ->
                    cast(Dest, MFA),
                    loop(Dest, MFA, RecStart, RecEnd, InFlight, Sent + 1, Measured1, Lats1);
                false when InFlight > 1 ->
                    loop(Dest, MFA, RecStart, RecEnd, InFlight - 1, Sent, Measured1, Lats1);
                false ->
                    finish(Sent, Measured1, 0, Lats1)
            end
    after 5000 ->
        finish(Sent, Measured, InFlight, Lats)
    end.

finish(Sent, Measured, Lost, Lats) ->
    get(parent) ! {done, self(), {Measured, Sent, Lost, Lats, get_errors()}}.

%% A rexi_EXIT reply is an answer, but not the echo asked for: counted as an error.
count_error({rexi_EXIT, _}) -> put(errors, get_errors() + 1);
count_error(_) -> ok.

get_errors() ->
    case get(errors) of undefined -> 0; N -> N end.
