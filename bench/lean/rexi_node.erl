%% @doc The job handlers of the lean BEAM baseline (bench/lean): rexi_node:echo/1 and
%% sleep/1, the MFAs rexi-node serves built in, replying `{Ref, Reply}' straight to the
%% caller as rexi:reply/1 does (without rexi's helper module, which the lean node lacks).
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
