#!/usr/bin/python3
"""bench part "throughput": batched lookups and records, side by side with
SQLite doing the same work in-process on the same database file.

One tcached of our own (journal_mode=WAL, synchronous=NORMAL: its default
--sync normal) is filled with ENTRIES records through libtcache, then
bench/tput measures (see bench/tput.c for the records and the reference):

  lookups     batches of 1, 10, 100 and 1,000 keys a request through
              libtcache, one request in flight, hits (keys of the fill, each
              with its one discovered input) and misses (keys never
              recorded), in passes that look every key up once as a test
              run does; keys a second of time spent in tc_lookup
  lookup ref  SQLite alone, in-process, on the same file: one read
              transaction a 1,000 keys, per key a prepared lookup of the
              entry row by key (unexpired) and, for a hit, of its
              discovered inputs, copied out; it takes turns with the
              1,000-key runs, pass for pass (cmp-lookup)
  hit writes  tcached writes hit counts and last use after its replies
              (once idle 50 ms, 1,024 a step, or a step with each other
              transaction); between passes the client waits until it has,
              and its CPU time then (the writes and their checkpoint) is
              reported per hit, apart from the lookups' rate
  records     1, 4 and 16 clients at once (threads, each with its own
              tc_client and connection), each sending one record a request
              (single) or 100 (batched), every reply meaning committed;
              records/s over all clients
  record ref  SQLite alone, in-process, on the same file with the same
              settings (WAL, synchronous=NORMAL, foreign keys on), 100
              records a BEGIN IMMEDIATE transaction: per record the set of
              its declared inputs found by its 64-bit hash (made with its
              rows when new, no row by row comparison), the entry inserted,
              its discovered input row inserted; it takes turns with the
              16x1 and 1x100 runs in 0.1 s slices (cmp-record), each turn
              after tcached has finished what it does after replying (its
              checkpointer thread), whose CPU time is reported apart

Taking turns puts both on the same machine at the same moments (others
share it); each figure is the median over the rounds.  Every process makes
an untimed pass over the keys first, so both read a warm cache.

Goals (ours / reference, same run):
  batched_lookup     1,000-key batches, hits       >= 0.8 x ref lookup (hits)
  batched_record     1 client, 100 a request       >= 0.8 x ref, 100 a txn
  concurrent_record  16 clients, 1 a request       >= 0.5 x ref, 100 a txn

Usage: bench/throughput.py [--quick] [--json FILE] [--rounds N]
"""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

PART = "throughput"
LOOKUP_BATCHES = (1, 10, 100, 1000)
RECORD_RUNS = ((1, 1), (4, 1), (16, 1), (1, 100), (4, 100), (16, 100))
# Record runs taking turns with the reference (100 records a transaction).
CMP_RECORDS = ((16, 1), (1, 100))
DURABILITY = ("journal_mode=WAL, synchronous=NORMAL (tcached --sync normal, "
              "its default; the reference the same): a reply means "
              "committed to the WAL; a crash of the process loses "
              "nothing, a power cut may lose the last commits")

FULL = {"entries": 20000, "rounds": 5, "lookup_s": 0.25, "cmp_s": 0.5,
        "record_s": 0.4}
QUICK = {"entries": 1000, "rounds": 1, "lookup_s": 0.05, "cmp_s": 0.05,
         "record_s": 0.1}


def run(prog, *args):
    """One run of bench/tput: its name=value figures."""
    p = subprocess.run([prog] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=300)
    if p.returncode != 0:
        common.die(PART, "tput %s failed: %s" % (args[0], p.stderr.strip()))
    return {k: float(v) for k, v in
            (f.split("=", 1) for f in p.stdout.split())}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="write the result here")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke-size run of a few seconds")
    ap.add_argument("--rounds", type=int, help="rounds of every run")
    opts = ap.parse_args()
    cfg = dict(QUICK if opts.quick else FULL)
    if opts.rounds:
        cfg["rounds"] = opts.rounds
    t0 = time.perf_counter()
    prog = common.program("tput")

    lookups = {(b, m): [] for b in LOOKUP_BATCHES for m in ("hit", "miss")}
    lookup_ref = {"hit": [], "miss": []}
    hit_write = []
    daemon_us = {"hit": [], "miss": []}
    after_us = {r: [] for r in CMP_RECORDS}
    records = {r: [] for r in RECORD_RUNS}
    record_ref = {r: [] for r in CMP_RECORDS}
    single_ref = []
    n = cfg["entries"]
    with common.Daemon() as d:
        run(prog, "fill", d.sock, n)
        for r in range(cfg["rounds"]):
            for m in ("hit", "miss"):
                f = run(prog, "cmp-lookup", d.sock, d.db, n, m,
                        cfg["cmp_s"])
                lookups[(1000, m)].append(f["rate"])
                lookup_ref[m].append(f["ref"])
                daemon_us[m].append(f["daemon_us"])
                if m == "hit":
                    hit_write.append(f["hit_write_us"])
                for b in LOOKUP_BATCHES[:-1]:
                    lookups[(b, m)].append(run(
                        prog, "lookup", d.sock, n, b, m,
                        cfg["lookup_s"])["rate"])
        for r in range(cfg["rounds"]):
            for clients, batch in RECORD_RUNS:
                seed = "r%d-c%d-b%d" % (r, clients, batch)
                if (clients, batch) in CMP_RECORDS:
                    f = run(prog, "cmp-record", d.sock, d.db, clients, batch,
                            seed, cfg["record_s"])
                    record_ref[(clients, batch)].append(f["ref"])
                    after_us[(clients, batch)].append(f["after_us"])
                else:
                    f = run(prog, "record", d.sock, clients, batch, seed,
                            cfg["record_s"])
                records[(clients, batch)].append(f["rate"])
            single_ref.append(run(prog, "ref-record", d.db, 1,
                                  "ref%d-single" % r, cfg["record_s"] / 2,
                                  "normal")["rate"])
        rss = d.rss_kib("VmHWM")

    med = common.median
    lk = {m: {str(b): med(lookups[(b, m)]) for b in LOOKUP_BATCHES}
          for m in ("hit", "miss")}
    lref = {m: med(v) for m, v in lookup_ref.items()}
    rec = {"c%d_b%d" % k: med(v) for k, v in records.items()}
    rref = {"c%d_b%d" % k: med(v) for k, v in record_ref.items()}
    paired = {
        "lookup_hit": [a / b for a, b in zip(lookups[(1000, "hit")],
                                             lookup_ref["hit"])],
        "lookup_miss": [a / b for a, b in zip(lookups[(1000, "miss")],
                                              lookup_ref["miss"])],
    }
    for k in CMP_RECORDS:
        paired["record_c%d_b%d" % k] = [
            a / b for a, b in zip(records[k], record_ref[k])]

    goals = {
        "batched_lookup": common.goal(
            lk["hit"]["1000"], lref["hit"], ">=", 0.8, "keys/s",
            "SQLite in-process on the same file, in turns with tcached: "
            "prepared lookup of the entry by key and of a hit's "
            "discovered inputs, one read transaction a 1,000 keys"),
        "batched_record": common.goal(
            rec["c1_b100"], rref["c1_b100"], ">=", 0.8, "records/s",
            "SQLite in-process on the same file, same settings, in turns "
            "with tcached: set found by hash, entry and input rows "
            "inserted, one transaction a 100 records"),
        "concurrent_record": common.goal(
            rec["c16_b1"], rref["c16_b1"], ">=", 0.5, "records/s",
            "the same reference (one transaction a 100 records), in turns "
            "with 16 clients sending one record a request each"),
    }
    figures = {
        "machine": common.machine(),
        "durability": DURABILITY,
        "entries": n,
        "rounds": cfg["rounds"],
        "record_shape": "test id of 20 modules x 50 tests; 9 declared "
                        "inputs shared by a module's tests (3 files, 4 "
                        "interfaces, 2 env), new every 1,000 records; 1 "
                        "discovered input; default ttl; no message",
        "lookup_keys_per_s": lk,
        "lookup_ref_keys_per_s": lref,
        "hit_write_us": med(hit_write),
        "hit_write_is": "tcached's CPU time writing the hit counts and last "
                        "use of the entries a pass hit, and checkpointing "
                        "them, which it does after the replies once idle "
                        "(waited out between passes), per hit; the "
                        "reference writes no hit counts",
        "lookup_daemon_cpu_us_per_key": {m: med(v)
                                         for m, v in daemon_us.items()},
        "lookup_ref_us_per_key": {m: 1e6 / v for m, v in lref.items() if v},
        "record_per_s": rec,
        "record_after_reply_cpu_us": {"c%d_b%d" % k: med(v)
                                      for k, v in after_us.items()},
        "record_after_reply_is": "CPU tcached spent after its replies "
                                 "(its checkpointer thread copying the WAL "
                                 "into the database), waited out before "
                                 "each reference turn so that it does not "
                                 "run in it, per record",
        "record_ref_per_s": rref,
        "record_ref_1_a_txn_per_s": med(single_ref),
        "paired_ratio_median": {k: med(v) for k, v in paired.items()},
        "tcached_peak_rss_kib": rss,
        "runs": {"lookup": {"%d_%s" % k: v for k, v in lookups.items()},
                 "lookup_ref": lookup_ref,
                 "hit_write_us": hit_write,
                 "lookup_daemon_cpu_us": daemon_us,
                 "record_after_reply_cpu_us": {
                     "c%d_b%d" % k: v for k, v in after_us.items()},
                 "record": {"c%d_b%d" % k: v for k, v in records.items()},
                 "record_ref": {"c%d_b%d" % k: v
                                for k, v in record_ref.items()},
                 "record_ref_1_a_txn": single_ref},
    }

    def ratio(a, b):
        return "%.2f" % (a / b) if a and b else ""

    table = [["throughput (%d entries, WAL, synchronous=NORMAL)" % n,
              "clients", "a request", "tcache /s", "SQLite in-process /s",
              "ratio"]]
    for m, word in (("hit", "hits"), ("miss", "misses")):
        for b in LOOKUP_BATCHES:
            ref = lref[m] if b == 1000 else None
            table.append(["lookup keys, %s" % word, 1, b, lk[m][str(b)],
                          ref or "", ratio(lk[m][str(b)], ref)])
    table.append(["hit counts written once idle, CPU us a hit", "", "",
                  med(hit_write), "", ""])
    for clients, batch in RECORD_RUNS:
        ours = rec["c%d_b%d" % (clients, batch)]
        ref = rref.get("c%d_b%d" % (clients, batch))
        table.append(["records, %s" % ("single" if batch == 1 else
                                        "batched"), clients, batch, ours,
                      ref or "", ratio(ours, ref)])
    table.append(["records, SQLite alone, 1 a transaction", 1, 1, "",
                  med(single_ref), ""])
    took = time.perf_counter() - t0
    common.write(opts.json, PART, took, figures, goals, table)
    common.print_table(table)
    for name, g in goals.items():
        print("%-18s %.2f (goal %s)%s" % (name, g["ratio"] or 0, g["goal"],
                                          "" if g["met"] else "  MISSED"))
    print("durability: %s; %.1f s" % (DURABILITY, took))


if __name__ == "__main__":
    main()
