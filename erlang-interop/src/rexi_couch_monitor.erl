%% @doc A coordinator's watch on the rexi servers it casts to, the way
%% CouchDB 2.0+ coordinators keep it (docs/couchdb.md).
%%
%% `start(Dests)' reports `{rexi_DOWN, MonitorPid, Dest, Reason}' to the
%% calling process for each destination that goes down. A destination on a
%% node outside `[node() | nodes()]' is reported down at once with Reason
%% `noconnect' and is never monitored. `nodes()' lists visible nodes only, so
%% a node that is connected but hidden (rexi-node's default) is "down" from
%% the first moment: this is the reason `rexi-node run --visible' exists.
%%
%% The at-once reports are put in the caller's mailbox before start/1
%% returns, so they precede any reply to a cast made after start/1. The other
%% destinations are watched by one linked process (it dies with the caller).
-module(rexi_couch_monitor).

-export([start/1, stop/1]).
-export([watch/2]).

-type dest() :: pid() | {atom(), node()}.

-spec start([dest()]) -> pid().
start(Dests) ->
    Parent = self(),
    Reachable = [node() | nodes()],
    {Watched, Unreachable} =
        lists:partition(fun(D) -> lists:member(node_of(D), Reachable) end, Dests),
    Watcher = spawn_link(?MODULE, watch, [Parent, Watched]),
    [Parent ! {rexi_DOWN, Watcher, D, noconnect} || D <- Unreachable],
    Watcher.

%% @doc Stop watching and drop this watcher's reports from the mailbox.
-spec stop(pid()) -> ok.
stop(Watcher) ->
    unlink(Watcher),
    Watcher ! {self(), stop},
    flush(Watcher).

flush(Watcher) ->
    receive {rexi_DOWN, Watcher, _, _} -> flush(Watcher)
    after 0 -> ok
    end.

%% @private the watcher: one monitor per destination, one report per 'DOWN'
watch(Parent, Dests) ->
    [erlang:monitor(process, D) || D <- Dests],
    wait(Parent).

wait(Parent) ->
    receive
        {'DOWN', _, process, Dest, Reason} ->
            Parent ! {rexi_DOWN, self(), Dest, Reason},
            wait(Parent);
        {Parent, stop} ->
            ok
    end.

node_of(Pid) when is_pid(Pid) -> node(Pid);
node_of({_Name, Node}) -> Node.
