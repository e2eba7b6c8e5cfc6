%% A BEAM rexi target for tests/tls.rs: registers the three names a rexi caller may cast
%% to, for one caller node, and answers each doit with {Ref, {ServerName, apply(M, F, A)}},
%% so the test sees which name served it and the exact result.
%%
%% erl -proto_dist inet_tls ... -run rn_tls serve CallerNode
-module(rn_tls).
-export([serve/1]).

serve([Caller]) ->
    Names = [rexi_server,
             list_to_atom("rexi_server_" ++ integer_to_list(erlang:phash2(list_to_atom(Caller)))),
             list_to_atom("rexi_server_" ++ Caller)],
    [register(N, spawn(fun() -> loop(N) end)) || N <- Names],
    io:format("SERVING ~p~n", [Names]).

loop(Name) ->
    receive
        {'$gen_cast', {doit, {Pid, Ref}, _Nonce, {M, F, A}}} ->
            Pid ! {Ref, {Name, apply(M, F, A)}},
            loop(Name);
        _ ->
            loop(Name)
    end.
