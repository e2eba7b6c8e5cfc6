%% @doc One node's send buffer, `rexi_buffer_<Node>', as CouchDB 2.0+ keeps
%% one per visible node (docs/couchdb.md). rexi_couch_send hands it the
%% messages that met a busy (or absent) connection; it delivers them later
%% without ever blocking its own mailbox:
%%
%% * bounded: at most `couch_buffer_limit' messages (application env,
%%   default 2000, CouchDB's `[rexi] buffer_count'); a message beyond the
%%   limit pushes out the oldest one, which is dropped and counted;
%% * newest first: the next message out is the last one in (a coordinator
%%   that is still waiting is likelier to want a fresh request than an old
%%   one whose caller may have given up);
%% * only when idle: a delivery is tried when the mailbox is empty (timeout
%%   0), so new messages are queued (and old ones dropped) before anything is
%%   sent;
%% * first with `[noconnect, nosuspend]'; if the connection is still busy,
%%   through one spawned process doing a plain `erlang:send/2' (which waits for
%%   the connection, and connects if needed); nothing more goes out until that
%%   process has ended.
-module(rexi_couch_buffer).
-behaviour(gen_server).

-export([start_link/1, name/1, deliver/3, stats/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-record(st, {node :: node(),
             limit :: pos_integer(),
             queue = queue:new() :: queue:queue({term(), term()}),
             len = 0 :: non_neg_integer(),
             sender = none :: none | reference(),   % monitor of the spawned sender
             buffered = 0 :: non_neg_integer(),     % messages handed to us
             dropped = 0 :: non_neg_integer(),      % pushed out beyond the limit
             direct = 0 :: non_neg_integer(),       % sent with [noconnect, nosuspend]
             spawned = 0 :: non_neg_integer()}).    % sent by a spawned plain send

-spec name(node()) -> atom().
name(Node) ->
    list_to_atom("rexi_buffer_" ++ atom_to_list(Node)).

start_link(Node) ->
    gen_server:start_link({local, name(Node)}, ?MODULE, Node, []).

%% @doc Queue `Msg' for `Dest' (on `Node'); `no_buffer' if `Node' has none.
-spec deliver(node(), term(), term()) -> ok | no_buffer.
deliver(Node, Dest, Msg) ->
    case whereis(name(Node)) of
        undefined -> no_buffer;
        Pid -> gen_server:cast(Pid, {deliver, Dest, Msg})
    end.

%% @doc Counters and state of `Node''s buffer; `idle' is true when nothing is
%% queued and no send is in flight (every message handed so far was either
%% sent or dropped).
-spec stats(node()) -> map().
stats(Node) ->
    gen_server:call(name(Node), stats).

init(Node) ->
    {ok, #st{node = Node, limit = application:get_env(rexi, couch_buffer_limit, 2000)}}.

handle_call(stats, _From, St) ->
    Reply = #{node => St#st.node, queued => St#st.len, limit => St#st.limit,
              idle => St#st.len =:= 0 andalso St#st.sender =:= none,
              buffered => St#st.buffered, dropped => St#st.dropped,
              direct => St#st.direct, spawned => St#st.spawned},
    {reply, Reply, St, next(St)}.

handle_cast({deliver, Dest, Msg}, St = #st{queue = Q, len = Len, limit = Limit}) ->
    Q1 = queue:in({Dest, Msg}, Q),
    St1 = case Len >= Limit of
              true -> St#st{queue = queue:drop(Q1), dropped = St#st.dropped + 1};
              false -> St#st{queue = Q1, len = Len + 1}
          end,
    St2 = St1#st{buffered = St1#st.buffered + 1},
    {noreply, St2, next(St2)}.

handle_info(timeout, St = #st{sender = none, len = Len}) when Len > 0 ->
    {{value, {Dest, Msg}}, Q} = queue:out_r(St#st.queue),
    St1 = St#st{queue = Q, len = Len - 1},
    St2 = case erlang:send(Dest, Msg, [noconnect, nosuspend]) of
              ok ->
                  St1#st{direct = St1#st.direct + 1};
              _Busy ->
                  {_, Mon} = spawn_monitor(erlang, send, [Dest, Msg]),
                  St1#st{sender = Mon, spawned = St1#st.spawned + 1}
          end,
    {noreply, St2, next(St2)};
handle_info({'DOWN', Mon, process, _, _}, St = #st{sender = Mon}) ->
    St1 = St#st{sender = none},
    {noreply, St1, next(St1)};
handle_info(_Other, St) ->
    {noreply, St, next(St)}.

%% Deliver the next message as soon as the mailbox is empty, unless a sender
%% is still out or nothing is queued.
next(#st{sender = none, len = Len}) when Len > 0 -> 0;
next(_) -> infinity.
