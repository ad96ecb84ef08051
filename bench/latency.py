#!/usr/bin/python3
"""bench part "latency": one lookup round trip, one request in flight.

Side by side in one run, every server on CPU 0 and every client on CPU 0
(same CPU: each round trip is two context switches on one core) or on CPU 1
(two CPUs: each is two cross-CPU wake-ups, the usual case on a laptop):

  raw event        bench/lat_echo, a raw libevent event with read/write,
                   answering a request of the size of a one-key LOOKUP with a
                   reply of the size of its hit reply: the floor
  raw bufferevent  the same through a libevent bufferevent set up as tcached
                   once set up its own: what a bufferevent costs
  tcache hit       tc_lookup of one key through libtcache, a cached pass
  tcache miss      the same for an absent key
  Redis GET        Debian's redis-server on a private Unix socket, no
                   persistence, a value that makes the reply as large, GET
                   written and read like the raw client (bench/lat_client)
  Python plugin    Client.lookup of the pytest plugin (tcache_pytest/proto.py),
                   the hit key
  Python raw       a plain Python socket ping-pong against the raw event
                   server, for what Python itself costs

Each run is a separate client process timing every round trip; the runs go
round after round (A B C ... A B C ...) so that noise falls on all alike,
and each figure is the median over the rounds of a run's p50, p99 and round
trips a second.

Goals: lookup_rtt = tcache hit p50 / raw event p50 (<= 1.3), on the worse of
the two placements; lookup_rate_vs_redis = tcache hit lookups/s / Redis
GETs/s (>= 1.0), on the worse of the two.

Usage: bench/latency.py [--quick] [--json FILE]
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

PART = "latency"
PLUGIN_DIR = os.path.join(common.TOP, "contrib", "pytest")
HIT_KEY = bytes([0x11]) * 32        # the key lat_client records and looks up
HIT_INPUTS = 2                      # and its discovered inputs
WARMUP = 300                        # round trips before timing (as lat_client)

PLACEMENTS = [("same", 0, "same CPU"), ("cross", 1, "2 CPUs")]

# (name, label): the order of the table and of every round.
RUNS = [("raw_event", "raw AF_UNIX ping-pong (libevent event)"),
        ("raw_bev", "raw AF_UNIX ping-pong (bufferevent)"),
        ("tcache_hit", "libtcache lookup, hit"),
        ("tcache_miss", "libtcache lookup, miss"),
        ("redis_get", "Redis GET (same client style)"),
        ("py_plugin_hit", "Python: plugin client lookup, hit"),
        ("py_raw", "Python: raw socket ping-pong")]


# --- the Python clients (run as: latency.py --py-client ...) ---

def _time_loop(trip, seconds):
    for _ in range(WARMUP):
        trip()
    ns = []
    clock = time.perf_counter_ns
    start = t = clock()
    end = start + int(seconds * 1e9)
    while t < end:
        t0 = t
        trip()
        t = clock()
        ns.append(t - t0)
    ns.sort()
    return {"n": len(ns), "p50_ns": common.percentile(ns, 50),
            "p99_ns": common.percentile(ns, 99),
            "per_s": len(ns) * 1e9 / (t - start)}


def py_client(argv):
    """--py-client plugin SOCK SECONDS | raw SOCK REQ REP SECONDS"""
    import json
    if argv[0] == "plugin":
        sys.path.insert(0, PLUGIN_DIR)
        from tcache_pytest import proto
        client = proto.Client(argv[1], timeout=10.0)
        client.connect()

        def trip():
            res = client.lookup([HIT_KEY])
            if not (res[0].is_pass() and len(res[0].inputs) == HIT_INPUTS):
                raise SystemExit("latency: the hit key is not a cached pass")
        seconds = float(argv[2])
    else:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(argv[1])
        req = b"q" * int(argv[2])
        rep_len = int(argv[3])
        buf = bytearray(rep_len)
        view = memoryview(buf)

        def trip():
            s.sendall(req)
            got = 0
            while got < rep_len:
                n = s.recv_into(view[got:])
                if n == 0:
                    raise SystemExit("latency: the echo server went away")
                got += n
        seconds = float(argv[4])
    print(json.dumps(_time_loop(trip, seconds)))


# --- servers ---

def wait_socket(path, proc, what, timeout=10.0):
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %d" % (what, proc.returncode))
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return
        except OSError:
            time.sleep(0.005)
        finally:
            s.close()
    raise RuntimeError("%s did not answer on %s" % (what, path))


def start_echo(style, path, req, rep):
    proc = subprocess.Popen(["taskset", "-c", "0", common.program("lat_echo"),
                             style, path, str(req), str(rep)],
                            stdout=subprocess.DEVNULL)
    wait_socket(path, proc, "lat_echo " + style)
    return proc


def resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def redis_key_value(req, rep):
    """A key whose GET is req bytes, and a value whose reply is rep bytes."""
    key = None
    for k in range(1, 256):
        if len(resp(b"GET", b"k" * k)) == req:
            key = (b"tcache-bench-latency-" + b"k" * k)[:k]
            break
    vlen = None
    for v in range(1, rep):
        if len(b"$%d\r\n" % v) + v + 2 == rep:
            vlen = v
            break
    if key is None or vlen is None:
        raise RuntimeError("no Redis key/value of %d/%d bytes" % (req, rep))
    return key, vlen


def start_redis(workdir, key, vlen):
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.access(exe, os.X_OK):
        return None, None, "redis-server is not installed (make bench installs it)"
    path = os.path.join(workdir, "redis.sock")
    proc = subprocess.Popen(
        ["taskset", "-c", "0", exe, "--port", "0", "--unixsocket", path,
         "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
         "--dir", workdir, "--logfile", os.path.join(workdir, "redis.log"),
         "--daemonize", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_socket(path, proc, "redis-server")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(resp(b"SET", key, b"v" * vlen))
    if s.recv(64) != b"+OK\r\n":
        raise RuntimeError("redis-server did not take the SET")
    s.close()
    return proc, path, None


def stop(proc):
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- runs ---

def run_one(cmd, cpu):
    out = subprocess.run(["taskset", "-c", str(cpu)] + cmd, check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    import json
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="write the result here")
    ap.add_argument("--quick", action="store_true",
                    help="smoke-size run (a few seconds)")
    ap.add_argument("--rounds", type=int, help="rounds of every run")
    ap.add_argument("--seconds", type=float, help="timed seconds a run")
    if len(sys.argv) > 1 and sys.argv[1] == "--py-client":
        py_client(sys.argv[2:])
        return
    opts = ap.parse_args()
    rounds = opts.rounds or (1 if opts.quick else 7)
    seconds = opts.seconds or (0.02 if opts.quick else 0.3)
    if (os.cpu_count() or 1) < 2:
        common.die(PART, "needs two CPUs for the cross-CPU placement")

    t0 = time.perf_counter()
    client = common.program("lat_client")
    common.program("lat_echo")
    req, hit_rep, miss_rep = (int(x) for x in subprocess.run(
        [client, "sizes"], check=True, stdout=subprocess.PIPE,
        text=True).stdout.split())
    work = tempfile.mkdtemp(prefix="tcache-bench-latency-")
    procs = []
    daemon = None
    figures = {"request_bytes": req, "hit_reply_bytes": hit_rep,
               "miss_reply_bytes": miss_rep, "rounds": rounds,
               "seconds_a_run": seconds,
               "servers_cpu": 0, "client_cpu": {"same": 0, "cross": 1}}
    try:
        ev_sock = os.path.join(work, "event.sock")
        bev_sock = os.path.join(work, "bev.sock")
        procs.append(start_echo("event", ev_sock, req, hit_rep))
        procs.append(start_echo("bev", bev_sock, req, hit_rep))
        os.makedirs(os.path.join(work, "tcached"))
        daemon = common.Daemon(workdir=os.path.join(work, "tcached"), cpu=0)
        subprocess.run([client, "record", daemon.sock], check=True)
        key, vlen = redis_key_value(req, hit_rep)
        redis, redis_sock, redis_why = start_redis(work, key, vlen)
        procs.append(redis)
        if redis_why:
            figures["redis_skipped"] = redis_why
        py = [sys.executable, os.path.abspath(__file__), "--py-client"]
        s = str(seconds)
        cmds = {
            "raw_event": [client, "raw", ev_sock, str(req), str(hit_rep), s],
            "raw_bev": [client, "raw", bev_sock, str(req), str(hit_rep), s],
            "tcache_hit": [client, "tcache", daemon.sock, "hit", s],
            "tcache_miss": [client, "tcache", daemon.sock, "miss", s],
            "redis_get": ([client, "redis", redis_sock, key.decode(),
                           str(hit_rep), s] if redis_sock else None),
            "py_plugin_hit": py + ["plugin", daemon.sock, s],
            "py_raw": py + ["raw", ev_sock, str(req), str(hit_rep), s],
        }
        samples = {p: {name: [] for name, _ in RUNS} for p, _, _ in PLACEMENTS}
        for _ in range(rounds):
            for place, cpu, _ in PLACEMENTS:
                for name, _ in RUNS:
                    if cmds[name] is not None:
                        samples[place][name].append(run_one(cmds[name], cpu))
        figures["tcached_rss_kib"] = daemon.rss_kib()
    finally:
        if daemon is not None:
            daemon.stop()
        for p in procs:
            stop(p)
        shutil.rmtree(work, ignore_errors=True)

    med = {}
    for place, _, _ in PLACEMENTS:
        med[place] = {}
        for name, _ in RUNS:
            runs = samples[place][name]
            if not runs:
                continue
            med[place][name] = {
                "p50_us": common.median([r["p50_ns"] for r in runs]) / 1e3,
                "p99_us": common.median([r["p99_ns"] for r in runs]) / 1e3,
                "per_s": common.median([r["per_s"] for r in runs]),
                "p50_us_runs": [round(r["p50_ns"] / 1e3, 2) for r in runs]}
    figures.update(med)

    goals = {}
    # The worse placement of each: a user's client lands on either.
    rtt = [common.goal(med[p]["tcache_hit"]["p50_us"],
                       med[p]["raw_event"]["p50_us"], "<=", 1.3, "us p50",
                       "raw AF_UNIX ping-pong p50, same sizes (%s, the "
                       "worse placement)" % label)
           for p, _, label in PLACEMENTS]
    goals["lookup_rtt"] = max(rtt, key=lambda g: g["ratio"])
    if all("redis_get" in med[p] for p, _, _ in PLACEMENTS):
        rate = [common.goal(med[p]["tcache_hit"]["per_s"],
                            med[p]["redis_get"]["per_s"], ">=", 1.0,
                            "lookups/s", "Redis GET/s, one in flight (%s, "
                            "the worse placement)" % label)
                for p, _, label in PLACEMENTS]
        goals["lookup_rate_vs_redis"] = min(rate, key=lambda g: g["ratio"])
    else:
        goals["lookup_rate_vs_redis"] = common.goal(
            med["same"]["tcache_hit"]["per_s"], None, ">=", 1.0, "lookups/s",
            "Redis GET/s: " + figures.get("redis_skipped", "not measured"))

    table = [["round trip (one in flight)", "same CPU p50 us", "p99 us",
              "per s", "2 CPUs p50 us", "p99 us", "per s",
              "p50 / raw event (same, 2 CPUs)"]]
    for name, label in RUNS:
        row = [label]
        for place, _, _ in PLACEMENTS:
            m = med[place].get(name)
            row += ([m["p50_us"], m["p99_us"], m["per_s"]] if m
                    else ["-", "-", "-"])
        ratios = []
        for place, _, _ in PLACEMENTS:
            m, ref = med[place].get(name), med[place]["raw_event"]
            ratios.append("%.2f" % (m["p50_us"] / ref["p50_us"]) if m else "-")
        row.append(" / ".join(ratios))
        table.append(row)

    took = time.perf_counter() - t0
    common.write(opts.json, PART, took, figures, goals, table)
    print("request %d bytes, reply %d bytes (hit), %d (miss); %d rounds of "
          "%.2f s a run; servers on CPU 0" % (req, hit_rep, miss_rep, rounds,
                                               seconds))
    common.print_table(table)
    for what, g in goals.items():
        print("%s: %s (goal %s) %s" % (
            what, "-" if g["ratio"] is None else "%.3f" % g["ratio"],
            g["goal"], {True: "met", False: "NOT MET"}.get(g["met"], "?")))
    print("took %.1f s" % took)


if __name__ == "__main__":
    main()
