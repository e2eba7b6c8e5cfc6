%% The caller side of tests/metrics.rs: a known workload against a running rexi-node, so the
%% test can check that its counters moved by exactly what was sent.
%% Started with: erl -run rn_metrics workload Target NPerForm NErrors NKills
-module(rn_metrics).
-export([workload/1]).

done(ok) -> io:format("PASS~n"), halt(0);
done({fail, Why}) -> io:format("FAIL ~p~n", [Why]), halt(1).

cast(Dest, MFA) ->
    Ref = make_ref(),
    erlang:send(Dest, {'$gen_cast', {doit, {self(), Ref}, undefined, MFA}}),
    Ref.

kill(Dest, Ref) -> erlang:send(Dest, {'$gen_cast', {kill, Ref}}).

stat(T, K) -> proplists:get_value(K, gen_server:call({rexi_server_mon, T}, stats, 5000)).

wait_jobs_zero(T, 0) -> {jobs_running, stat(T, jobs_running)};
wait_jobs_zero(T, K) ->
    case stat(T, jobs_running) of
        0 -> ok;
        _ -> timer:sleep(50), wait_jobs_zero(T, K - 1)
    end.

%% N echo casts through each name form, NErrors failing jobs through the node-name form,
%% NKills sleeping jobs through the phash2 form killed while they run, and one kill of a
%% ref that has no job.
workload([Target, NStr, ErrStr, KillStr]) ->
    T = list_to_atom(Target),
    N = list_to_integer(NStr),
    NErr = list_to_integer(ErrStr),
    NKill = list_to_integer(KillStr),
    Single = {rexi_server, T},
    Phash = {list_to_atom("rexi_server_" ++ integer_to_list(erlang:phash2(node()))), T},
    ByName = {list_to_atom("rexi_server_" ++ atom_to_list(node())), T},
    R = try
        pong = net_adm:ping(T),
        [begin
             Refs = [cast(D, {rexi_node, echo, [I]}) || I <- lists:seq(1, N)],
             [receive {Ref, _} -> ok after 10000 -> throw({no_reply, D}) end || Ref <- Refs]
         end || D <- [Single, Phash, ByName]],
        ErrRefs = [cast(ByName, {rexi_node, fail, [boom]}) || _ <- lists:seq(1, NErr)],
        [receive {Ref, {rexi_EXIT, _}} -> ok after 10000 -> throw(no_error_reply) end
         || Ref <- ErrRefs],
        KillRefs = [cast(Phash, {rexi_node, sleep, [60000]}) || _ <- lists:seq(1, NKill)],
        %% The kills must find running jobs: wait until every sleeper is in the job table.
        Running = fun W(K) ->
            case stat(T, jobs_running) of
                NKill -> ok;
                _ when K > 0 -> timer:sleep(20), W(K - 1);
                Other -> throw({sleepers_running, Other})
            end
        end,
        ok = Running(500),
        [kill(Phash, Ref) || Ref <- KillRefs],
        kill(Phash, make_ref()),
        ok = wait_jobs_zero(T, 200),
        io:format("WORKLOAD casts_per_form=~p errors=~p kills=~p~n", [N, NErr, NKill]),
        ok
    catch C:E:S -> {C, E, S}
    end,
    done(R).
