%% @doc The rexi caller and worker API.
%%
%% Callers: cast/2,3,4, kill/2, kill_all/1, stream_ack/1,2, stream_start/1,
%% stream_cancel/1. Workers (code running inside a job): reply/1,
%% sync_reply/1,2, stream/1,2,3, stream2/1,3, stream_last/1,2, ping/0.
-module(rexi).

-export([cast/2, cast/3, cast/4, kill/2, kill_all/1]).
-export([reply/1, sync_reply/1, sync_reply/2]).
-export([stream/1, stream/2, stream/3, stream_ack/1, stream_ack/2]).
-export([stream2/1, stream2/3, stream_last/1, stream_last/2,
         stream_start/1, stream_cancel/1, ping/0]).

-define(TIMEOUT, 300000).      % worker-side waits: 5 minutes
-define(STREAM_LIMIT, 10).     % unacked stream messages

%% ---- caller side -------------------------------------------------------

%% @doc Run `{M, F, A}' on `Node'; replies go to the calling process.
cast(Node, MFA) ->
    cast(Node, self(), MFA).

%% @doc Like cast/2, but replies go to `Caller'. Uses rexi_utils:send/2
%% (noconnect, nosuspend, then a spawned plain send).
cast(Node, Caller, MFA) ->
    Ref = make_ref(),
    rexi_utils:send(rexi_utils:server_pid(Node), doit(Caller, Ref, MFA)),
    Ref.

%% @doc With `[sync]' the request goes through a plain erlang:send/2, which
%% may block on a busy connection and auto-connects. Other options are
%% ignored.
cast(Node, Caller, MFA, Opts) ->
    case lists:member(sync, Opts) of
        true ->
            Ref = make_ref(),
            erlang:send(rexi_utils:server_pid(Node), doit(Caller, Ref, MFA)),
            Ref;
        false ->
            cast(Node, Caller, MFA)
    end.

doit(Caller, Ref, MFA) ->
    {'$gen_cast', {doit, {Caller, Ref}, get(nonce), MFA}}.

%% @doc Cancel the job `Ref' on `Node'. Release 2 sends the kill to both the
%% singleton and the per-node server, because the job may have been cast
%% under release 1 code (docs/design/migration.md section 1).
kill(Node, Ref) ->
    [rexi_utils:send(Dest, {'$gen_cast', {kill, Ref}}) || Dest <- kill_dests(Node)],
    ok.

%% @doc Cancel many jobs: one `kill_all' message per node (release 2: per
%% node and name, as for kill/2).
kill_all(NodeRefs) ->
    ByNode = lists:foldl(fun({Node, Ref}, Acc) ->
                                 maps:update_with(Node, fun(L) -> [Ref | L] end,
                                                  [Ref], Acc)
                         end, #{}, NodeRefs),
    maps:foreach(fun(Node, Refs) ->
                         Msg = {'$gen_cast', {kill_all, lists:reverse(Refs)}},
                         [rexi_utils:send(D, Msg) || D <- kill_dests(Node)]
                 end, ByNode),
    ok.

kill_dests(Node) ->
    case rexi_release:get() of
        2 -> [rexi_utils:singleton_pid(Node), rexi_utils:server_pid(Node)];
        _ -> [rexi_utils:server_pid(Node)]
    end.

%% @doc Acknowledge one (or N) stream messages of the worker `Pid'.
stream_ack(Pid) ->
    stream_ack(Pid, 1).
stream_ack(Pid, N) ->
    erlang:send(Pid, {rexi_ack, N}).

%% @doc Answer a rexi_STREAM_INIT: go on streaming / stop silently.
stream_start({Pid, Tag}) ->
    erlang:send(Pid, {Tag, rexi_STREAM_START}).
stream_cancel({Pid, Tag}) ->
    erlang:send(Pid, {Tag, rexi_STREAM_CANCEL}).

%% ---- worker side -------------------------------------------------------

%% @doc Send `{Ref, Reply}' to the caller.
reply(Reply) ->
    {Caller, Ref} = get(rexi_from),
    erlang:send(Caller, {Ref, Reply}).

%% @doc Send `{Ref, {self(), Tag}, Reply}' and wait for `{Tag, Answer}';
%% returns Answer, or `timeout'.
sync_reply(Reply) ->
    sync_reply(Reply, ?TIMEOUT).
sync_reply(Reply, Timeout) ->
    {Caller, Ref} = get(rexi_from),
    Tag = make_ref(),
    erlang:send(Caller, {Ref, {self(), Tag}, Reply}),
    receive
        {Tag, Answer} -> Answer
    after Timeout ->
        timeout
    end.

%% @doc Stream v1: send `{Ref, self(), Msg}', keeping at most `Limit'
%% messages unacked. Waits up to `Timeout' for an ack, then exit(timeout).
stream(Msg) ->
    stream(Msg, ?STREAM_LIMIT, ?TIMEOUT).
stream(Msg, Limit) ->
    stream(Msg, Limit, ?TIMEOUT).
stream(Msg, Limit, Timeout) ->
    Unacked = wait_for_room(unacked(), Limit, Timeout),
    put(rexi_unacked, Unacked + 1),
    {Caller, Ref} = get(rexi_from),
    erlang:send(Caller, {Ref, self(), Msg}),
    ok.

unacked() ->
    case get(rexi_unacked) of undefined -> 0; N -> N end.

wait_for_room(Count, Limit, Timeout) when Count >= Limit ->
    receive
        {rexi_ack, N} -> drain_acks(Count - N)
    after Timeout ->
        exit(timeout)
    end;
wait_for_room(Count, _Limit, _Timeout) ->
    drain_acks(Count).

drain_acks(Count) when Count < 0 ->
    exit(mismatched_rexi_ack);
drain_acks(Count) ->
    receive
        {rexi_ack, N} -> drain_acks(Count - N)
    after 0 ->
        Count
    end.

%% @doc Stream v2: on the first call, run the rexi_STREAM_INIT handshake,
%% then stream like stream/3.
stream2(Msg) ->
    stream2(Msg, ?STREAM_LIMIT, ?TIMEOUT).
stream2(Msg, Limit, Timeout) ->
    stream_init(Timeout),
    stream(Msg, Limit, Timeout).

%% @doc End a v2 stream with a plain `{Ref, Msg}' (handshake first if no
%% row was sent).
stream_last(Msg) ->
    stream_last(Msg, ?TIMEOUT).
stream_last(Msg, Timeout) ->
    stream_init(Timeout),
    reply(Msg).

stream_init(Timeout) ->
    case get(rexi_STREAM_INITED) of
        true ->
            ok;
        _ ->
            put(rexi_STREAM_INITED, true),
            case sync_reply(rexi_STREAM_INIT, Timeout) of
                rexi_STREAM_START -> ok;
                rexi_STREAM_CANCEL -> exit(normal);
                timeout -> exit(timeout);
                Else -> exit({invalid_stream_message, Else})
            end
    end.

%% @doc Keep-alive for callers with per-message timeouts.
ping() ->
    {Caller, _Ref} = get(rexi_from),
    erlang:send(Caller, {rexi, '$rexi_ping'}).
