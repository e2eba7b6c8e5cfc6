%% @doc The migration release this node runs (docs/design/migration.md section 1).
%%
%% The release is the application env `release' (0..3, default 1):
%%
%%   R0  only the singleton `rexi_server'; callers use it.
%%   R1  singleton plus per-node servers (rexi_server_sup, rexi_server_mon);
%%       callers still use the singleton.
%%   R2  same servers as R1; callers use `rexi_server_<phash2(node())>' and
%%       send every kill to both names.
%%   R3  per-node servers only (the singleton is gone); callers per-node only.
%%
%% `set/1' changes the release of a running node, which models a rolling
%% in-place (appup-style) upgrade: the env is updated first, then `rexi_sup'
%% starts the children the new release needs and stops the ones it no longer
%% has. Callers read the release on every cast and kill, so they switch at
%% once. Restarting the node with `-rexi release N' gives the same result.
-module(rexi_release).

-export([get/0, set/1, servers/1]).

-spec get() -> 0..3.
get() ->
    case application:get_env(rexi, release, 1) of
        R when is_integer(R), R >= 0, R =< 3 -> R;
        Other -> erlang:error({bad_rexi_release, Other})
    end.

%% @doc Switch this node to release `R'. Returns `ok' once the supervision
%% tree matches the new release (the per-node servers themselves appear later,
%% on `nodeup' or on the next `check_nodes' tick of rexi_server_mon).
-spec set(0..3) -> ok | {error, term()}.
set(R) when is_integer(R), R >= 0, R =< 3 ->
    application:set_env(rexi, release, R),
    case whereis(rexi_sup) of
        undefined -> ok;                      % app not running: env is enough
        _ -> rexi_sup:reconcile()
    end;
set(R) ->
    {error, {bad_rexi_release, R}}.

%% @doc Which top-level server processes release `R' runs.
-spec servers(0..3) -> [singleton | per_node].
servers(0) -> [singleton];
servers(1) -> [singleton, per_node];
servers(2) -> [singleton, per_node];
servers(3) -> [per_node].
