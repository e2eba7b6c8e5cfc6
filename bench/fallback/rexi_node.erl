%% @doc Stand-in for erlang-interop's rexi_node (bench fallback only): echo/1, sleep/1.
-module(rexi_node).
-export([echo/1, sleep/1]).

reply(T) ->
    {Caller, Ref} = get(rexi_from),
    erlang:send(Caller, {Ref, T}),
    ok.

echo(T) -> reply(T).

sleep(Ms) ->
    timer:sleep(Ms),
    reply({slept, Ms}).
