%% @doc Cast traffic generator, loaded into each BEAM peer by rexi_ct_lib.
%%
%% Every `PeriodMs' it casts `rexi_node:echo(Payload)' with a unique payload
%% to every target through `rexi:cast/2' (so the node's current release picks
%% the server name), and counts, per step and target, casts sent, answered
%% (the echo came back), lost (no answer within `TimeoutMs'), bad (any other
%% message for the ref, e.g. a rexi_EXIT) and duplicates (a second message for
%% a ref already answered). The step number is set from outside, and each cast
%% is counted under the step in which it was sent.
%%
%% `settle/2' closes the books without waiting for silence: it returns once no
%% cast is pending and a marker cast to every target has been answered, so any
%% duplicate the targets sent before their marker reply has been counted. (A
%% marker to a target that loses this caller's casts is reported as lost after
%% `TimeoutMs', like any cast.)
-module(rexi_traffic).

-export([start/3, set_step/2, counts/2, settle/2, stop/1, probe/3]).
-export([init/3]).

start(Targets, PeriodMs, TimeoutMs) ->
    Pid = spawn(?MODULE, init, [Targets, PeriodMs, TimeoutMs]),
    register(rexi_traffic, Pid),
    Pid.

set_step(Node, Step) ->
    {rexi_traffic, Node} ! {'$traffic', step, Step},
    ok.

%% @doc `{Pending, [{Target, {Sent, Answered, Lost, Bad, Dup}}]}' for `Step'.
counts(Node, Step) ->
    Ref = make_ref(),
    {rexi_traffic, Node} ! {'$traffic', counts, self(), Ref, Step},
    receive {Ref, Reply} -> Reply after 5000 -> erlang:error(traffic_timeout) end.

%% @doc Waits (up to `TimeoutMs') until `Node''s generator has no cast pending,
%% then until a marker cast to every target is answered; `ok',
%% `{markers_lost, Targets}' or `{not_settled, Pending}'. Call after set_step/2
%% moved the traffic to a step of its own: casts of that step keep going out and
%% are not waited for.
settle(Node, TimeoutMs) ->
    Deadline = erlang:monotonic_time(millisecond) + TimeoutMs,
    settle_loop(Node, Deadline).

settle_loop(Node, Deadline) ->
    Ref = make_ref(),
    {rexi_traffic, Node} ! {'$traffic', settle, self(), Ref},
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {Ref, ok} -> ok;
        {Ref, {markers_lost, _} = Lost} -> Lost;
        {Ref, {pending, N}} ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> {not_settled, N};
                false -> timer:sleep(50), settle_loop(Node, Deadline)
            end
    after Left -> {not_settled, no_answer}
    end.

stop(Node) ->
    {rexi_traffic, Node} ! {'$traffic', stop},
    ok.

%% @doc One cast from this node to `Target' (run on the caller through rpc):
%% `answered', `lost' or `{bad, Msg}'.
%%
%% Lost is known, not guessed from a quiet spell: a cast to a name that is not
%% registered is dropped on arrival, and a monitor of the same name (the one
%% this node's release makes rexi:cast/2 use; nothing changes releases during a
%% probe) answers 'DOWN' noproc at once. A name that is there got the cast,
%% which must then be answered within `TimeoutMs'.
probe(Target, Payload, TimeoutMs) ->
    Dest = rexi_utils:server_pid(Target),
    Ref = rexi:cast(Target, {rexi_node, echo, [Payload]}),
    Mon = erlang:monitor(process, Dest),
    Verdict = receive
                  {'DOWN', Mon, process, _, noproc} -> lost;
                  {'DOWN', Mon, process, _, Why} -> {bad, {'DOWN', Why}};
                  {Ref, Payload} -> answered;
                  {Ref, Other} -> {bad, Other}
              after TimeoutMs ->
                  {bad, {no_answer_from, Dest}}
              end,
    erlang:demonitor(Mon, [flush]),
    Verdict.

-record(st, {targets, period, timeout, step = 0, seq = 0,
             out = #{},        % Ref => {Step, Target, Payload, Deadline}
             done = #{},       % Ref => {Step, Target}, once answered (or bad)
             markers = none,   % none | {From, Ref, #{MarkerRef => Target}, Deadline}
             counts = #{}}).   % {Step, Target} => {Sent, Answered, Lost, Bad, Dup}

init(Targets, PeriodMs, TimeoutMs) ->
    self() ! tick,
    loop(#st{targets = Targets, period = PeriodMs, timeout = TimeoutMs}).

loop(St) ->
    receive
        tick ->
            erlang:send_after(St#st.period, self(), tick),
            loop(sweep(send_all(St)));
        {'$traffic', step, Step} ->
            loop(St#st{step = Step});
        {'$traffic', counts, From, Ref, Step} ->
            Pending = length([R || {R, {S, _, _, _}} <- maps:to_list(St#st.out), S =:= Step]),
            Counts = [{T, C} || {{S, T}, C} <- lists:sort(maps:to_list(St#st.counts)), S =:= Step],
            From ! {Ref, {Pending, Counts}},
            loop(St);
        {'$traffic', settle, From, Ref} ->
            loop(settle_step(From, Ref, St));
        {'$traffic', stop} ->
            ok;
        {Ref, Msg} when is_reference(Ref) ->
            loop(reply(Ref, Msg, St));
        _Other ->
            loop(St)
    end.

send_all(St = #st{targets = Targets, seq = Seq0, step = Step}) ->
    Deadline = erlang:monotonic_time(millisecond) + St#st.timeout,
    lists:foldl(
      fun(T, S = #st{seq = Seq}) ->
              Payload = {node(), T, Seq},
              Ref = rexi:cast(T, {rexi_node, echo, [Payload]}),
              S#st{seq = Seq + 1,
                   out = maps:put(Ref, {Step, T, Payload, Deadline}, S#st.out),
                   counts = bump(Step, T, 1, S#st.counts)}
      end, St#st{seq = Seq0}, Targets).

%% No cast of an earlier step pending (the current step, where traffic goes on,
%% is not reported): send one marker per target; the settle caller is answered
%% when the last marker reply arrives (see reply/3).
settle_step(From, Ref, St = #st{out = Out, step = Now}) ->
    case [R || {R, {S, _, _, _}} <- maps:to_list(Out), S =/= Now] of
        [] -> send_markers(From, Ref, St);
        Pending -> From ! {Ref, {pending, length(Pending)}}, St
    end.

send_markers(From, Ref, St = #st{targets = Targets}) ->
    Markers = maps:from_list(
                [{rexi:cast(T, {rexi_node, echo, [{marker, node(), T}]}), T} || T <- Targets]),
    Deadline = erlang:monotonic_time(millisecond) + St#st.timeout,
    St#st{markers = {From, Ref, Markers, Deadline}}.

reply(Ref, Msg, St) ->
    case maps:take(Ref, St#st.out) of
        {{Step, T, Payload, _}, Out} ->
            Field = case Msg of Payload -> 2; _ -> 4 end,
            St#st{out = Out, done = maps:put(Ref, {Step, T}, St#st.done),
                  counts = bump(Step, T, Field, St#st.counts)};
        error ->
            case maps:find(Ref, St#st.done) of
                {ok, {Step, T}} ->            % a second message for an answered cast
                    St#st{counts = bump(Step, T, 5, St#st.counts)};
                error ->
                    marker_reply(Ref, St)     % a marker, or late after "lost" (counted)
            end
    end.

marker_reply(Ref, St = #st{markers = {From, SRef, Markers, Deadline}}) ->
    case maps:take(Ref, Markers) of
        {_, Left} when map_size(Left) =:= 0 ->
            From ! {SRef, ok},
            St#st{markers = none};
        {_, Left} ->
            St#st{markers = {From, SRef, Left, Deadline}};
        error ->
            St
    end;
marker_reply(_Ref, St) ->
    St.

sweep(St) ->
    Now = erlang:monotonic_time(millisecond),
    sweep_casts(Now, sweep_markers(Now, St)).

sweep_markers(Now, St = #st{markers = {From, SRef, Markers, Deadline}}) when Deadline < Now ->
    From ! {SRef, {markers_lost, lists:sort(maps:values(Markers))}},
    St#st{markers = none};
sweep_markers(_Now, St) ->
    St.

sweep_casts(Now, St) ->
    maps:fold(fun(Ref, {Step, T, _, Deadline}, S) when Deadline < Now ->
                      S#st{out = maps:remove(Ref, S#st.out),
                           counts = bump(Step, T, 3, S#st.counts)};
                 (_, _, S) -> S
              end, St, St#st.out).

bump(Step, T, Field, Counts) ->
    C = maps:get({Step, T}, Counts, {0, 0, 0, 0, 0}),
    maps:put({Step, T}, setelement(Field, C, element(Field, C) + 1), Counts).
