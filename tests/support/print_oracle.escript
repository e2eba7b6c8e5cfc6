#!/usr/bin/env escript
%% -*- erlang; coding: utf-8 -*-
%%
%% The BEAM side of tests/term_syntax.rs's printer check: how io_lib shows terms.
%%
%%   escript print_oracle.escript IN
%%       IN holds one Erlang term in text (UTF-8) per line. For each, one output line:
%%       the code points of io_lib:format("~p", [T]), a space, those of "~tp", each
%%       written with ~w (so no encoding of this node's stdout can alter them).
-mode(compile).

main([In]) ->
    {ok, Bin} = file:read_file(In),
    Lines = [L || L <- string:split(unicode:characters_to_list(Bin), "\n", all), L =/= ""],
    lists:foreach(
        fun(Text) ->
            {ok, Tokens, _} = erl_scan:string(Text ++ "."),
            {ok, T} = erl_parse:parse_term(Tokens),
            P = lists:flatten(io_lib:format("~p", [T])),
            TP = lists:flatten(io_lib:format("~tp", [T])),
            io:format("~w ~w~n", [P, TP])
        end,
        Lines).
