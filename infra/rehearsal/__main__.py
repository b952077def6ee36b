"""`python -m infra.rehearsal` (`make rehearsal`): the cluster rehearsal, report in runs/rehearsal/.

Environment: REHEARSAL_STEPS (PA-GRPO steps; default 3, or the last fault's step + 5 so that a
replacement has the time to come back, be re-synced and serve), REHEARSAL_FAULTS
("COMPONENT@STEP,...": kill one pod of that app.kubernetes.io/component before that step and
reschedule it),
REHEARSAL_HELM_WAIT (1 = `helm install --wait` semantics, the default; 0 = plain install),
REHEARSAL_WAIT_S (the --wait timeout, default 300 s as Helm's), REHEARSAL_JOB_S (the RayJob's, 900 s),
REHEARSAL_SET ("key=value,..." extra `helm --set`s, e.g. fewer replicas), REHEARSAL_DIR
(default runs/rehearsal), REHEARSAL_CACHE (data + model, default runs/rehearsal-cache).
Exit code 0 only when nothing fell short; every namespace, link and process it made is removed
on exit, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from infra.rehearsal import flows, netns
from infra.rehearsal.report import build, write
from infra.rehearsal.scenario import Options, Rehearsal, parse_faults


#: steps the run goes on after the last fault when REHEARSAL_STEPS is not given
FAULT_RECOVERY_STEPS = 5


def options_from_env() -> Options:
    sets = [s.strip() for s in os.environ.get("REHEARSAL_SET", "").split(",") if s.strip()]
    faults = parse_faults(os.environ.get("REHEARSAL_FAULTS", ""))
    # a rescheduled rollout pod needs ~60 s (model fetch, start, re-resolution, re-sync): a few steps
    default_steps = max([3] + [step + FAULT_RECOVERY_STEPS for _, step in faults])
    return Options(steps=int(os.environ.get("REHEARSAL_STEPS", str(default_steps))),
                   faults=faults,
                   helm_wait=os.environ.get("REHEARSAL_HELM_WAIT", "1") != "0",
                   wait_s=float(os.environ.get("REHEARSAL_WAIT_S", "300")),  # helm's --timeout default, 5m
                   job_s=float(os.environ.get("REHEARSAL_JOB_S", "900")), sets=sets,
                   workdir=Path(os.environ.get("REHEARSAL_DIR", "runs/rehearsal")),
                   cache=Path(os.environ.get("REHEARSAL_CACHE", "runs/rehearsal-cache")))


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    why = netns.available()
    if why:
        print(f"rehearsal: cannot run here: {why}", file=sys.stderr)
        return 2
    try:
        options = options_from_env()
    except ValueError as exc:
        print(f"rehearsal: {exc}", file=sys.stderr)
        return 2
    lock = open("/run/lock/videop2r-rehearsal.lock", "w")  # noqa: SIM115 - held until exit
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print("rehearsal: another rehearsal is running on this machine (/run/lock/videop2r-rehearsal.lock)",
              file=sys.stderr)
        return 2
    removed = netns.cleanup_stale()
    if removed:
        print(f"rehearsal: removed leftovers of an earlier run: {' '.join(removed)}", file=sys.stderr)
    shutil.rmtree(options.workdir / "pods", ignore_errors=True)
    shutil.rmtree(options.workdir / "pvc", ignore_errors=True)
    options.workdir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    rehearsal = Rehearsal(options)
    report = None
    peak = [0]
    sampling = threading.Event()

    def sample() -> None:  # total resident memory of every process in the pods' namespaces
        while not sampling.wait(2.0):
            peak[0] = max(peak[0], netns.rss_bytes())
    threading.Thread(target=sample, name="memory", daemon=True).start()
    try:
        try:
            rehearsal.install()
            rehearsal.train()
        except KeyboardInterrupt as exc:
            rehearsal.shortfalls.append(f"interrupted ({exc or 'Ctrl-C'})")
        except Exception as exc:
            logging.exception("rehearsal failed")
            rehearsal.shortfalls.append(f"{type(exc).__name__}: {exc}")
        if rehearsal.cluster is not None:
            try:
                report = build(rehearsal, rehearsal.flows or flows.matrix(rehearsal.cluster))
            except Exception as exc:
                logging.exception("report failed")
                rehearsal.shortfalls.append(f"report: {type(exc).__name__}: {exc}")
    finally:
        sampling.set()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # cleanup is not interrupted
        if rehearsal.cluster is not None:
            rehearsal.cluster.close()
        leftovers = [n for n in netns.namespaces() if n.startswith(netns.PREFIX)]
        if leftovers:
            netns.cleanup_stale()
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if report is None:
        report = build(rehearsal, [])
    report["wall_s"] = round(time.monotonic() - rehearsal.started, 1)
    write(report, rehearsal, options.workdir, peak[0])
    for line in rehearsal.shortfalls:
        print(f"rehearsal: SHORTFALL: {line}", file=sys.stderr)
    print(f"rehearsal: report in {options.workdir / 'report.md'} ({'PASS' if not rehearsal.shortfalls else 'FAIL'})")
    return 0 if not rehearsal.shortfalls else 1


if __name__ == "__main__":
    sys.exit(main())
