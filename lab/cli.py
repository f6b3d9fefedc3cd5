"""`conformance lab ...`: bring the lab up and down, inspect it, run commands, drift it.

conformance/cli.py wires this in with add_lab_parser() and run_lab_command(); for the
lab alone, `python -m lab ...` works too.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from . import config as c
from .util import LabError, LabUnsupported

EXIT_UNSUPPORTED = 2


def add_lab_parser(subparsers: Any) -> None:
    """Register `lab` and its subcommands on an argparse subparsers object."""
    lab = subparsers.add_parser("lab", help="local test hosts (systemd-nspawn) for the harness", description=__doc__)
    sub = lab.add_subparsers(dest="lab_command", metavar="COMMAND", required=True)
    sub.add_parser("up", help="build what is missing, start both hosts, wait until healthy")
    sub.add_parser("down", help="stop the hosts, remove mounts, veths and the bridge")
    st = sub.add_parser("status", help="hosts, units and listeners (exit 1 if not up)")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    ex = sub.add_parser("exec", help="run a command as root inside a host: exec HOST -- CMD")
    ex.add_argument("host", choices=list(c.HOSTS))
    ex.add_argument("--timeout", type=float, default=600.0, help="seconds (default 600)")
    ex.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    dr = sub.add_parser("drift", help="apply or reset named breakages")
    dsub = dr.add_subparsers(dest="drift_command", metavar="ACTION", required=True)
    dsub.add_parser("list", help="known drifts and which are applied")
    ap = dsub.add_parser("apply", help="apply one drift and wait until it is in effect")
    ap.add_argument("name")
    dsub.add_parser("reset", help="revert every applied drift and wait until healthy")
    sc = sub.add_parser("scale", help="extra minimal hosts gc-s01.. for the scale benchmark")
    ssub = sc.add_subparsers(dest="scale_command", metavar="ACTION", required=True)
    sup = ssub.add_parser("up", help="exactly N scale hosts running and ready (s01..sNN)")
    sup.add_argument("n", type=int, metavar="N")
    ssub.add_parser("down", help="stop and remove every scale host (the main lab is left alone)")
    sst = ssub.add_parser("status", help="scale hosts and their readiness (exit 1 if one is not ready)")
    sst.add_argument("--json", action="store_true", help="machine-readable output")


def run_lab_command(args: argparse.Namespace) -> int:
    try:
        return _dispatch(args)
    except LabUnsupported as exc:
        print(f"conformance lab: {exc}", file=sys.stderr)
        return EXIT_UNSUPPORTED
    except LabError as exc:
        print(f"conformance lab: {exc}", file=sys.stderr)
        return 1
    except subprocess.TimeoutExpired as exc:
        print(f"conformance lab: timed out: {exc}", file=sys.stderr)
        return 1


def prepare_for_run() -> int:
    """``conformance run`` without a site: the lab as it is when it runs or carries drifts,
    brought up only when it is down (see ``api.lab_for_run``)."""
    return run_lab_command(argparse.Namespace(lab_command="for-run"))


def _dispatch(args: argparse.Namespace) -> int:
    # Imported here so `--help` works on machines that cannot run the lab.
    from . import api, drifts
    from .runtime import require_supported

    require_supported()
    cmd = args.lab_command
    if cmd == "up":
        info = api.lab_up()
        _print_table(api.lab_status())
        if not info.changed:
            print(f"lab already up and healthy; nothing changed ({info.seconds:.1f} s)")
        else:
            kind = "cold (built first)" if info.cold else "warm"
            print(f"lab up in {info.seconds:.1f} s ({kind}); state in {info.state_dir}")
        return 0
    if cmd == "for-run":  # internal: conformance run's preparation, not a subcommand
        readiness = api.lab_for_run()
        print(readiness.note)
        return 0
    if cmd == "down":
        secs = api.lab_down()
        print(f"lab down ({secs:.1f} s)")
        return 0
    if cmd == "status":
        status = api.lab_status()
        if args.json:
            print(
                json.dumps(
                    {
                        h: {
                            "machine": s.machine,
                            "addr": s.addr,
                            "running": s.running,
                            "units": s.units,
                            "listening": [f"{a}:{p} {n}" for a, p, n in s.listening],
                        }
                        for h, s in status.items()
                    },
                    indent=2,
                )
            )
        else:
            _print_table(status)
            applied = drifts.applied()
            print(f"drifts applied: {', '.join(applied) if applied else 'none'}")
        up = all(s.running and all(v == "active" for v in s.units.values()) for s in status.values())
        return 0 if up else 1
    if cmd == "exec":
        argv = list(args.cmd)
        if argv and argv[0] == "--":
            argv = argv[1:]
        if not argv:
            raise LabError("usage: conformance lab exec HOST -- CMD [ARGS...]")
        from .runtime import exec_in

        return exec_in(args.host, argv, timeout=args.timeout, capture=False).returncode
    if cmd == "drift":
        return _drift(args)
    if cmd == "scale":
        return _scale(args)
    raise LabError(f"unknown lab command {cmd!r}")


def _drift(args: argparse.Namespace) -> int:
    import time

    from . import drifts

    action = args.drift_command
    if action == "list":
        applied = drifts.applied()
        for name, d in drifts.DRIFTS.items():
            mark = "*" if name in applied else " "
            print(f"{mark} {name:<28} {d.host:<7} {d.summary}")
        return 0
    t0 = time.monotonic()
    if action == "apply":
        if drifts.drift_apply(args.name):
            print(f"drift {args.name} applied ({time.monotonic() - t0:.1f} s)")
        else:
            print(f"drift {args.name} was already applied")
        return 0
    if action == "reset":
        done = drifts.drift_reset()
        if done:
            print(f"reverted {', '.join(done)}; lab healthy ({time.monotonic() - t0:.1f} s)")
        else:
            print("no drift applied; nothing to do")
        return 0
    raise LabError(f"unknown drift action {action!r}")


def _scale(args: argparse.Namespace) -> int:
    from . import scale

    action = args.scale_command
    if action == "up":
        info = scale.scale_up(args.n)
        if info.stopped:
            print(f"stopped extra scale hosts: {', '.join(info.stopped)}")
        if not info.started:
            print(f"{len(info.hosts)} scale host(s) already up and ready; nothing started ({info.seconds:.1f} s)")
        else:
            kind = " (golden rootfs built first)" if info.golden_built else ""
            print(
                f"{len(info.hosts)} scale host(s) up in {info.seconds:.1f} s{kind}, "
                f"{len(info.started)} started; known_hosts in {info.known_hosts}"
            )
        return 0
    if action == "down":
        done, secs = scale.scale_down()
        print(f"scale down: removed {len(done)} host(s) ({secs:.1f} s)")
        return 0
    if action == "status":
        rows = scale.scale_status()
        if args.json:
            print(
                json.dumps(
                    {
                        r.name: {
                            "machine": r.machine,
                            "addr": r.addr,
                            "running": r.running,
                            "ready": r.problem is None,
                            "problem": r.problem,
                        }
                        for r in rows
                    },
                    indent=2,
                )
            )
        else:
            if not rows:
                print("no scale hosts")
            for r in rows:
                state = "ready" if r.problem is None else r.problem
                print(f"{r.name:<4} {r.machine:<8} {r.addr:<15} {state}")
        return 0 if all(r.problem is None for r in rows) else 1
    raise LabError(f"unknown scale action {action!r}")


def _print_table(status: dict[str, Any]) -> None:
    rows = [("HOST", "MACHINE", "ADDRESS", "STATE", "UNITS", "LISTENING")]
    for s in status.values():
        units = " ".join(f"{u}={v}" for u, v in s.units.items()) or "-"
        ports = (
            " ".join(
                sorted(
                    {(f"[{a}]" if ":" in a else a) + f":{p}" for a, p, _ in s.listening},
                    key=lambda x: int(x.rsplit(":", 1)[1]),
                )
            )
            or "-"
        )
        rows.append((s.name, s.machine, s.addr, "running" if s.running else "stopped", units, ports))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(r[i].ljust(widths[i]) for i in range(5)) + "  " + r[5])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab")
    subs = parser.add_subparsers(dest="command", required=True)
    add_lab_parser(subs)
    # Accept both "python -m lab up" and "... lab up".
    raw = list(sys.argv[1:] if argv is None else argv)
    if not raw or raw[0] != "lab":
        raw = ["lab", *raw]
    return run_lab_command(parser.parse_args(raw))
