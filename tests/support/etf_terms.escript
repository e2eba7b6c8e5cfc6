#!/usr/bin/env escript
%% -*- erlang -*-
%%! -noshell
%%
%% The BEAM side of tests/etf_beam_roundtrip.rs.
%%
%%   etf_terms.escript gen Seed Count OutFile
%%       Writes random terms of every kind as external term format, each term in
%%       several encodings: term_to_binary with minor_version 0 (old FLOAT_EXT,
%%       Latin-1 atoms), 1 (OTP 25's default), 2 (UTF-8 atoms, what the
%%       distribution uses) and compressed, plus hand-made bytes for the tags that
%%       term_to_binary no longer emits (PID_EXT, PORT_EXT, REFERENCE_EXT,
%%       NEW_REFERENCE_EXT, list tails written as lists, small bignums, ...), alone
%%       and nested inside tuples and lists.
%%       Record: <<Kind:8, Flags:8, Len:32, Etf:Len/binary>>. Kind: 0,1,2 = minor
%%       version, 3 = compressed, 4 = hand-made. Flags bit 0: OTP's bytes can be
%%       compared with ours byte for byte (kind 2 and no map of more than 32
%%       keys inside).
%%
%%   etf_terms.escript check OrigFile OursFile
%%       OursFile holds one record <<Status:8, Len:32, Etf:Len/binary>> per record of
%%       OrigFile (Status 0: Rust re-encoded it; otherwise Rust failed and said so).
%%       Checks binary_to_term(Ours) =:= binary_to_term(Orig) for every record and
%%       prints each mismatch, then "checked N mismatches M".
-mode(compile).

main(["gen", SeedS, CountS, Out]) ->
    Seed = list_to_integer(SeedS),
    _ = rand:seed(exsss, {Seed, Seed bxor 16#5eed, 42}),
    Count = list_to_integer(CountS),
    Procs = [spawn(fun() -> receive stop -> ok end end) || _ <- lists:seq(1, 10)],
    Ports = [open_port({spawn, "cat"}, []) || _ <- lists:seq(1, 3)],
    put(pids, list_to_tuple([self() | Procs])),
    put(ports, list_to_tuple(Ports)),
    put(refs, list_to_tuple([make_ref() || _ <- lists:seq(1, 5)] ++
                            [erlang:monitor(process, P) || P <- Procs] ++
                            [erlang:alias() || _ <- lists:seq(1, 3)])),
    {ok, F} = file:open(Out, [write, binary, raw, delayed_write]),
    Fixed = fixed_terms(),
    Random = [top_term() || _ <- lists:seq(1, Count)],
    N1 = lists:foldl(fun(T, N) -> N + emit_term(F, T) end, 0, Fixed ++ Random),
    N2 = lists:foldl(fun(B, N) -> N + emit_raw(F, B) end, 0, handmade()),
    ok = file:close(F),
    io:format("wrote ~b records (~b terms, ~b hand-made)~n",
              [N1 + N2, length(Fixed) + Count, N2]),
    [port_close(P) || P <- Ports],
    halt(0);
main(["check", OrigFile, OursFile]) ->
    {ok, Orig} = file:read_file(OrigFile),
    {ok, Ours} = file:read_file(OursFile),
    put(otp_quirks, 0),
    {N, Bad} = check(Orig, Ours, 0, 0),
    io:format("~b records hold keys OTP 25 itself cannot round-trip (compared by content)~n",
              [get(otp_quirks)]),
    io:format("checked ~b mismatches ~b~n", [N, Bad]),
    halt(0);
main(_) ->
    io:format(standard_error, "usage: etf_terms.escript gen Seed Count Out | check Orig Ours~n", []),
    halt(2).

%% ------------------------------------------------------------------ output

emit_term(F, T) ->
    Plain = [{K, term_to_binary(T, [{minor_version, K}])} || K <- [0, 1, 2]],
    Comp = term_to_binary(T, [compressed, {minor_version, 2}]),
    Exact = case has_big_map(T) of true -> 0; false -> 1 end,
    [record(F, K, case K of 2 -> Exact; _ -> 0 end, B) || {K, B} <- Plain],
    record(F, 3, 0, Comp),
    4.

emit_raw(F, B) ->
    _ = binary_to_term(B),   % it must denote a term
    record(F, 4, 0, B),
    1.

record(F, Kind, Flags, B) ->
    ok = file:write(F, [<<Kind:8, Flags:8, (byte_size(B)):32>>, B]).

check(<<>>, <<>>, N, Bad) -> {N, Bad};
check(<<Kind:8, _:8, L1:32, Orig:L1/binary, R1/binary>>,
      <<Status:8, L2:32, Ours:L2/binary, R2/binary>>, N, Bad) ->
    T = binary_to_term(Orig),
    Ok = case Status of
             0 ->
                 case catch binary_to_term(Ours) of
                     U when U =:= T -> true;
                     {'EXIT', E} -> report(N, Kind, T, {binary_to_term_failed, E}), false;
                     U -> same_content(N, Kind, T, U)
                 end;
             _ -> report(N, Kind, T, rust_failed), false
         end,
    check(R1, R2, N + 1, case Ok of true -> Bad; false -> Bad + 1 end);
check(_, _, N, Bad) ->
    io:format("MISMATCH record count or framing differs after ~b records~n", [N]),
    {N, Bad + 1}.

%% OTP 25 itself cannot round-trip some maps of more than 32 keys exactly: when a key
%% holds a one- or two-word external reference (old REFERENCE_EXT forms) or a fun,
%% the key may hash differently once decoded, so that M =/= binary_to_term(
%% term_to_binary(M)) and maps:is_key(K, M) is false for one of its own keys; whether
%% it shows depends on the order of the pairs. (Reproduced with OTP's own bytes:
%% R = a one-word ref, M = maps:from_list([{R, x} | [{I, I} || I <- lists:seq(1, 40)]]),
%% maps:is_key(R, binary_to_term(term_to_binary(M))) is false.) Only for such terms
%% the two sides are compared by content (deterministic encoding sorts every map).
same_content(N, Kind, T, U) ->
    D = fun(X) -> term_to_binary(X, [deterministic, {minor_version, 2}]) end,
    case unstable(T, false) andalso D(T) =:= D(U) of
        true -> put(otp_quirks, get(otp_quirks) + 1), true;
        false -> report(N, Kind, T, {got, U}), false
    end.

%% Does T hold a map of more than 32 keys with a hash-unstable key?
unstable(T, InKey) when is_map(T) ->
    Big = map_size(T) > 32,
    lists:any(fun({K, V}) -> unstable(K, InKey orelse Big) orelse unstable(V, InKey) end,
              maps:to_list(T));
unstable(T, InKey) when is_tuple(T) -> unstable(tuple_to_list(T), InKey);
unstable([H | R], InKey) -> unstable(H, InKey) orelse unstable(R, InKey);
unstable(R, true) when is_reference(R) ->
    <<131, 90, Len:16, _/binary>> = term_to_binary(R, [{minor_version, 2}]),
    Len < 3;
unstable(F, true) when is_function(F) -> true;
unstable(F, InKey) when is_function(F) ->
    {env, Env} = erlang:fun_info(F, env), unstable(Env, InKey);
unstable(_, _) -> false.

report(N, Kind, T, What) ->
    io:format("MISMATCH record ~b (kind ~b): expected ~P~n  ~P~n", [N, Kind, T, 6, What, 6]).

%% Maps of more than 32 keys are written in hash order; smaller ones in key order.
has_big_map(T) when is_map(T), map_size(T) > 32 -> true;
has_big_map(T) when is_map(T) -> has_big_map(maps:to_list(T));
has_big_map(T) when is_tuple(T) -> has_big_map(tuple_to_list(T));
has_big_map([H | R]) -> has_big_map(H) orelse has_big_map(R);
has_big_map(F) when is_function(F) ->
    {env, Env} = erlang:fun_info(F, env), has_big_map(Env);
has_big_map(_) -> false.

%% ------------------------------------------------------------------ fixed terms

fixed_terms() ->
    Deep = fun(Wrap, Leaf, D) -> lists:foldl(fun(_, Acc) -> Wrap(Acc) end, Leaf, lists:seq(1, D)) end,
    [0, 255, 256, -1, -256, 16#7FFFFFFF, -16#80000000, 16#80000000, -16#80000001,
     1 bsl 59, -(1 bsl 59), 1 bsl 64, (1 bsl 64) - 1, 1 bsl 2040, (1 bsl 2040) - 1,
     1 bsl 2048, -(1 bsl 4000), 1 bsl 100000,
     0.0, -0.0, 0.1, 1.1, -1.5e300, 5.0e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
     '', 'hôte@ñu', 'é', 'Ã©', 'ÿ@host', 'nœud@hôte', list_to_atom([16#3b1, 16#3b2]),
     list_to_atom(lists:duplicate(255, $a)), list_to_atom(lists:duplicate(255, $é)),
     list_to_atom(lists:duplicate(255, 16#1F600)),
     [], "", "abc", [-1, 2], [256, 1], [1, -2, 3 | four], [a | b], [[] | []],
     lists:seq(0, 255), lists:duplicate(70000, 7), [-1 | lists:duplicate(70000, 7)],
     lists:seq(1, 100000),
     <<>>, <<1:1>>, <<255, 3:2>>, <<0:7>>, binary:copy(<<"x">>, 70000),
     {}, list_to_tuple(lists:seq(1, 256)), list_to_tuple(lists:seq(1, 70000)),
     #{}, maps:from_list([{I, I} || I <- lists:seq(1, 33)]),
     maps:from_list([{{k, I}, [I]} || I <- lists:seq(1, 100)]),
     #{#{a => 1} => #{[1] => {2}}},
     fun lists:map/2, fun erlang:abs/1, erlang:make_fun(nomod, nofun, 0),
     closure(0, []), closure(2, [x, <<"y">>]), closure(5, [1, 2.0, "3", {4}, [5 | 6]]),
     self(), make_ref(), element(1, get(ports)),
     Deep(fun(X) -> [X] end, a, 10000), Deep(fun(X) -> {X} end, [], 6000),
     Deep(fun(X) -> #{k => X} end, 1, 3000), Deep(fun(X) -> [1, -2, X | x] end, [], 5000),
     Deep(fun(X) -> {ok, X, [X]} end, z, 12), Deep(fun(X) -> closure(1, [X]) end, 0, 500)].

%% Real compiled closures; the free variables come from the arguments so the compiler
%% cannot fold them away.
closure(0, _) -> fun() -> ok end;
closure(1, [A]) -> fun() -> A end;
closure(2, [A, B]) -> fun(X) -> {X, A, B} end;
closure(5, [A, B, C, D, E]) -> fun() -> [E, D, C, B, A] end;
closure(N, Vs) -> fun(X) -> list_to_tuple([X, N | Vs]) end.

%% ------------------------------------------------------------------ random terms

pick(L) -> lists:nth(rand:uniform(length(L)), L).

top_term() ->
    case rand:uniform(20) of
        1 -> deep_term();
        2 -> big_map();
        _ -> term(1 + rand:uniform(5))
    end.

term(0) -> leaf();
term(D) ->
    case rand:uniform(12) of
        1 -> [term(D - 1) || _ <- lists:seq(1, rand:uniform(6) - 1)];
        2 -> list_to_tuple([term(D - 1) || _ <- lists:seq(1, rand:uniform(6) - 1)]);
        3 -> maps:from_list([{term(D - 1), term(D - 1)} || _ <- lists:seq(1, rand:uniform(5) - 1)]);
        4 -> improper(D);
        5 -> closure(rand:uniform(6) - 1, [term(D - 1) || _ <- lists:seq(1, 6)]);
        6 -> [rand:uniform(600) - 300 || _ <- lists:seq(1, rand:uniform(8))];
        _ -> leaf()
    end.

improper(D) ->
    Elems = [term(D - 1) || _ <- lists:seq(1, rand:uniform(4))],
    lists:foldr(fun(E, Acc) -> [E | Acc] end, pick([leaf(), x, <<"t">>, {}, 1.5]), Elems).

deep_term() ->
    D = 5000 + rand:uniform(5000),
    Wrap = pick([fun(X) -> [X] end, fun(X) -> {X} end, fun(X) -> [X, 1] end,
                 fun(X) -> {a, X} end, fun(X) -> #{v => X} end, fun(X) -> [0 | X] end,
                 fun(X) -> [X | improper] end]),
    lists:foldl(fun(_, Acc) -> Wrap(Acc) end, leaf(), lists:seq(1, D)).

big_map() ->
    N = 33 + rand:uniform(100),
    maps:from_list([{term(2), term(2)} || _ <- lists:seq(1, N)]).

leaf() ->
    case rand:uniform(16) of
        1 -> rand:uniform(256) - 1;
        2 -> rand:uniform(1 bsl 32) - (1 bsl 31);
        3 -> big();
        4 -> float();
        5 -> atom();
        6 -> binary();
        7 -> bitstring();
        8 -> string();
        9 -> pid();
        10 -> port();
        11 -> ref();
        12 -> pick([fun lists:map/2, fun erlang:abs/1, fun maps:get/3,
                    erlang:make_fun(rand_atom(), rand_atom(), rand:uniform(256) - 1)]);
        13 -> [];
        14 -> {};
        15 -> #{};
        _ -> -rand:uniform(1000)
    end.

big() ->
    Bits = pick([32, 33, 60, 63, 64, 65, 100, 1000, 2040, 2048, 2100, 9000]),
    V = rand:uniform(1 bsl Bits),
    case rand:uniform(2) of 1 -> V; 2 -> -V end.

float() ->
    case rand:uniform(4) of
        1 -> rand:uniform();
        2 -> (rand:uniform() - 0.5) * math:pow(10, rand:uniform(600) - 300);
        3 -> float(rand:uniform(1000000));
        4 -> <<F/float>> = <<(rand:uniform(16#7FE) ):11/integer-unit:1, 0:1,
                             (rand:uniform(1 bsl 52) - 1):52>>,
             %% Any finite double (the first 12 bits are exponent and sign).
             F
    end.

atom() ->
    case rand:uniform(4) of
        1 -> rand_atom();
        2 -> list_to_atom([160 + rand:uniform(95) || _ <- lists:seq(1, rand:uniform(20))]);
        3 -> list_to_atom([16#400 + rand:uniform(200) || _ <- lists:seq(1, rand:uniform(20))]);
        4 -> pick(['', true, false, undefined, rexi_server, 'hôte@ñu', 'nœud@hôte'])
    end.

rand_atom() ->
    list_to_atom([$a + rand:uniform(26) - 1 || _ <- lists:seq(1, rand:uniform(12))]).

binary() -> rand:bytes(pick([0, 1, 3, 40, 255, 256, 1000])).

bitstring() ->
    Bits = rand:uniform(7),
    B = rand:bytes(rand:uniform(10) - 1),
    <<B/binary, (rand:uniform(1 bsl Bits) - 1):Bits>>.

string() ->
    [rand:uniform(256) - 1 || _ <- lists:seq(1, rand:uniform(50))].

pid() ->
    case rand:uniform(3) of
        1 -> pick(tuple_to_list(get(pids)));
        _ -> binary_to_term(<<131, 88, (atom_ext(node_name()))/binary,
                              (rand:uniform(1 bsl 32) - 1):32, (rand:uniform(1 bsl 32) - 1):32,
                              (rand:uniform(1 bsl 32) - 1):32>>)
    end.

port() ->
    case rand:uniform(3) of
        1 -> pick(tuple_to_list(get(ports)));
        2 -> binary_to_term(<<131, 89, (atom_ext(node_name()))/binary,
                              (rand:uniform(1 bsl 32) - 1):32, (rand:uniform(1 bsl 32) - 1):32>>);
        3 -> binary_to_term(<<131, 120, (atom_ext(node_name()))/binary,
                              (rand:uniform(1 bsl 64) - 1):64, (rand:uniform(1 bsl 32) - 1):32>>)
    end.

ref() ->
    case rand:uniform(3) of
        1 -> pick(tuple_to_list(get(refs)));
        _ -> N = pick([1, 2, 3, 4, 5]),
             binary_to_term(<<131, 90, N:16, (atom_ext(node_name()))/binary,
                              (rand:uniform(1 bsl 32) - 1):32,
                              << <<(rand:uniform(1 bsl 32) - 1):32>> || _ <- lists:seq(1, N) >>/binary>>)
    end.

node_name() ->
    pick(['x@y', 'hôte@ñu', 'nœud@hôte', 'couchdb@db1.example.com']).

%% ------------------------------------------------------------------ hand-made bytes

atom_ext(A) ->
    B = unicode:characters_to_binary(atom_to_list(A)),
    case byte_size(B) < 256 of
        true -> <<119, (byte_size(B)):8, B/binary>>;
        false -> <<118, (byte_size(B)):16, B/binary>>
    end.

latin1_atom_ext(A) ->
    B = list_to_binary(atom_to_list(A)),   % characters < 256 only
    case byte_size(B) < 256 andalso rand:uniform(2) =:= 1 of
        true -> <<115, (byte_size(B)):8, B/binary>>;
        false -> <<100, (byte_size(B)):16, B/binary>>
    end.

body(T) -> <<131, B/binary>> = term_to_binary(T, [{minor_version, 2}]), B.

%% Bodies (no version byte) in encodings term_to_binary no longer produces.
odd_body() ->
    Node = pick(['x@y', 'hôte@ñu', nonode@nohost]),
    case rand:uniform(16) of
        1 -> <<103, (latin1_atom_ext(Node))/binary, (rand:uniform(1 bsl 15) - 1):32,
               (rand:uniform(8) - 1):32, (rand:uniform(4) - 1):8>>;
        2 -> <<102, (latin1_atom_ext(Node))/binary, (rand:uniform(1 bsl 28) - 1):32,
               (rand:uniform(4) - 1):8>>;
        3 -> <<101, (latin1_atom_ext(Node))/binary, (rand:uniform(1 bsl 18) - 1):32,
               (rand:uniform(4) - 1):8>>;
        4 -> N = rand:uniform(3),
             <<114, N:16, (latin1_atom_ext(Node))/binary, (rand:uniform(4) - 1):8,
               << <<(rand:uniform(1 bsl 18) - 1):32>> || _ <- lists:seq(1, N) >>/binary>>;
        5 -> %% [A, B | [C, D]] written with a LIST_EXT tail
             <<108, 2:32, (body(a))/binary, (body(-1))/binary,
               108, 2:32, (body(c))/binary, (body(<<"d">>))/binary, 106>>;
        6 -> %% [1, 2 | "abc"] written with a STRING_EXT tail
             <<108, 2:32, 97, 1, 97, 2, 107, 3:16, "abc">>;
        7 -> %% LIST_EXT with no elements is its tail
             <<108, 0:32, (body(tail))/binary>>;
        8 -> <<108, 0:32, 106>>;
        9 -> %% small values as bignums
             V = rand:uniform(1 bsl 31) - 1,
             <<110, 4, (rand:uniform(2) - 1):8, V:32/little>>;
        10 -> <<111, 9:32, 1, 5:72/little>>;
        11 -> <<110, 0, 0>>;
        12 -> B = rand:bytes(rand:uniform(5)),
              <<77, (byte_size(B)):32, 8, B/binary>>;
        13 -> <<107, 0:16>>;
        14 -> <<99, (float_text(rand:uniform() * 1000))/binary>>;
        15 -> A = pick(['hôte@ñu', 'é', 'ÿ', '', abc]),
              latin1_atom_ext(A);
        16 -> %% SMALL_INTEGER in an improper tail, deep inside
              <<108, 1:32, 97, 1, 97, 2>>
    end.

float_text(F) ->
    S = list_to_binary(io_lib:format("~.20e", [F])),
    <<S/binary, 0:((31 - byte_size(S)) * 8)>>.

%% Odd bodies alone and nested in tuples, lists and maps.
handmade() ->
    Singles = [<<131, (odd_body())/binary>> || _ <- lists:seq(1, 150)],
    Nested = [nest(3) || _ <- lists:seq(1, 100)],
    DeepOld = <<131, (binary:copy(<<108, 1:32>>, 6000))/binary, (odd_body())/binary,
                (binary:copy(<<106>>, 6000))/binary>>,
    [DeepOld | Singles ++ [<<131, B/binary>> || B <- Nested]].

nest(0) -> odd_body();
nest(D) ->
    case rand:uniform(4) of
        1 -> N = rand:uniform(4),
             <<104, N, << <<(nest(D - 1))/binary>> || _ <- lists:seq(1, N) >>/binary>>;
        2 -> N = rand:uniform(4),
             <<108, N:32, << <<(nest(D - 1))/binary>> || _ <- lists:seq(1, N) >>/binary, 106>>;
        3 -> <<116, 1:32, (body({key, D, rand:uniform(1 bsl 30)}))/binary, (nest(D - 1))/binary>>;
        4 -> odd_body()
    end.
