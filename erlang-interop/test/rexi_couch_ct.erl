%% @doc Helpers rexi_couch_SUITE loads into its BEAM nodes: a log of node
%% events, and the cast burst that measures loss through the CouchDB-style
%% send path (rexi_couch_send, rexi_couch_buffer).
-module(rexi_couch_ct).

-export([nodelog_start/0, nodelog/0, burst/5, buffer_ready/1, rpc_calls/2]).
-export([nodelog_init/1]).

%% ---- node events ------------------------------------------------------------

%% @doc Start `rexi_couch_nodelog' on this node (unlinked: it outlives the rpc
%% that starts it): every nodeup/nodedown of any node type, with the reason.
nodelog_start() ->
    Ref = make_ref(),
    Pid = spawn(?MODULE, nodelog_init, [{self(), Ref}]),
    receive {Ref, ok} -> {ok, Pid} after 5000 -> {error, nodelog_timeout} end.

%% @doc `[{MonotonicMs, nodeup | nodedown, Node, Info}]', oldest first.
nodelog() ->
    Ref = make_ref(),
    rexi_couch_nodelog ! {get, self(), Ref},
    receive {Ref, Log} -> Log after 5000 -> erlang:error(nodelog_timeout) end.

nodelog_init({From, Ref}) ->
    register(rexi_couch_nodelog, self()),
    ok = net_kernel:monitor_nodes(true, [{node_type, all}, nodedown_reason]),
    From ! {Ref, ok},
    nodelog_loop([]).

nodelog_loop(Log) ->
    receive
        {Event, Node, Info} when Event =:= nodeup; Event =:= nodedown ->
            nodelog_loop([{erlang:monotonic_time(millisecond), Event, Node, Info} | Log]);
        {get, From, Ref} ->
            From ! {Ref, lists:reverse(Log)},
            nodelog_loop(Log)
    end.

%% @doc true when this node has a send buffer for `Node' (it is started
%% asynchronously, on nodeup).
buffer_ready(Node) ->
    whereis(rexi_couch_buffer:name(Node)) =/= undefined.

%% ---- rpc and erpc ---------------------------------------------------------

%% @doc From this node: erpc, rpc and both multicalls over `nodes()' with
%% `erlang:phash2(T)' (served by rexi-node and by every BEAM node), and erpc
%% and rpc of an MFA `Node' does not serve; what each returned or raised.
rpc_calls(Node, T) ->
    Undef = {no_such_module_rexi_couch, f, [T]},
    #{erpc => erpc:call(Node, erlang, phash2, [T], 10000),
      rpc => rpc:call(Node, erlang, phash2, [T], 10000),
      erpc_undef => try erpc:call(Node, element(1, Undef), element(2, Undef), element(3, Undef), 10000)
                    catch C:R -> {C, R} end,
      rpc_undef => rpc:call(Node, element(1, Undef), element(2, Undef), element(3, Undef), 10000),
      nodes => nodes(),
      rpc_multicall => rpc:multicall(nodes(), erlang, phash2, [T], 10000),
      erpc_multicall => erpc:multicall(nodes(), erlang, phash2, [T], 10000)}.

%% ---- bursts -----------------------------------------------------------------

%% @doc `Procs' processes each cast `PerProc' echo jobs of `Bytes' payload to
%% `Node' through rexi_couch_send, all at once; replies go to one collector.
%%
%% The books are closed by events, not by a quiet spell. Once every sender has
%% returned and `Node''s buffer (if it has one) is idle, every cast has either
%% gone out on the connection or been dropped at this node, and the counters
%% say how many were dropped: those the send path found no buffer for
%% (`unbuffered') and those the buffer pushed out beyond its limit
%% (`dropped'). The rest must all be answered, each once, within
%% `DeadlineMs'; a missing answer is reported as `missing'.
-spec burst(node(), pos_integer(), pos_integer(), non_neg_integer(), pos_integer()) -> map().
burst(Node, Procs, PerProc, Bytes, DeadlineMs) ->
    Deadline = erlang:monotonic_time(millisecond) + DeadlineMs,
    Tag = make_ref(),
    Blob = binary:copy(<<0>>, Bytes),
    Sent = Procs * PerProc,
    S0 = rexi_couch_send:stats(Node),
    B0 = buffer_stats(Node),
    Self = self(),
    Collector = spawn_link(fun() -> collect(Tag, Self, #{}, 0) end),
    T0 = erlang:monotonic_time(millisecond),
    Senders = [spawn_monitor(fun() -> cast_n(Node, Collector, Tag, P, PerProc, Blob) end)
               || P <- lists:seq(1, Procs)],
    [receive {'DOWN', M, process, Pid, normal} -> ok;
             {'DOWN', M, process, Pid, Why} -> erlang:error({sender_died, Why})
     end || {Pid, M} <- Senders],
    SendMs = erlang:monotonic_time(millisecond) - T0,
    B1 = wait_idle(Node, Deadline),
    S1 = rexi_couch_send:stats(Node),
    Handed = maps:get(handed, S1) - maps:get(handed, S0),
    Unbuffered = maps:get(unbuffered, S1) - maps:get(unbuffered, S0),
    Dropped = delta(dropped, B0, B1),
    Expected = Sent - Unbuffered - Dropped,
    Collector ! {wait_for, Expected, max(0, Deadline - erlang:monotonic_time(millisecond))},
    {Answered, Dups} = receive {Tag, counts, A, D} -> {A, D} end,
    unlink(Collector),
    exit(Collector, kill),
    #{node => Node, sent => Sent, answered => Answered, lost => Sent - Answered,
      missing => Expected - Answered, duplicates => Dups,
      handed => Handed, unbuffered => Unbuffered, dropped => Dropped,
      direct => delta(direct, B0, B1), spawned => delta(spawned, B0, B1),
      send_ms => SendMs, ms => erlang:monotonic_time(millisecond) - T0}.

cast_n(Node, Collector, Tag, P, N, Blob) ->
    [rexi_couch_send:cast(Node, Collector, {rexi_node, echo, [{Tag, {P, I}, Blob}]})
     || I <- lists:seq(1, N)],
    ok.

buffer_stats(Node) ->
    case buffer_ready(Node) of
        true -> rexi_couch_buffer:stats(Node);
        false -> none
    end.

delta(_K, none, none) -> 0;
delta(K, B0, B1) -> maps:get(K, B1) - maps:get(K, B0).

%% Poll the buffer's state until idle: the state to wait for, with a deadline.
wait_idle(Node, Deadline) ->
    case buffer_stats(Node) of
        none -> none;
        #{idle := true} = B -> B;
        B ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> erlang:error({buffer_not_idle, Node, B});
                false -> timer:sleep(20), wait_idle(Node, Deadline)
            end
    end.

%% Counts distinct answered ids (and repeats) until asked for `Expected' of
%% them; answers as soon as it has them, or when `LeftMs' has passed.
collect(Tag, Owner, Seen, Dups) ->
    receive
        {_Ref, {Tag, Id, _}} ->
            case Seen of
                #{Id := _} -> collect(Tag, Owner, Seen, Dups + 1);
                _ -> collect(Tag, Owner, Seen#{Id => true}, Dups)
            end;
        {wait_for, Expected, LeftMs} ->
            Until = erlang:monotonic_time(millisecond) + LeftMs,
            finish(Tag, Owner, Seen, Dups, Expected, Until)
    end.

finish(Tag, Owner, Seen, Dups, Expected, _Until) when map_size(Seen) >= Expected ->
    Owner ! {Tag, counts, map_size(Seen), Dups};
finish(Tag, Owner, Seen, Dups, Expected, Until) ->
    Left = max(0, Until - erlang:monotonic_time(millisecond)),
    receive
        {_Ref, {Tag, Id, _}} ->
            case Seen of
                #{Id := _} -> finish(Tag, Owner, Seen, Dups + 1, Expected, Until);
                _ -> finish(Tag, Owner, Seen#{Id => true}, Dups, Expected, Until)
            end
    after Left ->
        Owner ! {Tag, counts, map_size(Seen), Dups}
    end.
