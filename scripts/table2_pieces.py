#!/usr/bin/env python3
"""Run pieces of Table 2 cells a few at a time, before a deadline (issue 13).

A piece is one ``scripts/table2.py run`` of some of a cell's methods in its own root. Pieces
that need a pre-training another piece makes wait for it and start from a copy of it (``table2.py
run --seed-from``), so a cell pre-trains once however it is split. A session on a machine that
keeps nothing afterwards runs only pieces that can finish before it ends::

    python scripts/table2_pieces.py PIECES.json --until 2026-12-07T08:00 [--slots 3]

PIECES.json is a list, in order of priority, of::

    {"name": "rsgl25c", "backbone": "sgl", "seed": 2025, "methods": "roland,dgcn",
     "minutes": 30, "selection": "reference", "after": "rsgl25b"}

``name`` is the piece's root (``RUNS/NAME``) and log (``RUNS/logs/NAME.out``); ``minutes`` the
expected wall time (a piece starts only when it would end, with 10% to spare, before
``--until``); ``after`` (optional) the piece whose pre-trainings it starts from: it starts once
those exist. ``selection`` defaults to ``reference``. The file is read again every loop, so
pieces can be added while it runs. A piece whose log exists has been started (by this or an
earlier call) and is not started again. At most ``--slots`` trainings run on the machine at
once, counting those started by anyone else. At ``--until``, and on SIGTERM, it stops the pieces
it started that still run (each finishes and checkpoints its epoch) and then itself: a piece too
long for one session (a ``full`` cell, its ``minutes`` one stage's time) keeps the stages it
finished, which ``table2.py archive --stages`` saves for the next session. Bad arguments or a bad
list: one line, exit code 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

TABLE2 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "table2.py")
FIELDS = {"name": str, "backbone": str, "seed": int, "methods": str, "minutes": (int, float)}


class UsageError(Exception):
    pass


def read_pieces(path: str) -> list[dict]:
    """The list, checked: every piece has the fields with the right types, names are unique and
    an ``after`` names an earlier piece."""
    try:
        with open(path) as f:
            pieces = json.load(f)
    except (OSError, ValueError) as e:
        raise UsageError(f"{path}: {e}") from None
    if not isinstance(pieces, list):
        raise UsageError(f"{path}: a JSON list of pieces expected")
    seen = set()
    for i, p in enumerate(pieces):
        where = f"{path}: piece {i + 1}"
        if not isinstance(p, dict):
            raise UsageError(f"{where}: an object expected")
        for key, kind in FIELDS.items():
            if not isinstance(p.get(key), kind) or isinstance(p.get(key), bool):
                raise UsageError(f"{where}: {key!r} missing or of the wrong type")
        if p["minutes"] <= 0 or not p["name"] or "/" in p["name"] or p["name"] in seen:
            raise UsageError(f"{where}: needs a unique name without '/' and minutes > 0")
        if p.get("after") is not None and p["after"] not in seen:
            raise UsageError(f"{where}: after {p['after']!r} is not an earlier piece")
        seen.add(p["name"])
    return pieces


def cell_dir(runs: str, p: dict, name: str | None = None) -> str:
    return os.path.join(runs, name or p["name"], p.get("selection", "reference"),
                        f"{p['backbone']}-s{p['seed']}")


def trainings_running() -> int:
    """`graphpro run` processes on this machine, whoever started them."""
    out = subprocess.run(["pgrep", "-f", "graphpro_ext.graphpro run"], capture_output=True,
                         text=True).stdout
    return len(out.split())


def ready(runs: str, p: dict, by_name: dict) -> bool:
    """Whether the pre-trainings a piece starts from exist (always, without ``after``)."""
    if p.get("after") is None:
        return True
    from graphpro_ext.graphpro.methods import METHODS

    kinds = {METHODS[m].pretrain for m in p["methods"].split(",") if m in METHODS} - {None}
    src = os.path.join(cell_dir(runs, by_name[p["after"]]), "ckpt")
    return all(os.path.isfile(os.path.join(src, f"pretrain_{k}.pt")) for k in kinds)


def command(runs: str, p: dict, threads: int, data: str | None) -> list[str]:
    cmd = [sys.executable, TABLE2, "run", "--selections", p.get("selection", "reference"),
           "--backbones", p["backbone"], "--seeds", str(p["seed"]), "--methods", p["methods"],
           "--threads", str(threads), "--root", os.path.join(runs, p["name"])]
    if p.get("after") is not None:
        cmd += ["--seed-from", os.path.join(runs, p["after"])]
    return cmd + (["--data", data] if data else [])


def commit() -> str:
    """The checkout's commit (``+`` when it has uncommitted changes), for the logs."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=os.path.dirname(TABLE2), timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, cwd=os.path.dirname(TABLE2),
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev or "unknown") + ("+" if dirty else "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pieces", help="JSON list of pieces (see above)")
    ap.add_argument("--until", required=True, help="UTC time no piece may run past (ISO 8601)")
    ap.add_argument("--slots", type=int, default=3, help="trainings on the machine at once")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per piece")
    ap.add_argument("--runs", default="runs", help="folder of the pieces' roots and logs")
    ap.add_argument("--data", help="the Amazon snapshot folder (table2.py's default otherwise)")
    ap.add_argument("--poll", type=float, default=20.0, help=argparse.SUPPRESS)
    try:
        args = ap.parse_args(argv)
        until = dt.datetime.fromisoformat(args.until)
        if until.tzinfo is not None:
            until = until.astimezone(dt.timezone.utc).replace(tzinfo=None)
        if args.slots < 1 or args.threads < 1:
            raise UsageError("--slots and --threads must be at least 1")
        read_pieces(args.pieces)
    except ValueError as e:
        print(f"table2_pieces: error: --until {args.until}: {e}", file=sys.stderr)
        return 2
    except UsageError as e:
        print(f"table2_pieces: error: {e}", file=sys.stderr)
        return 2
    logs = os.path.join(args.runs, "logs")
    os.makedirs(logs, exist_ok=True)
    mine: dict[str, subprocess.Popen] = {}

    def stop_all() -> None:
        for proc in mine.values():
            if proc.poll() is None:
                proc.terminate()  # table2.py passes it on: each piece checkpoints its epoch
        for proc in mine.values():
            proc.wait()

    def on_sigterm(signum, frame):
        stop_all()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)
    failed = 0
    while True:
        running = [n for n, proc in mine.items() if proc.poll() is None]
        if running and dt.datetime.utcnow() >= until:
            print(f"table2_pieces: {args.until} reached; stopped {', '.join(sorted(running))} "
                  "(their finished stages stay; `table2.py archive --stages` keeps them)",
                  flush=True)
            stop_all()
            return 0
        for name, proc in list(mine.items()):
            if proc.poll() is not None:
                print(f"table2_pieces: {name} ended (exit code {proc.returncode})", flush=True)
                failed = failed or proc.returncode
                del mine[name]
        try:
            pieces = read_pieces(args.pieces)
        except UsageError as e:  # edited into a bad state while running: keep the last good one
            print(f"table2_pieces: {e}; keeping the running pieces", file=sys.stderr)
            time.sleep(args.poll)
            continue
        by_name = {p["name"]: p for p in pieces}
        now = dt.datetime.utcnow()
        pending = [p for p in pieces if not os.path.exists(os.path.join(logs, f"{p['name']}.out"))]
        fits = [p for p in pending if now + dt.timedelta(minutes=1.1 * p["minutes"]) <= until]
        if not fits and not mine:
            left = ", ".join(p["name"] for p in pending) or "none"
            print(f"table2_pieces: done; not started (would not end before {args.until}): {left}")
            return 1 if failed else 0
        start = next((p for p in fits if ready(args.runs, p, by_name)), None)
        if start is not None and trainings_running() < args.slots:
            with open(os.path.join(logs, f"{start['name']}.out"), "a") as log:
                log.write(f"# table2_pieces: started {now.isoformat(timespec='seconds')} UTC "
                          f"at {commit()}\n")
                log.flush()
                mine[start["name"]] = subprocess.Popen(
                    command(args.runs, start, args.threads, args.data), stdout=log,
                    stderr=subprocess.STDOUT)
            print(f"table2_pieces: started {start['name']} ({start['methods']})", flush=True)
            time.sleep(min(args.poll, 15.0))  # let its training appear before counting again
            continue
        time.sleep(args.poll)


if __name__ == "__main__":
    sys.exit(main())
