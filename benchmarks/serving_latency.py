#!/usr/bin/env python
"""Latency of what comes after training: load, recommend for every user, export, and the two
update modes, on a trained run folder.

    python benchmarks/serving_latency.py --run RUN --snapshot NEXT.txt [--budget 60] [--k 20]

``RUN`` is left untouched: each update runs on a copy of it (``--work``, default a temporary
folder), in this process, through the same functions the CLI calls. Prints one Markdown table row
per measurement (wall seconds on this machine) plus the sizes involved.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np
import torch

from graphpro_ext.graphpro import serving
from graphpro_ext.graphpro.cli import main as cli_main
from graphpro_ext.graphpro.data import read_snapshot_file
from graphpro_ext.graphpro.update import RawSnapshot, update


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True)
    p.add_argument("--snapshot", required=True, help="a newer snapshot (GraphPro format)")
    p.add_argument("--budget", type=float, default=60.0, help="finetune update budget (s)")
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--work", default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    work = a.work or tempfile.mkdtemp(prefix="serving_latency_")
    rows = []
    t, m = _timed(lambda: serving.load(a.run))
    rows.append(("load the newest model", t, f"stage {m.stage}, {m.num_users} users, "
                 f"{m.num_items} items, {os.path.getsize(m.path) / 2**20:.0f} MiB file"))
    users = m.users.ids.tolist()
    t, rec = _timed(lambda: m.recommend(users, k=a.k))
    rows.append((f"recommend top-{a.k} for every user", t, f"{len(users)} users, "
                 f"{len(users) / t:,.0f} users/s"))
    t, _ = _timed(lambda: m.recommend(users[:1], k=a.k))
    rows.append((f"recommend top-{a.k} for one user (model loaded)", t, ""))
    os.makedirs(work, exist_ok=True)
    ufile = os.path.join(work, "users.txt")
    with open(ufile, "w") as f:
        f.write("\n".join(map(str, users)) + "\n")
    for fmt in ("csv", "parquet"):
        out = os.path.join(work, f"recs.{fmt}")
        t, _ = _timed(lambda: cli_main(["recommend", "--run", a.run, "--users", ufile, "--k",
                                        str(a.k), "--format", fmt, "--output", out]))
        rows.append((f"`graphpro recommend` for every user, {fmt} file (load included)", t,
                     f"{os.path.getsize(out) / 2**20:.0f} MiB"))
    exp = os.path.join(work, "export")
    t, _ = _timed(lambda: cli_main(["export", "--run", a.run, "--out", exp]))
    rows.append(("export npy (ids + embeddings)", t, ""))
    inter, _ = read_snapshot_file(a.snapshot)
    raw = RawSnapshot(inter.users.tolist(), inter.items.tolist(), inter.times, a.snapshot)
    for mode in ("prompt", "finetune"):
        copy = os.path.join(work, f"run_{mode}")
        shutil.copytree(a.run, copy)
        t, res = _timed(lambda: update(copy, raw, mode, a.budget if mode == "finetune" else 0))
        what = (f"{res['interactions']} interactions, {res['new_users']} new users, "
                f"{res['new_items']} new items; stage {res['stage']}")
        if mode == "finetune":
            what += f", {res['epochs_run']} epochs (budget {a.budget:g} s)"
        rows.append((f"update --mode {mode}", t, what))
        shutil.rmtree(copy)
    print(f"# {a.run}: {torch.get_num_threads()} threads, {time.strftime('%Y-%m-%d')}")
    print("| step | seconds | what |")
    print("|---|---|---|")
    for name, t, what in rows:
        print(f"| {name} | {t:.2f} | {what} |")
    shutil.rmtree(work, ignore_errors=True)
    return np.float64(0)


if __name__ == "__main__":
    main()
