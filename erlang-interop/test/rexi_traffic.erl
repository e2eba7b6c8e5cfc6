%% @doc Cast traffic generator, loaded into each BEAM peer by rexi_ct_lib.
%%
%% Every `PeriodMs' it casts `rexi_node:echo(Payload)' with a unique payload
%% to every target through `rexi:cast/2' (so the node's current release picks
%% the server name), and counts, per step and target, casts sent, answered
%% (the echo came back), lost (no answer within `TimeoutMs') and bad (any
%% other message for the ref, e.g. a rexi_EXIT). The step number is set from
%% outside, and each cast is counted under the step in which it was sent.
-module(rexi_traffic).

-export([start/3, set_step/2, counts/2, stop/1, probe/3]).
-export([init/3]).

start(Targets, PeriodMs, TimeoutMs) ->
    Pid = spawn(?MODULE, init, [Targets, PeriodMs, TimeoutMs]),
    register(rexi_traffic, Pid),
    Pid.

set_step(Node, Step) ->
    {rexi_traffic, Node} ! {'$traffic', step, Step},
    ok.

%% @doc `{Pending, [{Target, {Sent, Answered, Lost, Bad}}]}' for `Step'.
counts(Node, Step) ->
    Ref = make_ref(),
    {rexi_traffic, Node} ! {'$traffic', counts, self(), Ref, Step},
    receive {Ref, Reply} -> Reply after 5000 -> erlang:error(traffic_timeout) end.

stop(Node) ->
    {rexi_traffic, Node} ! {'$traffic', stop},
    ok.

%% @doc One cast from this node to `Target' (run on the caller through rpc):
%% `answered', `lost' or `{bad, Msg}'.
probe(Target, Payload, TimeoutMs) ->
    Ref = rexi:cast(Target, {rexi_node, echo, [Payload]}),
    receive
        {Ref, Payload} -> answered;
        {Ref, Other} -> {bad, Other}
    after TimeoutMs ->
        lost
    end.

-record(st, {targets, period, timeout, step = 0, seq = 0,
             out = #{},        % Ref => {Step, Target, Payload, Deadline}
             counts = #{}}).   % {Step, Target} => {Sent, Answered, Lost, Bad}

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

reply(Ref, Msg, St) ->
    case maps:take(Ref, St#st.out) of
        error ->
            St;                               % late or unknown: ignored
        {{Step, T, Payload, _}, Out} ->
            Field = case Msg of Payload -> 2; _ -> 4 end,
            St#st{out = Out, counts = bump(Step, T, Field, St#st.counts)}
    end.

sweep(St) ->
    Now = erlang:monotonic_time(millisecond),
    maps:fold(fun(Ref, {Step, T, _, Deadline}, S) when Deadline < Now ->
                      S#st{out = maps:remove(Ref, S#st.out),
                           counts = bump(Step, T, 3, S#st.counts)};
                 (_, _, S) -> S
              end, St, St#st.out).

bump(Step, T, Field, Counts) ->
    C = maps:get({Step, T}, Counts, {0, 0, 0, 0}),
    maps:put({Step, T}, setelement(Field, C, element(Field, C) + 1), Counts).
