"""plantloop's whole 30-day 3 x 4 x 10 run against SimPy running only the bare plant of that size.

Issue 13 asks that the full simulation (plant, four mock systems, network model, integration
engine, checker) stay >= 6x faster end to end than SimPy runs just the machines: 120 stations for
30 days with machine_model.py's fail/repair/inspect cycle (60 s mean processing, as plant P1).
The two are run alternately, in one session, so that both see the same machine; the ratio of the
median wall times is the figure to quote.

Usage: python3 benches/simpy/end_to_end.py [--rounds N] [--plantloop PATH]
Needs a release build (cargo build --release -p plantloop) and SimPy (pip install simpy).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCENARIO = os.path.join(ROOT, "scenarios", "plants-3x4x10-30d.toml")


def run_plantloop(binary):
    t0 = time.perf_counter()
    out = subprocess.run(
        [binary, "run", SCENARIO, "--json", "-"],
        check=True,
        capture_output=True,
        text=True,
    )
    wall_s = time.perf_counter() - t0
    report = json.loads(out.stdout)
    report = report[0] if isinstance(report, list) else report
    if not report.get("passed"):
        sys.exit(f"plantloop run failed its own checks (seed {report.get('seed')})")
    return wall_s, report["sim"]["events"]


def run_simpy():
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "machine_model.py"), "--machines", "120", "--days", "30"],
        check=True,
        capture_output=True,
        text=True,
    )
    r = json.loads(out.stdout)
    return r["wall_s"], r["events"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--plantloop", default=os.path.join(ROOT, "target", "release", "plantloop"))
    args = ap.parse_args()
    ours, theirs = [], []
    for _ in range(args.rounds):
        w, ev = run_plantloop(args.plantloop)
        ours.append(w)
        sw, sev = run_simpy()
        theirs.append(sw)
    o, t = statistics.median(ours), statistics.median(theirs)
    print(json.dumps({
        "plantloop_wall_s": [round(x, 3) for x in ours],
        "plantloop_events": ev,
        "simpy_bare_plant_wall_s": [round(x, 3) for x in theirs],
        "simpy_events": sev,
        "ratio": round(t / o, 2),
    }))


if __name__ == "__main__":
    main()
