#!/usr/bin/python3
"""bench part "throughput": batched lookups and records, side by side with
SQLite doing the same work in-process on the same database file.

One tcached of our own (journal_mode=WAL, synchronous=NORMAL: its default
--sync normal) is filled with ENTRIES records through libtcache, then:

  lookups     bench/tput lookup: batches of 1, 10, 100 and 1,000 keys a
              request through libtcache, one request in flight, hits (keys
              of the fill, each with its one discovered input) and misses
              (keys never recorded); keys a second of lookup time
  lookup ref  bench/tput ref-lookup: SQLite alone, in-process, on the same
              file: per batch of 1,000 one read transaction, per key a
              prepared point lookup of the entry row by key (unexpired)
              and, for a hit, its discovered inputs copied out; keys/s
  records     bench/tput record: 1, 4 and 16 clients at once (threads, each
              with its own tc_client and connection), each sending one
              record a request (single) or 100 (batched), every reply
              meaning committed; records/s over all clients
  record ref  bench/tput ref-record: SQLite alone, in-process, on the same
              file with the same settings (WAL, synchronous=NORMAL, foreign
              keys on), batches of 100 (and of 1) in one BEGIN IMMEDIATE
              transaction each: per record the set of its declared inputs
              found by its 64-bit hash (made with its rows when new, no row
              by row comparison), the entry inserted, its discovered input
              row inserted; records/s

The records look like the pytest plugin's (see bench/tput.c): test ids of
20 modules of 50 tests, 9 declared inputs shared by every test of a module
(3 files, 4 interfaces, 2 environment variables; a new version every 1,000
records), one discovered input each, default ttl, no message.

Runs go round after round (every configuration once a round, ours and the
reference interleaved) and each figure is the median over the rounds.  Each
reference process first makes one untimed pass over the keys, as each
lookup client does, so both read a warm cache.

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
REF_BATCH = 100                  # records a transaction of the reference
DURABILITY = ("journal_mode=WAL, synchronous=NORMAL (tcached --sync normal, "
              "its default; the reference the same): a reply means "
              "committed to the WAL; a crash of the process loses "
              "nothing, a power cut may lose the last commits")

FULL = {"entries": 20000, "rounds": 5, "lookup_s": 0.25, "record_s": 0.4}
QUICK = {"entries": 1000, "rounds": 1, "lookup_s": 0.1, "record_s": 0.1}


def run(prog, *args):
    """One run of bench/tput; its rate."""
    p = subprocess.run([prog] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=300)
    if p.returncode != 0:
        common.die(PART, "tput %s failed: %s" % (args[0], p.stderr.strip()))
    fields = dict(f.split("=", 1) for f in p.stdout.split())
    return float(fields.get("rate", 0))


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
    records = {r: [] for r in RECORD_RUNS}
    record_ref = {REF_BATCH: [], 1: []}
    n = cfg["entries"]
    with common.Daemon() as d:
        run(prog, "fill", d.sock, n)
        for r in range(cfg["rounds"]):
            for m in ("hit", "miss"):
                for b in LOOKUP_BATCHES:
                    lookups[(b, m)].append(run(prog, "lookup", d.sock, n, b,
                                               m, cfg["lookup_s"]))
                lookup_ref[m].append(run(prog, "ref-lookup", d.db, n, 1000,
                                         m, cfg["lookup_s"]))
        for r in range(cfg["rounds"]):
            for clients, batch in RECORD_RUNS:
                records[(clients, batch)].append(run(
                    prog, "record", d.sock, clients, batch,
                    "r%d-c%d-b%d" % (r, clients, batch), cfg["record_s"]))
                if (clients, batch) in ((16, 1), (1, 100)):
                    record_ref[REF_BATCH].append(run(
                        prog, "ref-record", d.db, REF_BATCH,
                        "ref%d-%d" % (r, clients), cfg["record_s"],
                        "normal"))
            record_ref[1].append(run(prog, "ref-record", d.db, 1,
                                     "ref%d-single" % r, cfg["record_s"],
                                     "normal"))
        rss = d.rss_kib("VmHWM")

    med = common.median
    lk = {m: {str(b): med(lookups[(b, m)]) for b in LOOKUP_BATCHES}
          for m in ("hit", "miss")}
    lref = {m: med(v) for m, v in lookup_ref.items()}
    rec = {"c%d_b%d" % k: med(v) for k, v in records.items()}
    rref = {"b%d" % k: med(v) for k, v in record_ref.items()}

    goals = {
        "batched_lookup": common.goal(
            lk["hit"]["1000"], lref["hit"], ">=", 0.8, "keys/s",
            "SQLite in-process on the same file: prepared point lookup of "
            "the entry and a hit's inputs, one read txn per 1,000 keys"),
        "batched_record": common.goal(
            rec["c1_b100"], rref["b%d" % REF_BATCH], ">=", 0.8, "records/s",
            "SQLite in-process, same file and settings: set by hash, entry "
            "and input rows inserted, one txn per 100 records"),
        "concurrent_record": common.goal(
            rec["c16_b1"], rref["b%d" % REF_BATCH], ">=", 0.5, "records/s",
            "the same reference (one txn per 100 records) vs 16 clients "
            "sending one record a request each"),
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
        "lookup_miss_ratio_1000": (lk["miss"]["1000"] / lref["miss"]
                                   if lref["miss"] else None),
        "record_per_s": rec,
        "record_ref_per_s": rref,
        "tcached_peak_rss_kib": rss,
        "runs": {"lookup": {"%d_%s" % k: v for k, v in lookups.items()},
                 "lookup_ref": lookup_ref,
                 "record": {"c%d_b%d" % k: v for k, v in records.items()},
                 "record_ref": {"b%d" % k: v
                                for k, v in record_ref.items()}},
    }

    def ratio(a, b):
        return "%.2f" % (a / b) if a and b else "-"

    table = [["throughput (%d entries, WAL, synchronous=NORMAL)" % n,
              "clients", "a request", "tcache /s", "SQLite in-process /s",
              "ratio"]]
    for m, word in (("hit", "hits"), ("miss", "misses")):
        for b in LOOKUP_BATCHES:
            ref = lref[m] if b == 1000 else None
            table.append(["lookup keys, %s" % word, 1, b, lk[m][str(b)],
                          ref if ref else "", ratio(lk[m][str(b)], ref)])
    for clients, batch in RECORD_RUNS:
        ours = rec["c%d_b%d" % (clients, batch)]
        goal = (clients, batch) in ((16, 1), (1, 100))
        ref = rref["b%d" % REF_BATCH] if goal else None
        table.append(["records, %s" % ("single" if batch == 1 else
                                        "batched"), clients, batch, ours,
                      ref if ref else "", ratio(ours, ref)])
    table.append(["records, SQLite alone, 1 a txn", 1, 1, "",
                  rref["b1"], ""])
    took = time.perf_counter() - t0
    common.write(opts.json, PART, took, figures, goals, table)
    common.print_table(table)
    for name, g in goals.items():
        print("%-18s %.2f (goal %s)%s" % (name, g["ratio"] or 0, g["goal"],
                                          "" if g["met"] else "  MISSED"))
    print("durability: %s; %.1f s" % (DURABILITY, took))


if __name__ == "__main__":
    main()
