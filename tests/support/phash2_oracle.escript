#!/usr/bin/env escript
%% -*- erlang; coding: utf-8 -*-
%%
%% The BEAM side of tests/phash2_differential.rs: random terms, hashed by the real
%% erlang:phash2/1,2, so that the Rust implementation is checked on terms nobody chose.
%%
%%   escript phash2_oracle.escript terms SEED COUNT OUT
%%       COUNT lines: base64(term_to_binary(T, [{minor_version,2}])) TAB phash2(T)
%%                    TAB phash2(T, R) TAB R
%%   escript phash2_oracle.escript floats SEED COUNT OUT
%%       COUNT lines: the 64 bits of a float in hex TAB io_lib:format("~p", [F])
%%   escript phash2_oracle.escript bench FILE ITERATIONS
%%       decodes the base64 term in the first column of every line of FILE, then times
%%       ITERATIONS rounds of erlang:phash2/1 over all of them (timer:tc), seven times;
%%       prints "terms TAB total_ns TAB ns_per_term" of the fastest of the seven
%%
%% Only `escript` is needed: no distribution, no epmd. Pids, ports and references of
%% other nodes are made by binary_to_term of hand-built external-format bytes.
%%
%% The hash written is that of binary_to_term(Etf), so the bytes in column 1 always denote
%% exactly the term that was hashed.
-mode(compile).

main(["terms", Seed, Count, Out]) ->
    seed(Seed),
    N = list_to_integer(Count),
    {ok, F} = file:open(Out, [write, raw, binary, {delayed_write, 1 bsl 20, 100}]),
    write_terms(F, N),
    ok = file:close(F);
main(["floats", Seed, Count, Out]) ->
    seed(Seed),
    {ok, F} = file:open(Out, [write, raw, binary, {delayed_write, 1 bsl 20, 100}]),
    lists:foreach(
      fun(_) ->
              X = any_float(),
              <<Bits:64>> = <<X/float>>,
              ok = file:write(F, io_lib:format("~16.16.0b\t~p~n", [Bits, X]))
      end, lists:seq(1, list_to_integer(Count))),
    ok = file:close(F);
main(["bench", File, Iters]) ->
    {ok, Bin} = file:read_file(File),
    Terms = [binary_to_term(base64:decode(hd(binary:split(L, <<"\t">>))))
             || L <- binary:split(Bin, <<"\n">>, [global]), L =/= <<>>],
    N = list_to_integer(Iters),
    _ = hash_rounds(Terms, 1, 0),               % warm up
    %% The best of several timings: on a shared machine the minimum is the least disturbed.
    Us = lists:min([element(1, timer:tc(fun() -> hash_rounds(Terms, N, 0) end))
                    || _ <- lists:seq(1, 7)]),
    Count = length(Terms) * N,
    io:format("~b\t~b\t~.3f~n", [length(Terms), Us * 1000, Us * 1000 / Count]);
main(_) ->
    io:format(standard_error,
              "usage: phash2_oracle.escript terms|floats SEED COUNT OUT | bench FILE N~n", []),
    halt(2).

%% The result is folded into an accumulator so the compiler cannot drop the calls.
hash_rounds(_Terms, 0, Acc) -> Acc;
hash_rounds(Terms, N, Acc) -> hash_rounds(Terms, N - 1, hash_all(Terms, Acc)).

hash_all([], Acc) -> Acc;
hash_all([T | Ts], Acc) -> hash_all(Ts, Acc bxor erlang:phash2(T)).

seed(S) ->
    _ = rand:seed(exsss, list_to_integer(S)),
    %% A few processes and ports of our own, so that local pids and ports are real.
    put(pids, list_to_tuple([self() | [spawn(fun() -> receive stop -> ok end end)
                                       || _ <- lists:seq(1, 8)]])),
    put(ports, list_to_tuple([open_port({spawn, "cat"}, []) || _ <- lists:seq(1, 3)])),
    put(refs, list_to_tuple([make_ref(), alias(), ets:new(t, []), atomics:new(1, []),
                             erlang:monitor(process, self())])),
    ok.

write_terms(_F, 0) -> ok;
write_terms(F, N) ->
    T = top(),
    Etf = term_to_binary(T, [{minor_version, 2}]),
    case byte_size(Etf) > 300000 of
        true -> write_terms(F, N);              % keep lines a reasonable size
        false ->
            T2 = binary_to_term(Etf),
            R = range(),
            ok = file:write(F, [base64:encode(Etf), $\t,
                                integer_to_list(erlang:phash2(T2)), $\t,
                                integer_to_list(erlang:phash2(T2, R)), $\t,
                                integer_to_list(R), $\n]),
            write_terms(F, N - 1)
    end.

%% ------------------------------------------------------------------ choice helpers

one_of(L) -> lists:nth(rand:uniform(length(L)), L).

%% [{Weight, fun() -> Term end}]
weighted(Choices) ->
    Pick = rand:uniform(lists:sum([W || {W, _} <- Choices])),
    weighted(Pick, Choices).
weighted(P, [{W, G} | _]) when P =< W -> G();
weighted(P, [{W, _} | Rest]) -> weighted(P - W, Rest).

range() ->
    weighted([{2, fun() -> 1 bsl 32 end},
              {1, fun() -> (1 bsl 32) - 1 end},
              {1, fun() -> 1 end},
              {1, fun() -> 1 bsl 27 end},
              {2, fun() -> one_of([2, 3, 10, 255, 256, 65536, (1 bsl 31) - 1, 1 bsl 31]) end},
              {3, fun() -> rand:uniform(1000) end},
              {10, fun() -> rand:uniform(1 bsl 32) end}]).

%% ------------------------------------------------------------------ terms

top() ->
    case rand:uniform(3000) of
        1 -> long_list();
        _ -> top1()
    end.

top1() ->
    weighted([{30, fun leaf/0},
              {35, fun() -> container(2 + rand:uniform(12)) end},
              {12, fun() -> container(15 + rand:uniform(80)) end},
              {3, fun deep/0},
              {3, fun large_map/0},
              {2, fun shrunk_map/0},
              {6, fun byte_list/0},
              {4, fun() -> improper(3 + rand:uniform(5)) end}]).

%% A term of roughly Budget nodes.
term(Budget) when Budget =< 1 -> leaf();
term(Budget) ->
    weighted([{5, fun() -> container(Budget) end}, {1, fun leaf/0}]).

container(Budget) ->
    Parts = parts(Budget - 1),
    weighted([{4, fun() -> [term(P) || P <- Parts] end},
              {4, fun() -> list_to_tuple([term(P) || P <- Parts]) end},
              {3, fun() -> maps:from_list([{term(max(1, P div 2)), term(max(1, P - P div 2))}
                                           || P <- Parts]) end},
              {2, fun() -> improper(Budget) end},
              {1, fun() -> [byte_or(term(P)) || P <- Parts] end},
              {1, fun() -> closure([term(P) || P <- lists:sublist(Parts, 4)]) end},
              {1, fun() -> made_fun([term(P) || P <- lists:sublist(Parts, 3)]) end}]).

%% Split a budget over 0..8 children.
parts(0) -> [];
parts(B) ->
    N = min(B, rand:uniform(8)),
    Base = B div N,
    [Base + (case I =< B rem N of true -> 1; false -> 0 end) || I <- lists:seq(1, N)].

byte_or(T) ->
    case rand:uniform(3) of
        1 -> T;
        _ -> rand:uniform(256) - 1
    end.

improper(Budget) ->
    Elems = case rand:uniform(3) of
                1 -> byte_list();
                _ -> [term(P) || P <- parts(max(1, Budget - 1))]
            end,
    Tail = weighted([{4, fun leaf_not_list/0},
                     {1, fun() -> list_to_tuple([leaf() || _ <- lists:seq(1, rand:uniform(3))]) end},
                     {1, fun() -> #{leaf() => leaf()} end}]),
    case Elems of
        [] -> [leaf() | Tail];
        _ -> Elems ++ Tail
    end.

leaf_not_list() ->
    case leaf() of
        L when is_list(L) -> one_of([tail, <<>>, 7, 1.5]);
        T -> T
    end.

byte_list() ->
    N = rand:uniform(20) - 1,
    weighted([{3, fun() -> [rand:uniform(256) - 1 || _ <- lists:seq(1, N)] end},
              {2, fun() -> [one_of([0, 0, 1, 127, 128, 255]) || _ <- lists:seq(1, N)] end},
              {2, fun() -> [$a + rand:uniform(26) - 1 || _ <- lists:seq(1, N)] end},
              {2, fun() -> [case rand:uniform(4) of
                                1 -> one_of([256, -1, 1 bsl 40, a, '', [], {}, 2.0, <<>>, [7]]);
                                _ -> rand:uniform(256) - 1
                            end || _ <- lists:seq(1, N)] end}]).

%% Longer than STRING_EXT allows, so it goes out as LIST_EXT of small integers.
long_list() ->
    [rand:uniform(256) - 1 || _ <- lists:seq(1, 65536 + rand:uniform(100))].

deep() ->
    Depth = weighted([{6, fun() -> 50 + rand:uniform(500) end},
                      {3, fun() -> 1000 + rand:uniform(4000) end},
                      {1, fun() -> 10000 end}]),
    %% Nesting through map keys is kept shallow: eetf (behind etf::decode for now) hashes
    %% every key when it builds a HashMap, so decoding keys nested N deep costs N^2.
    Kinds = case Depth > 600 of true -> [1, 2, 3, 4, 5, 6, 8]; false -> lists:seq(1, 8) end,
    Wrap = fun(Acc) ->
                   case one_of(Kinds) of
                       1 -> [Acc];
                       2 -> {Acc};
                       3 -> [small_leaf(), Acc];
                       4 -> [Acc | one_of([x, 1.5, <<>>, {}, 300])];
                       5 -> #{small_leaf() => Acc};
                       6 -> {small_leaf(), Acc};
                       7 -> #{Acc => small_leaf()};
                       8 -> [rand:uniform(256) - 1, rand:uniform(256) - 1 | Acc]
                   end
           end,
    lists:foldl(fun(_, Acc) -> Wrap(Acc) end, leaf(), lists:seq(1, Depth)).

%% Cheap leaves for the bulk of deep terms and big maps.
small_leaf() ->
    weighted([{3, fun() -> rand:uniform(300) - 20 end},
              {2, fun() -> one_of(['', a, ok, 'hôte', 'é', '日本']) end},
              {1, fun() -> one_of([0.0, -0.5, 1.0e300]) end},
              {1, fun() -> rand:bytes(rand:uniform(5) - 1) end},
              {1, fun() -> one_of([[], {}, #{}, "ab", 1 bsl 40, -(1 bsl 70)]) end}]).

large_map() ->
    maps:from_list([{small_leaf(), leaf()} || _ <- lists:seq(1, 33 + rand:uniform(100))]).

%% Built as a hash-array mapped trie, then shrunk below the flatmap limit.
shrunk_map() ->
    Big = maps:from_list([{K, leaf()} || K <- lists:seq(1, 40)]),
    maps:without(lists:seq(1, 40 - rand:uniform(8)), Big).

leaf() ->
    weighted([{14, fun atom/0},
              {12, fun small_int/0},
              {8, fun big_int/0},
              {8, fun any_float/0},
              {8, fun binary/0},
              {6, fun bitstring/0},
              {3, fun byte_list/0},
              {2, fun() -> one_of([[], {}, #{}, <<>>, "", '']) end},
              {4, fun pid/0},
              {3, fun port/0},
              {4, fun ref/0},
              {3, fun export_fun/0},
              {2, fun() -> closure([small_int() || _ <- lists:seq(1, rand:uniform(3) - 1)]) end},
              {2, fun() -> made_fun([atom() || _ <- lists:seq(1, rand:uniform(3) - 1)]) end}]).

atom() ->
    Chars = weighted([{6, fun() -> [one_of("abcdefghijklmnopqrstuvwxyz_@.0123456789ABCXYZ")
                                    || _ <- lists:seq(1, rand:uniform(20) - 1)] end},
                      {3, fun() -> [one_of([16#80, 16#A0, 16#BF, 16#C0, 16#C2, 16#C3, 16#E9,
                                            16#FF, $a, $@])
                                    || _ <- lists:seq(1, rand:uniform(12))] end},
                      {3, fun() -> [unicode_char() || _ <- lists:seq(1, rand:uniform(12))] end},
                      {1, fun() -> lists:duplicate(255, one_of([$z, 16#E9, 16#1F680])) end},
                      {2, fun() -> atom_to_list(one_of(['', a, ok, 'couchdb@db1.example.com',
                                                        'hôte@ñu', 'nœud@hôte'])) end}]),
    list_to_atom(Chars).

unicode_char() ->
    {Lo, Hi} = one_of([{16#20, 16#7E}, {16#A0, 16#FF}, {16#100, 16#7FF}, {16#800, 16#D7FF},
                       {16#E000, 16#FFFD}, {16#10000, 16#10FFFF}]),
    Lo + rand:uniform(Hi - Lo + 1) - 1.

small_int() ->
    weighted([{3, fun() -> rand:uniform(256) - 1 end},
              {2, fun() -> one_of([0, -1, 1, 255, 256, (1 bsl 27) - 1, 1 bsl 27, -(1 bsl 27),
                                   -(1 bsl 27) - 1, (1 bsl 31) - 1, 1 bsl 31, -(1 bsl 31),
                                   (1 bsl 32) - 1, 1 bsl 32]) end},
              {3, fun() -> rand:uniform(1 bsl 28) - (1 bsl 27) - 1 end},
              {2, fun() -> rand:uniform(1 bsl 32) - (1 bsl 31) end},
              {2, fun() -> (rand:uniform(1 bsl 60) - (1 bsl 59)) end}]).

big_int() ->
    Bits = weighted([{4, fun() -> 28 + rand:uniform(40) end},
                     {3, fun() -> 64 + rand:uniform(130) end},
                     {1, fun() -> rand:uniform(2100) end}]),
    <<V:Bits>> = <<(rand:uniform(1 bsl Bits) - 1):Bits>>,
    Sign = one_of([1, -1]),
    Sign * one_of([V, V bor (1 bsl (Bits - 1)), (1 bsl Bits) - 1, 1 bsl Bits]).

any_float() ->
    weighted([{2, fun() -> one_of([0.0, neg_zero(), 1.0, -1.0, 0.5, 1.0e15, 1.0e16, 1.0e21,
                                   5.0e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
                                   9007199254740992.0, 9007199254740993.0, 0.1, 100.0]) end},
              {4, fun() -> raw_float() end},
              {3, fun() -> (rand:uniform() - 0.5) * math:pow(10, rand:uniform(60) - 30) end},
              {2, fun() -> float(rand:uniform(1 bsl 53)) * one_of([1, -1, 0.25, 1024]) end}]).

neg_zero() ->
    <<F/float>> = <<1:1, 0:63>>,
    F.

raw_float() ->
    <<B:64>> = rand:bytes(8),
    case <<B:64>> of
        <<_:1, 2047:11, _:52>> -> raw_float();  % NaN and infinities are not terms
        <<F/float>> -> F
    end.

binary() ->
    N = weighted([{40, fun() -> rand:uniform(30) - 1 end},
                  {8, fun() -> 30 + rand:uniform(200) end},
                  {1, fun() -> 1000 + rand:uniform(3000) end}]),
    case rand:uniform(3) of
        1 ->                                    % a sub-binary of a bigger one
            Pre = rand:uniform(80),
            <<_:Pre/binary, Sub:N/binary, _/binary>> = rand:bytes(Pre + N + 70),
            Sub;
        _ -> rand:bytes(N)
    end.

bitstring() ->
    N = rand:uniform(40) - 1,
    Tail = rand:uniform(7),
    case rand:uniform(2) of
        1 -> <<(rand:bytes(N))/binary, (rand:uniform(1 bsl Tail) - 1):Tail>>;
        2 ->                                    % unaligned: starts at a bit offset
            Off = rand:uniform(7),
            <<_:Off, S:(N * 8 + Tail)/bitstring, _/bitstring>> = rand:bytes(N + 2),
            S
    end.

u32() ->
    weighted([{2, fun() -> rand:uniform(1 bsl 15) - 1 end},
              {1, fun() -> one_of([0, 16#7FFF, 16#8000, 16#FFFFFFFF]) end},
              {3, fun() -> rand:uniform(1 bsl 32) - 1 end}]).

node_ext() ->
    Name = atom_to_binary(one_of(['a@b', 'couchdb@db1.example.com', 'x@y', 'узел@хост',
                                  'hôte@ñu', 'n1@127.0.0.1']), utf8),
    <<119, (byte_size(Name)), Name/binary>>.

from_ext(Body, Fallback) ->
    try binary_to_term(<<131, Body/binary>>)
    catch error:badarg -> Fallback()
    end.

pid() ->
    case rand:uniform(3) of
        1 -> element(rand:uniform(tuple_size(get(pids))), get(pids));
        _ -> from_ext(<<88, (node_ext())/binary, (u32()):32, (u32()):32, (u32()):32>>,
                      fun() -> self() end)
    end.

port() ->
    Fallback = fun() -> element(1, get(ports)) end,
    case rand:uniform(4) of
        1 -> element(rand:uniform(tuple_size(get(ports))), get(ports));
        2 -> from_ext(<<89, (node_ext())/binary, (u32()):32, (u32()):32>>, Fallback);
        _ -> from_ext(<<120, (node_ext())/binary, (rand:uniform(1 bsl 64) - 1):64, (u32()):32>>,
                      Fallback)
    end.

ref() ->
    case rand:uniform(3) of
        1 -> element(rand:uniform(tuple_size(get(refs))), get(refs));
        _ ->
            Len = rand:uniform(5),
            Ids = << <<(u32()):32>> || _ <- lists:seq(1, Len) >>,
            from_ext(<<90, Len:16, (node_ext())/binary, (u32()):32, Ids/binary>>,
                     fun() -> make_ref() end)
    end.

export_fun() ->
    case rand:uniform(3) of
        1 -> one_of([fun lists:map/2, fun erlang:phash2/2, fun maps:get/3, fun io:format/1]);
        _ -> erlang:make_fun(atom(), atom(), rand:uniform(256) - 1)
    end.

%% Real closures compiled into this escript, capturing the given values.
closure([]) -> fun() -> ok end;
closure([A]) -> fun(X) -> {X, A} end;
closure([A, B]) -> fun(X, Y) -> [A, X, B, Y] end;
closure([A, B, C]) -> fun() -> {A, B, C} end;
closure([A, B, C | More]) -> fun(X) -> [X, A, B, C | More] end.

%% A NEW_FUN_EXT for a module that does not exist, with Index different from OldIndex:
%% only Index, the module, OldUniq and the environment may count.
made_fun(Free) ->
    Env = << <<E/binary>> || V <- Free, <<131, E/binary>> <- [term_to_binary(V, [{minor_version, 2}])] >>,
    Mod = atom_to_binary(one_of([no_such_mod, 'Elixir.Fake', 'модуль', atom()]), utf8),
    <<131, PidExt/binary>> = term_to_binary(pid(), [{minor_version, 2}]),
    Body = <<(rand:uniform(256) - 1), (rand:bytes(16))/binary, (u32()):32, (length(Free)):32,
             119, (byte_size(Mod)), Mod/binary,
             98, (rand:uniform(1 bsl 32) - (1 bsl 31)):32/signed,
             98, (rand:uniform(1 bsl 32) - (1 bsl 31)):32/signed,
             PidExt/binary, Env/binary>>,
    from_ext(<<112, (byte_size(Body) + 4):32, Body/binary>>, fun() -> closure(Free) end).
