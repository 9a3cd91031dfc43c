"""The plain machine fail/repair/inspect model in SimPy, the baseline for plantloop's kernel bench.

Issue 4 asks that plantloop's DES kernel alone run this model at >= 20x SimPy's events/s. The same
model in Rust is benches/benches/kernel.rs; keep the two in step.

Model (identical parameters on both sides):
  MACHINES       100 machines, each an independent cycle:
  PROCESS_MEAN   process one unit: exponential time, mean 60 s            -> event "unit done"
  INSPECT_TIME   then inspect it: constant 5 s, defective with p = 0.01    -> event "inspection done"
  MTBF           a breakdown process per machine fires after exponential time, mean 10 h
                 (event "failure"); if the machine is processing a unit, the unit is interrupted
  MTTR           and repaired for exponential time, mean 40 min (event "repair done"), after which
                 the unit resumes with its remaining processing time. Failures that fire while the
                 machine inspects or is already broken are counted and otherwise ignored.
  HORIZON        7 days of simulated time; SEED 42.

events = units + inspections + failures fired + repairs: the model's own events, counted the same way
on both sides (SimPy's internal bookkeeping events are not counted).

Usage: python3 machine_model.py [--machines N] [--days D] [--seed S]
Prints one JSON object with the counts, the wall time and events_per_s.
"""

import argparse
import json
import random
import time

import simpy

MACHINES = 100
PROCESS_MEAN_S = 60.0
INSPECT_TIME_S = 5.0
DEFECT_RATE = 0.01
MTBF_S = 10 * 3600.0
MTTR_S = 40 * 60.0
HORIZON_DAYS = 7
SEED = 42


class Stats:
    def __init__(self):
        self.units = 0
        self.inspections = 0
        self.defects = 0
        self.failures_fired = 0
        self.interruptions = 0
        self.repairs = 0


class Machine:
    def __init__(self, env, rng, stats):
        self.env = env
        self.rng = rng
        self.stats = stats
        self.processing = True
        self.broken = False
        self.proc = env.process(self.work())
        env.process(self.breakdowns())

    def work(self):
        env, rng, stats = self.env, self.rng, self.stats
        while True:
            self.processing = True
            remaining = rng.expovariate(1.0 / PROCESS_MEAN_S)
            while remaining > 0:
                start = env.now
                try:
                    yield env.timeout(remaining)
                    remaining = 0
                except simpy.Interrupt:
                    remaining -= env.now - start
                    self.broken = True
                    yield env.timeout(rng.expovariate(1.0 / MTTR_S))
                    stats.repairs += 1
                    self.broken = False
            stats.units += 1
            self.processing = False
            yield env.timeout(INSPECT_TIME_S)
            stats.inspections += 1
            if rng.random() < DEFECT_RATE:
                stats.defects += 1

    def breakdowns(self):
        env, rng, stats = self.env, self.rng, self.stats
        while True:
            yield env.timeout(rng.expovariate(1.0 / MTBF_S))
            stats.failures_fired += 1
            if self.processing and not self.broken:
                stats.interruptions += 1
                self.proc.interrupt()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--machines", type=int, default=MACHINES)
    ap.add_argument("--days", type=float, default=HORIZON_DAYS)
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args()

    env = simpy.Environment()
    rng = random.Random(args.seed)
    stats = Stats()
    for _ in range(args.machines):
        Machine(env, rng, stats)
    t0 = time.perf_counter()
    env.run(until=args.days * 86400.0)
    wall_s = time.perf_counter() - t0
    events = stats.units + stats.inspections + stats.failures_fired + stats.repairs
    print(json.dumps({
        "engine": "simpy " + simpy.__version__,
        "machines": args.machines,
        "days": args.days,
        "seed": args.seed,
        "events": events,
        "units": stats.units,
        "inspections": stats.inspections,
        "defects": stats.defects,
        "failures": stats.failures_fired,
        "interruptions": stats.interruptions,
        "repairs": stats.repairs,
        "wall_s": round(wall_s, 4),
        "events_per_s": round(events / wall_s),
    }))


if __name__ == "__main__":
    main()
