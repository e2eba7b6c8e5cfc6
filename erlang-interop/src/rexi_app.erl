%% @doc The rexi application callback.
-module(rexi_app).
-behaviour(application).

-export([start/2, stop/1]).

start(_Type, _Args) ->
    rexi_sup:start_link().

stop(_State) ->
    ok.
