#!/usr/bin/env python3
"""The paper's Table 2 on the Amazon snapshots (issue 13), split into resumable cells.

Table 2 is methods x backbones, Recall@20 and NDCG@20 averaged over the stages, mean ± standard
deviation over seeds, under two model-selection rules:

* ``honest``: the ``amazon`` preset's budget, best epoch on a held-out 10% of each snapshot
  (``--select-on val``, our protocol);
* ``reference``: the reference code's rule and budget, best epoch on the test snapshot itself
  (``--select-on test --epochs 300 --stage-epochs 300 --patience 10 --stage-patience 10``).

A cell is (selection, backbone, seed): one ``graphpro run`` of every requested method into
``ROOT/<selection>/<backbone>-s<seed>``, resumable with ``--resume``. ::

    python scripts/table2.py plan   [--data DIR] [--root runs/table2] [filters]
    python scripts/table2.py run    [--data DIR] [--root runs/table2] [filters] [--max-cells N]
    python scripts/table2.py report [--root runs/table2 ...] [filters] [--out F.md] [--plot F.png]
    python scripts/table2.py archive [--root runs/table2] --to docs/results/X [filters] [--prune]

Filters (to split the grid over machines or sessions): ``--seeds 2023,2024,2025 --backbones
lightgcn,sgl,simgcl,mixgcf --selections honest,reference --methods all|a,b``.

``plan`` prints one command per cell; cells already done are printed commented out, so
``plan | sh`` runs only the rest. ``run`` runs the cells not done one after another and stops at
the first failure with its exit code; SIGTERM or Ctrl-C stops it and the cells it started (on
SIGTERM each cell first finishes and checkpoints its epoch; a later ``run`` resumes them).
``report`` reads the finished ``results.json`` files and
writes the Markdown tables, paired t-tests of GraphPro against every other method, the list of
cells done and missing, and a per-stage Recall@20 plot. A cell counts only when its results.json
says it ran with the cell's selection rule, budget, seed and backbone; nothing is ever filled in.
``report`` takes ``--root`` more than once to merge pieces of one cell run in different folders
(a method rerun later, ``full`` run on another machine): a cell's methods are gathered over the
roots in the order given, a method found in several is taken from the last, and the cells table
says which root gave what; a merged report needs ``--out`` (its plot goes beside it).
``archive`` copies the finished cells' results.json into another folder (the layout ``report
--root`` reads) and, with ``--prune``, then deletes their ``ckpt/`` and ``model/`` (a finished
cell keeps about 1 GB of them); it never overwrites a different results.json and prunes only
after checking that the copy is byte-identical.

A cell too long for one sitting is split into pieces: other roots running some of its methods
(``run --seed-from ROOT`` first copies the cell's finished pre-trainings and stages from ROOT,
so the pieces pre-train once), or later sessions (``archive --stages`` keeps an unfinished
cell's finished ``full`` stages, a few kilobytes each, and ``run --seed-from`` that archive
resumes after them). ``report --root`` merges the pieces; ``scripts/table2_pieces.py`` runs a
list of pieces a few at a time before a deadline.
Bad arguments: one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace

K = 20
METRICS = (f"recall@{K}", f"ndcg@{K}")
SELECTIONS = ("honest", "reference")
REFERENCE_BUDGET = {"epochs": 300, "stage_epochs": 300, "patience": 10, "stage_patience": 10}
DEFAULT_SEEDS = "2023,2024,2025"
DEFAULT_DATA = "../shared/data/amazon"
DEFAULT_ROOT = "runs/table2"
CELL_DIR = re.compile(r"(?P<backbone>[A-Za-z0-9_-]+)-s(?P<seed>\d+)")


class UsageError(Exception):
    """A bad argument: one line, exit code 2."""


class _Stopped(Exception):
    """SIGTERM reached ``run``."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage block
        raise UsageError(message)


# -- the grid --------------------------------------------------------------------------------

def registries() -> tuple[list[str], list[str], dict]:
    """The trainer's method and backbone names (registry order) and the amazon preset."""
    from graphpro_ext.graphpro.cli import PRESETS
    from graphpro_ext.graphpro.methods import METHODS
    from graphpro_ext.graphpro.models import MODELS

    return list(METHODS), list(MODELS), dict(PRESETS["amazon"])


def selection_flags(selection: str) -> list[str]:
    """The flags a cell of this selection adds to ``--preset amazon``."""
    if selection == "honest":
        return ["--select-on", "val"]
    return ["--select-on", "test"] + [a for k, v in REFERENCE_BUDGET.items()
                                      for a in (f"--{k.replace('_', '-')}", str(v))]


def expected_protocol(selection: str, preset: dict) -> dict:
    """What results.json must record for a run of this selection."""
    budget = REFERENCE_BUDGET if selection == "reference" else {k: preset[k] for k in
                                                                 REFERENCE_BUDGET}
    return {"select_on": "test" if selection == "reference" else "val", **budget}


@dataclass(frozen=True)
class Cell:
    selection: str
    backbone: str
    seed: int
    root: str
    stage_loss: str = "backbone"  # graphpro run --stage-loss (no effect on LightGCN)

    @property
    def name(self) -> str:
        return f"{self.selection}/{self.backbone}-s{self.seed}"

    @property
    def out(self) -> str:
        return os.path.join(self.root, self.selection, f"{self.backbone}-s{self.seed}")


@dataclass
class CellState:
    status: str  # "done", "partial", "missing" or "mismatch"
    methods: dict = field(default_factory=dict)  # method -> results.json entry with averages
    results: dict | None = None
    note: str = ""
    walls: list = field(default_factory=list)  # merged over roots: "root: wall" per root
    pretrain: dict = field(default_factory=dict)  # kind -> results.json's pre-training entry


def command(cell: Cell, data: str, methods: list[str], python: str = "python",
            threads: int | None = None, auto_share: float | None = None) -> list[str]:
    """The ``graphpro run`` of one cell (``--resume`` when its folder exists)."""
    cmd = [python, "-m", "graphpro_ext.graphpro", "run", "--data", data, "--preset", "amazon",
           "--methods", ",".join(methods), "--backbone", cell.backbone, "--seed",
           str(cell.seed), "--out", cell.out, "--serve", "none",  # a grid reports, serves nothing
           *selection_flags(cell.selection)]
    if cell.backbone != "lightgcn":  # LightGCN's own loss is BPR: the flag would change nothing
        cmd += ["--stage-loss", cell.stage_loss]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    if auto_share is not None:  # cells begun before the flag existed resume with 0.5
        cmd += ["--auto-share", str(auto_share)]
    return cmd + (["--resume"] if os.path.isdir(cell.out) else [])


def _recorded(res: dict, out: str) -> dict:
    """Selection rule, budget, seed and backbone as a results.json records them (a finished
    run's flat hyper-parameters, or the config.json form `graphpro report` copies)."""
    hp = res.get("hyperparameters") or {}
    pre, st = hp.get("pretrain_train") or {}, hp.get("stage_train") or {}
    rec = {"select_on": (res.get("protocol") or {}).get("select_on"), "seed": hp.get("seed"),
           "epochs": hp.get("epochs", pre.get("epochs")),
           "stage_epochs": hp.get("stage_epochs", st.get("epochs")),
           "patience": hp.get("patience", pre.get("patience")),
           "stage_patience": hp.get("stage_patience", st.get("patience")),
           "backbone": hp.get("backbone"), "stage_loss": hp.get("stage_loss")}
    if rec["backbone"] is None:  # not among a finished run's hyper-parameters: its config.json
        try:
            with open(os.path.join(out, "ckpt", "config.json")) as f:
                cfg = json.load(f)
            rec["backbone"], rec["stage_loss"] = cfg.get("backbone"), cfg.get("stage_loss")
        except (OSError, ValueError):
            pass
    if rec["backbone"] is None and res.get("command"):  # else the command line
        words = shlex.split(res["command"])
        rec["backbone"] = "lightgcn"
        for i, w in enumerate(words):
            if w == "--backbone" and i + 1 < len(words):
                rec["backbone"] = words[i + 1]
            elif w.startswith("--backbone="):
                rec["backbone"] = w.split("=", 1)[1]
    if rec["stage_loss"] is None and rec["backbone"] is not None:
        rec["stage_loss"] = "bpr"  # runs before --stage-loss fine-tuned with BPR
    return rec


def read_cell(cell: Cell, methods: list[str], preset: dict) -> CellState:
    """A cell's state from its folder: done when results.json holds every requested method's
    averages under the cell's own configuration."""
    path = os.path.join(cell.out, "results.json")
    if not os.path.exists(path):
        if os.path.isdir(os.path.join(cell.out, "ckpt")):
            return CellState("partial", note="checkpoints, no results.json yet")
        return CellState("missing")
    try:
        with open(path) as f:
            res = json.load(f)
    except (OSError, ValueError) as e:
        return CellState("partial", note=f"results.json unreadable ({e})")
    rec = _recorded(res, cell.out)
    want = {**expected_protocol(cell.selection, preset), "seed": cell.seed,
            "backbone": cell.backbone}
    if cell.backbone != "lightgcn":
        want["stage_loss"] = cell.stage_loss
    wrong = [f"{k} {rec[k]} (want {v})" for k, v in want.items()
             if rec.get(k) is not None and rec[k] != v]
    if wrong:
        return CellState("mismatch", results=res, note="results.json has " + ", ".join(wrong))
    found = {m: e for m, e in (res.get("methods") or {}).items()
             if all((e.get("average") or {}).get(k) is not None for k in METRICS)}
    have = [m for m in methods if m in found]
    status = "done" if len(have) == len(methods) else "partial"
    note = "" if status == "done" else f"{len(have)}/{len(methods)} methods in results.json"
    return CellState(status, found, res, note, pretrain=dict(res.get("pretrain") or {}))


def grid(args, backbones: list[str], root: str | None = None) -> list[Cell]:
    return [Cell(s, b, seed, root or args.root, args.stage_loss) for s in args.selections
            for b in backbones for seed in args.seeds]


# -- carrying finished checkpoints between folders ----------------------------------------------

def resumable(out: str, methods: list[str], small: bool = False) -> list[str]:
    """The finished checkpoints of the run folder OUT that a fresh folder of the same cell
    resumes from, as paths relative to OUT (empty without a config.json): the configuration,
    the pre-trainings ``methods`` start from, and per method its finished stages 1..k with the
    stage tables stage k+1 reads (a method whose tables are missing carries nothing). With
    ``small`` (what an archive in git keeps): no pre-trainings and no tables, so only the
    stages of methods that read no earlier table (``full``)."""
    from types import SimpleNamespace

    from graphpro_ext.graphpro.checkpoint import CheckpointLayout
    from graphpro_ext.graphpro.methods import METHODS, kind_of

    lay = CheckpointLayout(out)
    try:
        cfg = lay.read_config()
    except (OSError, ValueError):
        cfg = None
    if cfg is None:
        return []
    files = []
    if not small:
        kinds = {METHODS[m].pretrain for m in methods}
        files += [p for k, p in lay.finished_pretrainings().items() if k in kinds]
    for m in methods:
        keep = kind_of(METHODS[m]).tables_kept(METHODS[m], SimpleNamespace(**cfg))
        if keep and small:
            continue
        n = 0
        while os.path.isfile(lay.stage(m, n + 1)):
            n += 1
        tables = [lay.table(m, j) for j in range(max(1, n - keep + 1), n + 1)] if keep else []
        if n and all(os.path.isfile(t) for t in tables):
            files += [lay.stage(m, j) for j in range(1, n + 1)] + tables
    if small and not files:
        return []  # a configuration alone resumes nothing
    return [os.path.relpath(p, out) for p in [lay.config] + files]


def seed_cell(cell: Cell, source_root: str, methods: list[str]) -> list[str]:
    """Copy into a cell folder that has no checkpoints yet the finished ones of the same cell
    under ``source_root`` (another piece of the grid, or an archive of finished stages), so
    its ``--resume`` starts after them; the configuration is copied last, so a copy cut short
    is simply redone. Returns what was copied (nothing when the folder has checkpoints or the
    source has none); ``graphpro run --resume`` then checks the configuration as usual."""
    from graphpro_ext.graphpro.checkpoint import CheckpointLayout
    from graphpro_ext.graphpro.runtime import write_bytes_atomic

    if os.path.exists(CheckpointLayout(cell.out).config):
        return []
    src = replace(cell, root=source_root).out
    files = resumable(src, methods)
    for rel in files[1:] + files[:1]:
        write_bytes_atomic(_read(os.path.join(src, rel)), os.path.join(cell.out, rel))
    return files


# -- statistics ------------------------------------------------------------------------------

def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((a - 1 + m2) * (a + m2)),
                   -(a + m) * (a + b + m) * x / ((a + m2) * (a + 1 + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x)
                     + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):  # the fraction converges fast on this side
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """Student's t distribution function: P(T <= t) with df degrees of freedom."""
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))  # P(T > |t|)
    return 1.0 - tail if t > 0 else tail


def t_two_sided(t: float, df: float) -> float:
    """P(|T| >= |t|)."""
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def mean_std(xs: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1; None below two values)."""
    n = len(xs)
    m = sum(xs) / n
    return m, (math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1)) if n > 1 else None)


def paired_t(a: list[float], b: list[float]) -> dict:
    """Paired two-sided t-test of a - b: mean difference, t, p (None when n < 2 or the
    differences have no spread)."""
    d = [x - y for x, y in zip(a, b)]
    if not d:
        return {"n": 0, "diff": None, "t": None, "p": None}
    m, sd = mean_std(d)
    if sd is None or sd <= 1e-9 * max(abs(x) for x in d):  # no spread beyond rounding
        return {"n": len(d), "diff": m, "t": None, "p": None}
    t = m / (sd / math.sqrt(len(d)))
    return {"n": len(d), "diff": m, "t": t, "p": t_two_sided(t, len(d) - 1)}


# -- the report ------------------------------------------------------------------------------

def discover(root: str, selections: list[str], backbones: list[str],
             stage_loss: str) -> list[Cell]:
    """Cells found under ROOT (seeds outside --seeds included)."""
    found = []
    for s in selections:
        d = os.path.join(root, s)
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            m = CELL_DIR.fullmatch(name)
            if m and m["backbone"] in backbones:
                found.append(Cell(s, m["backbone"], int(m["seed"]), root, stage_loss))
    return found


def _f(v: float | None) -> str:
    return "–" if v is None else f"{v:.4f}"


def _cell_text(vals: list[float]) -> str:
    if not vals:
        return "missing"
    m, sd = mean_std(vals)
    return f"{_f(m)} ± {_f(sd)} ({len(vals)})" if sd is not None else f"{_f(m)} ({len(vals)})"


def _wall(res: dict | None) -> str:
    wall = (res or {}).get("wall_s") or {}
    if not wall:
        return "–"
    phases = sum(v for k, v in wall.items() if k != "this_process")
    proc = wall.get("this_process")
    return f"{phases:.1f}" + (f" (process {proc:.1f})" if proc is not None else "")


def collect(cells: list[Cell], methods: list[str], preset: dict) -> dict[Cell, CellState]:
    return {c: read_cell(c, methods, preset) for c in cells}


def merge_roots(states: dict[Cell, CellState], roots: list[str],
                methods: list[str]) -> dict[Cell, CellState]:
    """One state per (selection, backbone, seed) from the cells of several roots: methods
    gathered in root order (the last root wins a method found in several); a root whose folder
    holds another configuration adds nothing and is named in the note."""
    if len(roots) == 1:
        return states
    joined = " + ".join(roots)
    merged: dict[Cell, CellState] = {}
    by_key: dict[tuple, list[Cell]] = {}
    for c in states:
        by_key.setdefault((c.selection, c.backbone, c.seed), []).append(c)
    for key, cells in by_key.items():
        cells.sort(key=lambda c: roots.index(c.root))
        found, source, notes, last, walls, pretrain = {}, {}, [], None, [], {}
        for c in cells:
            st = states[c]
            if st.status == "mismatch":
                notes.append(f"{c.root}: mismatch, not counted ({st.note})")
                continue
            if st.status == "partial" and not st.methods and st.note:  # begun, nothing yet
                notes.append(f"{c.root}: {st.note}")
            for m, e in st.methods.items():
                found[m], source[m] = e, c.root
            pretrain.update(st.pretrain)
            if st.results is not None:
                last = st.results
                walls.append(f"{c.root}: {_wall(st.results)}")
        have = [m for m in methods if m in found]
        seen = {states[c].status for c in cells}
        status = ("done" if len(have) == len(methods) else
                  "partial" if found or last or "partial" in seen else
                  "mismatch" if "mismatch" in seen else "missing")
        by_root = {}
        for m in have:
            by_root.setdefault(source[m], []).append(m)
        if len(by_root) > 1:  # name the methods of all but the root that gave most
            main = max(by_root, key=lambda r: len(by_root[r]))
            notes.insert(0, "; ".join([f"{','.join(ms)} from {r}" for r, ms in by_root.items()
                                       if r != main] + [f"the rest from {main}"]))
        elif status != "done" and found:
            notes.insert(0, f"{len(have)}/{len(methods)} methods over the roots")
        merged[Cell(*key, joined, cells[0].stage_loss)] = CellState(
            status, found, last, "; ".join(notes), walls, pretrain)
    return merged


def in_seeds(states: dict, seeds: list[int]) -> dict:
    """The cells that count: those of the seeds asked for (``--seeds``); others are only
    listed."""
    return {c: st for c, st in states.items() if c.seed in seeds}


def values(states: dict, selection: str, backbone: str, method: str, metric: str) -> dict:
    """seed -> the method's stage-averaged metric, over the cells that count."""
    return {c.seed: st.methods[method]["average"][metric] for c, st in states.items()
            if c.selection == selection and c.backbone == backbone and method in st.methods
            and st.status != "mismatch"}


def pretraining_table(states: dict, selections: list[str], backbones: list[str]) -> list[str]:
    """Each backbone's pre-trainings (with and without the temporal prompt): the validation
    Recall@K of the best epoch, and best epoch / epochs run per seed, so a backbone's own
    training can be judged apart from the methods built on it."""
    lines = ["### Pre-trainings", "",
             f"Best validation Recall@{K} of each pre-training (mean ± sd over seeds, (n)), and "
             "its best epoch / epochs run per seed. `graphpro`: with the temporal prompt (GraphPro "
             "and -PT/-GT/-IU start there); `lightgcn`: without it (the other methods but `full`, "
             "which trains from scratch).", "",
             f"| selection | backbone | pre-training | Recall@{K} | best / run per seed |",
             "|---|---|---|---|---|"]
    for s in selections:
        for b in backbones:
            for kind in ("graphpro", "lightgcn"):
                got = sorted((c.seed, st.pretrain[kind]) for c, st in states.items()
                             if (c.selection, c.backbone) == (s, b) and st.status != "mismatch"
                             and kind in st.pretrain)
                if not got:
                    continue
                vals = [p["select"][METRICS[0]] for _, p in got]
                epochs = ", ".join(f"{p['best_epoch']}/{p['epochs_run']} (s{seed})"
                                   for seed, p in got)
                lines.append(f"| {s} | {b} | {kind} | {_cell_text(vals)} | {epochs} |")
    return lines + [""]


def markdown(states: dict, args, methods: list[str], backbones: list[str]) -> str:
    """The Table 2 fragment: per selection the two tables, the significance tests, the cells."""
    selections = args.selections
    listed, states = states, in_seeds(states, args.seeds)
    counted = [c for c, st in states.items() if st.methods and st.status != "mismatch"]
    stages = sorted({st.results.get("protocol", {}).get("stages") for c, st in states.items()
                     if c in counted} - {None})
    over = f"the {stages[0]} stages" if len(stages) == 1 else "the stages"
    roots = " ".join(f"--root {r}" for r in args.roots) + " --seeds " + ",".join(
        str(x) for x in args.seeds) + f" --stage-loss {args.stage_loss}"
    trains = {"backbone": "the backbone's own loss", "bpr": "LightGCN's BPR"}[args.stage_loss]
    lines = [f"Collected by `python scripts/table2.py report {roots}` from "
             f"{len(counted)} cell(s) with results (of {len(listed)} listed below). Each entry: "
             f"the metric averaged over {over} of a run, then mean ± sample standard deviation "
             "(n − 1) over seeds, (n) = seeds with a result; `missing` = no finished run. "
             f"On the SGL, SimGCL and MixGCF backbones the stages of every method but DGCN "
             f"(BPR on every backbone) train {trains}.", ""]
    rules = {"honest": "`--preset amazon --select-on val` (best epoch on a held-out 10% of each "
                       "snapshot; the preset's epoch caps)",
             "reference": "`--preset amazon --select-on test --epochs 300 --stage-epochs 300 "
                          "--patience 10 --stage-patience 10` (best epoch on the test snapshot, "
                          "the reference code's rule and budget)"}
    for s in selections:
        lines += [f"### Selection `{s}`: {rules[s]}", ""]
        for metric, title in zip(METRICS, (f"Recall@{K}", f"NDCG@{K}")):
            lines += [f"{title}:", "", "| method | " + " | ".join(backbones) + " |",
                      "|---" * (len(backbones) + 1) + "|"]
            for m in methods:
                row = [_cell_text(list(values(states, s, b, m, metric).values()))
                       for b in backbones]
                lines.append(f"| {m} | " + " | ".join(row) + " |")
            lines.append("")
    lines += ["### Significance: GraphPro against every other method", ""]
    if "graphpro" not in methods:
        lines += ["(`graphpro` is not among --methods)", ""]
    else:
        lines += ["Paired by seed: Δ = mean over seeds of (graphpro − method), two-sided paired "
                  "t-test with n − 1 degrees of freedom; p is `n/a` below two seeds or when the "
                  "differences do not vary. Not corrected for multiple comparisons.", ""]
        for s in selections:
            lines += [f"Selection `{s}`:", "",
                      f"| backbone | method | n | Δ Recall@{K} | p | Δ NDCG@{K} | p |",
                      "|---|---|---|---|---|---|---|"]
            for b in backbones:
                for m in methods:
                    if m == "graphpro":
                        continue
                    row = []
                    for metric in METRICS:
                        g, o = values(states, s, b, "graphpro", metric), values(states, s, b, m,
                                                                                metric)
                        seeds = sorted(set(g) & set(o))
                        r = paired_t([g[x] for x in seeds], [o[x] for x in seeds])
                        row += [_f(r["diff"]) if r["diff"] is not None else "missing",
                                "n/a" if r["p"] is None else f"{r['p']:.3g}"]
                    lines.append(f"| {b} | {m} | {r['n']} | " + " | ".join(row) + " |")
            lines.append("")
    lines += pretraining_table(states, selections, backbones)
    lines += ["### Cells", "",
              "Wall time (s, from results.json): the sum of the phases (pre-trainings and every "
              "method's stages), and the last process (a resumed run's covers only its own part).",
              "", "| cell | status | methods with results | wall (s) |", "|---|---|---|---|"]
    grid_cells = {c.name for c in grid(args, backbones, args.roots[0])}
    for c, st in listed.items():
        status = st.status + ("" if c.name in grid_cells else ", outside --seeds, not counted")
        status += f": {st.note}" if st.note else ""
        n = sum(m in st.methods for m in methods)
        wall = "; ".join(st.walls or [_wall(st.results)])
        lines.append(f"| {c.name} | {status} | {n}/{len(methods)} | {wall} |")
    done = sum(st.status == "done" for st in states.values())
    lines += ["", f"{done} of {len(states)} cells done."]
    return "\n".join(lines) + "\n"


def plot(states: dict, path: str, selections: list[str], methods: list[str],
         backbones: list[str]) -> bool:
    """Per-stage Recall@20, mean over seeds: a row per selection, a panel per backbone."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [s for s in selections if any(c.selection == s and st.methods and
                                         st.status != "mismatch" for c, st in states.items())]
    if not rows:
        return False
    fig, axes = plt.subplots(len(rows), len(backbones), figsize=(4 * len(backbones),
                             3.2 * len(rows)), squeeze=False, sharey="row")
    # 15 methods outrun 10 colours: past them the colours repeat dashed; GraphPro drawn bold
    colours = plt.get_cmap("tab10").colors
    style = {m: {"color": colours[k % len(colours)], "linewidth": 2.4 if m == "graphpro" else 1.1,
                 "linestyle": "-" if k < len(colours) else "--"} for k, m in enumerate(methods)}
    for i, s in enumerate(rows):
        for j, b in enumerate(backbones):
            ax = axes[i][j]
            for m in methods:
                per_stage: dict[int, list[float]] = {}
                for c, st in states.items():
                    if (c.selection, c.backbone) == (s, b) and m in st.methods and \
                            st.status != "mismatch":
                        for stage in st.methods[m]["stages"]:
                            per_stage.setdefault(stage["stage"], []).append(stage[METRICS[0]])
                if per_stage:
                    xs = sorted(per_stage)
                    ax.plot(xs, [sum(per_stage[x]) / len(per_stage[x]) for x in xs],
                            marker="o", markersize=3, label=m, **style[m])
            ax.set_title(f"{s}: {b}", fontsize=9)
            ax.set_xlabel("stage")
            ax.grid(alpha=0.3)
            if not ax.lines:
                ax.text(0.5, 0.5, "no finished cell", ha="center", transform=ax.transAxes)
        axes[i][0].set_ylabel(f"Recall@{K} (mean over seeds)")
    handles, labels = {}, []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    fig.tight_layout()
    fig.legend([handles[lab] for lab in labels], labels, loc="center left", fontsize=7,
               bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.savefig(path, dpi=110, bbox_inches="tight")  # widened to hold the legend
    plt.close(fig)
    return True


# -- commands --------------------------------------------------------------------------------

def _plan(args, methods, backbones, preset) -> int:
    """One command per cell; cells done are commented out."""
    cells = grid(args, backbones)
    states = collect(cells, methods, preset)
    counts = {k: sum(st.status == k for st in states.values())
              for k in ("done", "partial", "mismatch", "missing")}
    print(f"# table2: {len(cells)} cells ({len(args.selections)} selections x {len(backbones)} "
          f"backbones x {len(args.seeds)} seeds), {len(methods)} methods each: "
          + ", ".join(f"{v} {k}" for k, v in counts.items()))
    for c in cells:
        st = states[c]
        print(f"# [{st.status}] {c.name}" + (f": {st.note}" if st.note else ""))
        print(("# " if st.status == "done" else "")
              + shlex.join(command(c, args.data, methods, threads=args.threads,
                                   auto_share=args.auto_share)))
    return 0


def _run(args, methods, backbones, preset) -> int:
    """Run the cells not done, ``--jobs`` at a time; after the first failure start no more,
    let the running ones finish, and return that failure's exit code."""
    states = collect(grid(args, backbones), methods, preset)
    todo = [c for c, st in states.items() if st.status != "done"]
    if args.max_cells is not None:
        todo = todo[:args.max_cells]
    for c in todo:  # graphpro --resume would refuse these too; say why before starting any
        st = states[c]
        if st.status == "mismatch":
            print(f"table2: error: {c.out} holds another configuration ({st.note}); move it "
                  "away to run this cell", file=sys.stderr)
            return 2
    running: list[tuple[Cell, subprocess.Popen]] = []
    queue, failure = list(enumerate(todo, 1)), 0

    def reap() -> None:
        """Collect the cells that ended (any order); note the first failure."""
        nonlocal failure
        for item in [r for r in running if r[1].poll() is not None]:
            running.remove(item)
            c, rc = item[0], item[1].returncode
            if rc != 0:
                print(f"table2: error: cell {c.name} failed (exit code {rc}); `table2.py run` "
                      "resumes it", file=sys.stderr)
                failure = failure or rc
                continue
            after = read_cell(c, methods, preset)
            if after.status != "done":
                print(f"table2: error: cell {c.name} ended but is {after.status} "
                      f"({after.note})", file=sys.stderr)
                failure = failure or 1

    def stop(signum, frame):
        raise _Stopped(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        while queue:
            reap()
            if failure:
                break
            if len(running) >= args.jobs:
                time.sleep(0.2)
                continue
            i, c = queue.pop(0)
            if args.seed_from:
                copied = seed_cell(c, args.seed_from, methods)
                if copied:
                    print(f"table2: cell {c.name}: seeded from {args.seed_from}: "
                          + ", ".join(copied), flush=True)
            cmd = command(c, args.data, methods, python=sys.executable, threads=args.threads,
                          auto_share=args.auto_share)
            print(f"table2: cell {i}/{len(todo)} {c.name}: {shlex.join(cmd)}", flush=True)
            if args.jobs == 1:
                running.append((c, subprocess.Popen(cmd)))
            else:  # side by side: each cell's output goes to its own log, not interleaved here
                os.makedirs(c.out, exist_ok=True)
                with open(os.path.join(c.out, "table2-run.log"), "ab") as log:
                    running.append((c, subprocess.Popen(cmd, stdout=log,
                                                        stderr=subprocess.STDOUT)))
        while running:
            time.sleep(0.2)
            reap()
    except (KeyboardInterrupt, _Stopped) as e:
        # the cells are this run's children: stop them too (they resume from their last
        # checkpoints), rather than leave them training unattended
        for _, proc in running:
            if proc.poll() is None:
                proc.terminate()
        for _, proc in running:
            proc.wait()
        names = ", ".join(c.name for c, _ in running) or "none"
        print(f"table2: interrupted; cells stopped: {names}; `table2.py run` resumes them",
              file=sys.stderr)
        return 128 + (e.signum if isinstance(e, _Stopped) else signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if failure:
        return failure
    print(f"table2: {len(todo)} cell(s) run")
    return 0


def _report(args, methods, backbones, preset) -> int:
    """Markdown tables, significance, cells done/missing and the curves."""
    cells = []
    for root in args.roots:
        cells += [c for c in grid(args, backbones, root)
                  + discover(root, args.selections, backbones, args.stage_loss)
                  if c not in cells]
    states = merge_roots(collect(cells, methods, preset), args.roots, methods)
    out = args.out or os.path.join(args.roots[0], "table2.md")  # one root (main checks)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    from graphpro_ext.graphpro.runtime import write_bytes_atomic

    write_bytes_atomic(markdown(states, args, methods, backbones).encode(), out)
    print(f"table2: wrote {out}")
    # beside the tables (never into an archived root the report only reads, when --out says
    # where the outputs go)
    path = args.plot or os.path.join(os.path.dirname(os.path.abspath(out)), "recall_per_stage.png")
    if plot(in_seeds(states, args.seeds), path, args.selections, methods, backbones):
        print(f"table2: wrote {path}")
    else:
        print("table2: no plot (no finished cell, or matplotlib missing)")
    return 0


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _tree_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(path)
               for n in names)


def prunable() -> tuple[str, ...]:
    """What a finished cell no longer needs once its results are kept: the trainer's
    checkpoint and served-model folders."""
    from graphpro_ext.graphpro.checkpoint import CKPT_DIR
    from graphpro_ext.graphpro.serving import MODEL_DIR

    return CKPT_DIR, MODEL_DIR


def _archive(args, methods, backbones, preset) -> int:
    """Copy each finished cell's results.json to ``--to`` (same layout); with ``--prune``, then
    delete the cell's checkpoints and served models, but only once the copy is byte-identical.
    A different results.json already at the destination is never overwritten. With
    ``--stages``, an unfinished cell's small resumable checkpoints (``resumable(small=True)``)
    are copied too, never over a different file."""
    from graphpro_ext.graphpro.runtime import write_bytes_atomic

    cells = grid(args, backbones)
    states = collect(cells, methods, preset)
    stages = {c: resumable(c.out, methods, small=True) if args.stages else []
              for c in cells if states[c].status == "partial"}
    for c in cells:
        if states[c].status in ("partial", "mismatch") and not stages.get(c):
            print(f"table2: skip {c.name}: {states[c].status}"
                  + (f" ({states[c].note})" if states[c].note else ""))
    # (cell, results.json bytes, destination) of each finished cell
    done = [(c, _read(os.path.join(c.out, "results.json")),
             os.path.join(replace(c, root=args.to).out, "results.json"))
            for c in cells if states[c].status == "done"]
    kept = [(c, rel, _read(os.path.join(c.out, rel)),
             os.path.join(replace(c, root=args.to).out, rel))
            for c, files in stages.items() for rel in files]
    clash = [dest for _, data, dest in done if _read(dest) not in (None, data)]
    clash += [dest for _, rel, data, dest in kept if _clashes(rel, data, dest)]
    if clash:  # checked before anything is copied: all or nothing
        print(f"table2: error: {clash[0]} already holds other results; move it away or archive "
              "to another --to", file=sys.stderr)
        return 2
    for c, rel, data, dest in kept:
        if _read(dest) is None:
            write_bytes_atomic(data, dest)
    for c in stages:
        if stages[c]:
            print(f"table2: {c.name}: unfinished; kept {len(stages[c]) - 1} finished stage(s) "
                  f"in {replace(c, root=args.to).out} (`run --seed-from {args.to}` resumes "
                  "after them)")
    freed = 0
    for c, data, dest in done:
        if _read(dest) == data:
            print(f"table2: {c.name}: already archived in {dest}")
        else:
            write_bytes_atomic(data, dest)
            print(f"table2: {c.name}: archived to {dest}")
        if not args.prune:
            continue
        if _read(dest) != data:  # a copy that did not land whole keeps the source
            print(f"table2: error: {dest} differs from {c.out}/results.json after copying; "
                  "nothing pruned", file=sys.stderr)
            return 1
        for name in prunable():
            path = os.path.join(c.out, name)
            if os.path.isdir(path):
                size = _tree_bytes(path)
                shutil.rmtree(path)
                freed += size
                print(f"table2: {c.name}: pruned {path} ({size / 1e6:.0f} MB)")
    print(f"table2: {len(done)} finished cell(s) archived"
          + (f", {freed / 1e9:.2f} GB freed" if args.prune else ""))
    return 0


def _clashes(rel: str, data: bytes, dest: str) -> bool:
    """Whether archiving ``data`` as ``dest`` would replace something different: a config.json
    may differ only where results cannot (the methods run, checkpoint frequency...)."""
    old = _read(dest)
    if old is None or old == data:
        return False
    if os.path.basename(rel) != "config.json":
        return True
    from graphpro_ext.graphpro.stages import _result_relevant

    try:
        return _result_relevant(json.loads(old)) != _result_relevant(json.loads(data))
    except ValueError:
        return True


def _names(text: str, known: list[str], what: str) -> list[str]:
    names = list(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
    bad = [x for x in names if x not in known]
    if bad or not names:
        raise UsageError(f"--{what}: unknown {bad or '(empty)'}; choose from {','.join(known)}")
    return names


def build_parser() -> argparse.ArgumentParser:
    from graphpro_ext.graphpro.methods.base import STAGE_LOSSES

    p = _Parser(prog="table2", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, helptext in (("plan", "print one command per cell, marking cells done"),
                           ("run", "run the cells not done, one after another"),
                           ("report", "write the tables, significance and plot"),
                           ("archive", "copy finished cells' results.json elsewhere; --prune "
                                       "then deletes their checkpoints and models")):
        sp = sub.add_parser(name, help=helptext)
        if name == "report":
            sp.add_argument("--root", dest="roots", action="append",
                            help=f"folder of the cells (default {DEFAULT_ROOT}); given more than "
                                 "once, each cell's methods are merged over the folders, the "
                                 "last one winning a method found in several")
        else:
            sp.add_argument("--root", default=DEFAULT_ROOT, help="folder of the cells")
        sp.add_argument("--seeds", default=DEFAULT_SEEDS)
        sp.add_argument("--backbones", default="all", help="all or a,b (graphpro --help)")
        sp.add_argument("--selections", default=",".join(SELECTIONS))
        sp.add_argument("--methods", default="all", help="all or a,b (graphpro --help)")
        sp.add_argument("--stage-loss", choices=STAGE_LOSSES, default="backbone",
                        help="what the SGL/SimGCL/MixGCF cells' stages train (graphpro run "
                             "--stage-loss); cells run with the other are mismatches")
        if name in ("plan", "run"):
            sp.add_argument("--data", default=DEFAULT_DATA, help="the Amazon snapshot folder")
            sp.add_argument("--threads", type=int,
                            help="torch CPU threads per cell (graphpro run --threads)")
            sp.add_argument("--auto-share", type=float,
                            help="graphpro run --auto-share for every cell (cells begun before "
                                 "the flag existed resume with 0.5)")
        if name == "run":
            sp.add_argument("--max-cells", type=int, help="stop after this many cells")
            sp.add_argument("--seed-from", metavar="ROOT",
                            help="a cell without checkpoints first copies the same cell's "
                                 "finished ones from ROOT (config, pre-trainings, finished "
                                 "stages) and resumes after them: another piece of the grid, "
                                 "or an `archive --stages` folder")
            sp.add_argument("--jobs", type=int, default=1,
                            help="cells run side by side (each logs to OUT/table2-run.log)")
        if name == "archive":
            sp.add_argument("--to", required=True,
                            help="folder receiving SELECTION/BACKBONE-sSEED/results.json")
            sp.add_argument("--stages", action="store_true",
                            help="also keep the unfinished cells' finished stages of methods "
                                 "that read no earlier table (full), with their config, for "
                                 "`run --seed-from` in a later session (kilobytes per stage)")
            sp.add_argument("--prune", action="store_true",
                            help="after a byte-identical copy, delete the cell's "
                                 + " and ".join(f"{n}/" for n in prunable())
                                 + " (the cell can no longer be resumed)")
        if name == "report":
            sp.add_argument("--out", help="Markdown file (default ROOT/table2.md; required "
                                          "with several --root)")
            sp.add_argument("--plot", help="PNG file (default recall_per_stage.png beside "
                                           "--out)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, validate against the trainer's registries, dispatch."""
    try:
        args = build_parser().parse_args(argv)
        known_methods, known_backbones, preset = registries()
        methods = known_methods if args.methods == "all" else _names(args.methods,
                                                                     known_methods, "methods")
        backbones = (known_backbones if args.backbones == "all"
                     else _names(args.backbones, known_backbones, "backbones"))
        args.selections = _names(args.selections, list(SELECTIONS), "selections")
        try:
            args.seeds = list(dict.fromkeys(int(x) for x in args.seeds.split(",") if x.strip()))
        except ValueError:
            raise UsageError(f"--seeds {args.seeds}: comma-separated integers") from None
        if not args.seeds or min(args.seeds) < 0:
            raise UsageError(f"--seeds {args.seeds}: give at least one non-negative seed")
        if args.command == "report":
            args.roots = list(dict.fromkeys(args.roots or [DEFAULT_ROOT]))
            if len(args.roots) > 1 and not args.out:
                # no root is the obvious home of a merged report, and the merged roots are
                # usually archives the report only reads
                raise UsageError("--out: required with several --root (where the merged report "
                                 "goes)")
        for flag in ("max_cells", "threads", "jobs"):
            v = getattr(args, flag, None)
            if v is not None and v < 1:
                raise UsageError(f"--{flag.replace('_', '-')} {v}: at least 1")
        share = getattr(args, "auto_share", None)
        if share is not None and not 0.0 < share <= 1.0:
            raise UsageError(f"--auto-share {share}: in (0, 1]")
        if args.command in ("plan", "run") and not os.path.isfile(
                os.path.join(args.data, "fine_tune.txt")):
            raise UsageError(f"--data {args.data}: not a snapshot folder (no fine_tune.txt)")
        if args.command == "archive" and os.path.abspath(args.to) == os.path.abspath(args.root):
            raise UsageError(f"--to {args.to}: the same folder as --root")
        if getattr(args, "seed_from", None):
            if os.path.abspath(args.seed_from) == os.path.abspath(args.root):
                raise UsageError(f"--seed-from {args.seed_from}: the same folder as --root")
            if not os.path.isdir(args.seed_from):
                raise UsageError(f"--seed-from {args.seed_from}: no such folder")
    except UsageError as e:
        print(f"table2: error: {e}", file=sys.stderr)
        return 2
    return {"plan": _plan, "run": _run, "report": _report, "archive": _archive}[args.command](
        args, methods, backbones, preset)


if __name__ == "__main__":
    sys.exit(main())
