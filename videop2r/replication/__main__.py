"""`python -m videop2r.replication`: run the study (or, with --analyse-only, rebuild its results)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path

from videop2r.replication.spec import load_study
from videop2r.replication.study import StudyError, run_study


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m videop2r.replication", description=__doc__)
    parser.add_argument("--config", default="configs/replication.yaml", help="the study file")
    parser.add_argument("--out", default="runs/replication", help="output directory")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a study key, e.g. seeds=[0] or task.test_clips=40 (repeatable)")
    parser.add_argument("--analyse-only", action="store_true", help="rebuild results.json/report.md from the dumps")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    try:
        spec = load_study(args.config, args.set)
    except (ValueError, OSError) as exc:
        print(f"study config error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    # SIGTERM (nohup, a job runner) takes the Ctrl-C path: running jobs are stopped, not orphaned
    signal.signal(signal.SIGTERM, lambda signum, frame: (_ for _ in ()).throw(KeyboardInterrupt(f"signal {signum}")))
    timing_path = out / "timing.json"
    try:
        if args.analyse_only:
            timing = json.loads(timing_path.read_text()) if timing_path.exists() else {}
        else:
            timing = run_study(spec, out)
            timing_path.write_text(json.dumps(timing, indent=1))
        failure = None
    except StudyError as exc:  # analyse the seeds that did finish, then fail
        print(f"study failed: {exc}", file=sys.stderr)
        failure, timing = exc, {}
    # imported only now: the driver stays small (no torch) while the jobs run
    from videop2r.replication.analysis import analyse
    from videop2r.replication.report import write_report

    started = time.time()
    try:
        results = analyse(spec, out, {"wall_s": timing.get("wall_s"), "job_seconds": timing.get("job_seconds"),
                                  "data": timing.get("data")})
    except ValueError as exc:
        print(f"nothing to analyse: {exc}", file=sys.stderr)
        return 1
    results["analysis_s"] = time.time() - started
    (out / "results.json").write_text(json.dumps(results, indent=1))
    report = write_report(results, out, notes=[f"study file {args.config}, overrides {args.set or 'none'}"])
    print(report.read_text())
    return 1 if failure else 0


if __name__ == "__main__":
    sys.exit(main())
