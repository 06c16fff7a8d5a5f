"""Messages of the farm across hosts: run control <-> node agents, and the assignment
service <-> the readout. A kind frame, then a msgpack metadata frame (`farm.messages`).

    HEARTBEAT  agent -> run control   meta: host, roles, state, restarts (of workers, so far); every HEARTBEAT_S
                                      (also its hello), and at once after a worker restart
    CONFIGURE  run control -> agent   meta: run number, collector endpoint, Triton URL, nodes' endpoints
    CONFIGURED agent -> run control   meta: what the roles bound (a node's fragment endpoint, its slots)
    START      run control -> agent   meta: events or duration_s, replay (the readout)
    END_INPUT  run control -> agent   meta: {} (the readout takes no more Level-1 accepts: a drain)
    STOP       run control -> agent   meta: {} (drain, stop the roles, send their statistics)
    STOPPED    agent -> run control   meta: restarts, problems
    EXIT       run control -> agent   meta: {} (the agent exits)
    FAILED     agent -> run control   meta: problem (a role could not start)
    ROLE_DIED  agent -> run control   meta: role ("builder" or "readout"), exit_code (died while running)
    TIME_REQ   run control -> agent   meta: seq, t0 (run control's clock)
    TIME_REP   agent -> run control   meta: seq, t0, t1, t2 (the host's clock)
    KILL       run control -> agent   meta: identity of a worker its builder reported silent
    ACCEPT     readout -> assignment  meta: ids (Level-1 accepts that need a node)
    ASSIGN     assignment -> readout  meta: pairs [l1_id, node] (send the fragments there)
    CLEAR      assignment -> readout  meta: ids (decided: drop the fragments kept for them)
"""

from __future__ import annotations

HEARTBEAT = b"HEARTBEAT"
CONFIGURE = b"CONFIGURE"
CONFIGURED = b"CONFIGURED"
START = b"START"
STOP = b"STOP"
END_INPUT = b"END_INPUT"
STOPPED = b"STOPPED"
EXIT = b"EXIT"
FAILED = b"FAILED"
ROLE_DIED = b"ROLE_DIED"
TIME_REQ = b"TIME_REQ"
TIME_REP = b"TIME_REP"
KILL = b"KILL"
ACCEPT = b"ACCEPT"
ASSIGN = b"ASSIGN"
CLEAR = b"CLEAR"

READOUT_FEED = "readout-feed"  # identity of the readout's connection to the assignment service
