"""scripts/table2.py (issue 13): the plan of cells, running the missing ones, and the report's
statistics, on hand-written results.json files (nothing is trained here)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("table2", ROOT / "scripts" / "table2.py")
t2 = importlib.util.module_from_spec(_spec)
sys.modules["table2"] = t2  # dataclasses look their module up
_spec.loader.exec_module(t2)

PRESET = t2.registries()[2]
HONEST_BUDGET = {k: PRESET[k] for k in t2.REFERENCE_BUDGET}


def fake_results(out: Path, seed: int, methods: dict, selection: str = "honest",
                 backbone: str = "lightgcn", wall: dict | None = None,
                 record_seed: int | None = None, pretrain: dict | None = None,
                 stage_loss: str | None = None) -> None:
    """A results.json as `graphpro run` writes it: methods = {name: (recall avg, ndcg avg)},
    every one of the 8 stages at its average."""
    budget = t2.REFERENCE_BUDGET if selection == "reference" else HONEST_BUDGET
    out.mkdir(parents=True, exist_ok=True)
    res = {"dataset": "amazon",
           "command": f"graphpro_ext/graphpro/__main__.py run --backbone {backbone} --seed {seed}",
           "preset": "amazon",
           "protocol": {"select_on": "test" if selection == "reference" else "val",
                        "stages": 8},
           "hyperparameters": {"seed": seed if record_seed is None else record_seed, **budget,
                               **({"stage_loss": stage_loss} if stage_loss else {})},
           "wall_s": wall or {"this_process": 1.0},
           "methods": {m: {"stages": [{"stage": i, "recall@20": r, "ndcg@20": n}
                                      for i in range(1, 9)],
                           "average": {"recall@20": r, "ndcg@20": n}, "wall_s": 1.0}
                       for m, (r, n) in methods.items()},
           "pretrain": {k: {"best_epoch": best, "epochs_run": run, "select": {"recall@20": r}}
                        for k, (r, best, run) in (pretrain or {}).items()}}
    (out / "results.json").write_text(json.dumps(res))


@pytest.fixture
def data(tmp_path) -> Path:
    d = tmp_path / "amazon"
    d.mkdir()
    (d / "fine_tune.txt").write_text("0\t1\t100\n")
    return d


# -- the Student-t distribution -----------------------------------------------------------

def test_t_distribution_known_values():
    # two-sided 5% critical values from any t table
    for t, df in ((2.776, 4), (12.706, 1), (4.303, 2), (2.228, 10), (2.042, 30)):
        assert t2.t_two_sided(t, df) == pytest.approx(0.05, abs=2e-4), (t, df)
    for t in (0.1, 0.5, 1.0, 3.0, 10.0, 100.0):  # closed forms for df = 1, 2, 3
        assert t2.t_two_sided(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), rel=1e-10)
        assert t2.t_two_sided(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-10)
        s = t / math.sqrt(3)
        cdf3 = 0.5 + (s / (1 + s * s) + math.atan(s)) / math.pi
        assert t2.t_cdf(t, 3) == pytest.approx(cdf3, rel=1e-12)
        assert t2.t_cdf(-t, 3) == pytest.approx(1 - cdf3, rel=1e-9)
    # large df: the normal distribution
    assert t2.t_two_sided(1.96, 1e7) == pytest.approx(math.erfc(1.96 / math.sqrt(2)), rel=1e-5)
    assert t2.t_cdf(0.0, 5) == 0.5 and t2.t_two_sided(0.0, 5) == 1.0
    for x in (0.05, 0.3, 0.5, 0.9):  # I_x(a, 1) = x^a, I_x(1, b) = 1 - (1 - x)^b
        assert t2.betainc(3.5, 1.0, x) == pytest.approx(x ** 3.5, rel=1e-12)
        assert t2.betainc(1.0, 2.5, x) == pytest.approx(1 - (1 - x) ** 2.5, rel=1e-12)


def test_paired_t_by_hand():
    # differences -0.001, 0, -0.002: mean -0.001, sd 0.001, t = -sqrt(3), df 2
    r = t2.paired_t([0.010, 0.012, 0.014], [0.011, 0.012, 0.016])
    assert r["n"] == 3 and r["diff"] == pytest.approx(-0.001)
    assert r["t"] == pytest.approx(-math.sqrt(3))
    assert r["p"] == pytest.approx(1 - math.sqrt(3 / 5))  # df 2: 1 - |t| / sqrt(2 + t^2)
    assert t2.paired_t([0.02], [0.018])["p"] is None  # one seed: no test
    assert t2.paired_t([0.02, 0.03], [0.01, 0.02])["p"] is None  # constant difference
    m, sd = t2.mean_std([0.011, 0.012, 0.016])
    assert m == pytest.approx(0.013) and sd == pytest.approx(math.sqrt(7e-6))


# -- plan and run ---------------------------------------------------------------------------

def _grid(root, data, *extra):
    return ["--root", str(root), "--data", str(data), "--seeds", "1,2", "--backbones",
            "lightgcn,sgl", "--methods", "graphpro,finetune", *extra]


def _make_tree(root: Path) -> None:
    both = {"graphpro": (0.01, 0.005), "finetune": (0.012, 0.006)}
    fake_results(root / "honest" / "lightgcn-s1", 1, both)  # done
    fake_results(root / "honest" / "lightgcn-s2", 2, {"graphpro": (0.01, 0.005)})  # 1 of 2
    (root / "honest" / "sgl-s1" / "ckpt").mkdir(parents=True)  # interrupted, no results yet
    fake_results(root / "reference" / "sgl-s2", 2, both, selection="honest",
                 backbone="sgl")  # a run of the other selection rule in this cell's folder


def test_plan_commands_and_marking(tmp_path, data, capsys):
    root = tmp_path / "t2"
    _make_tree(root)
    assert t2.main(["plan", *_grid(root, data)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# table2: 8 cells") and "1 done, 2 partial, 1 mismatch, " \
        "4 missing" in lines[0]
    marks = {ln.split("] ")[1].split(":")[0]: ln for ln in lines[1::2]}
    cmds = dict(zip(marks, lines[2::2]))
    assert len(cmds) == 8
    assert marks["honest/lightgcn-s1"].startswith("# [done]")
    assert marks["honest/lightgcn-s2"] == "# [partial] honest/lightgcn-s2: 1/2 methods in " \
                                          "results.json"
    assert marks["honest/sgl-s1"].startswith("# [partial]")
    assert marks["reference/sgl-s2"].startswith("# [mismatch]") and "select_on val" in \
        marks["reference/sgl-s2"]
    assert marks["reference/lightgcn-s1"].startswith("# [missing]")
    assert cmds["honest/lightgcn-s1"].startswith("# python -m graphpro_ext.graphpro run")
    for name, cmd in cmds.items():
        sel, cell = name.split("/")
        backbone, seed = cell.split("-s")
        words = cmd.removeprefix("# ").split()
        assert words[:4] == ["python", "-m", "graphpro_ext.graphpro", "run"]
        opt = {w: words[i + 1] for i, w in enumerate(words) if w.startswith("--") and
               i + 1 < len(words) and not words[i + 1].startswith("--")}
        assert opt["--data"] == str(data) and opt["--preset"] == "amazon"
        assert opt["--methods"] == "graphpro,finetune" and opt["--serve"] == "none"
        assert opt["--backbone"] == backbone and opt["--seed"] == seed
        assert opt["--out"] == os.path.join(str(root), sel, cell)
        assert ("--resume" in words) == (root / sel / cell).is_dir()
        assert "--auto-share" not in opt  # the trainer's default unless asked
        if sel == "reference":
            assert {k: opt[k] for k in ("--select-on", "--epochs", "--stage-epochs",
                                        "--patience", "--stage-patience")} == \
                {"--select-on": "test", "--epochs": "300", "--stage-epochs": "300",
                 "--patience": "10", "--stage-patience": "10"}
        else:
            assert opt["--select-on"] == "val" and "--epochs" not in opt


def test_auto_share_reaches_every_cell(tmp_path, data, capsys):
    """Cells begun before --auto-share existed resume with 0.5: plan passes it to each."""
    assert t2.main(["plan", *_grid(tmp_path / "t2", data), "--auto-share", "0.5"]) == 0
    cmds = [ln for ln in capsys.readouterr().out.splitlines() if "graphpro run" in ln]
    assert len(cmds) == 8 and all("--auto-share 0.5" in c for c in cmds)


class FakeGraphpro:
    """Stands in for subprocess.Popen: records commands; each fake process ends after `polls`
    polls, writing its cell's results unless its exit code (`rc`, or `fail` for one --out)
    is non-zero. Counts how many ran at once."""

    def __init__(self, rc: int = 0, polls: int = 0, fail: dict | None = None):
        self.rc, self.polls, self.fail = rc, polls, fail or {}
        self.calls, self.live, self.most_live, self.terminated = [], 0, 0, []

    def __call__(self, cmd, **kwargs):
        self.calls.append(cmd)
        self.live += 1
        self.most_live = max(self.most_live, self.live)
        return _FakeProcess(self, cmd)


class _FakeProcess:
    def __init__(self, owner: FakeGraphpro, cmd):
        self.owner, self.cmd, self.left, self.returncode = owner, cmd, owner.polls, None

    def poll(self):
        if self.returncode is None:
            if self.left > 0:
                self.left -= 1
                return None
            cmd, out = self.cmd, self.cmd[self.cmd.index("--out") + 1]
            self.returncode = self.owner.fail.get(out, self.owner.rc)
            self.owner.live -= 1
            if self.returncode == 0:
                fake_results(Path(out), int(cmd[cmd.index("--seed") + 1]),
                             {m: (0.01, 0.005) for m in cmd[cmd.index("--methods") + 1].split(",")},
                             selection="reference" if "test" in cmd else "honest",
                             backbone=cmd[cmd.index("--backbone") + 1],
                             stage_loss=cmd[cmd.index("--stage-loss") + 1]
                             if "--stage-loss" in cmd else None)
        return self.returncode

    def terminate(self):
        if self.returncode is None:
            self.returncode = -15
            self.owner.live -= 1
            self.owner.terminated.append(self.cmd[self.cmd.index("--out") + 1])

    def wait(self):
        return self.returncode


def test_run_missing_cells_then_stops(tmp_path, data, monkeypatch, capsys):
    root = tmp_path / "t2"
    _make_tree(root)
    fake = FakeGraphpro()
    monkeypatch.setattr(t2.subprocess, "Popen", fake)
    args = _grid(root, data, "--selections", "honest")
    assert t2.main(["run", *args, "--max-cells", "2"]) == 0
    assert [c[c.index("--out") + 1] for c in fake.calls] == [
        str(root / "honest" / "lightgcn-s2"), str(root / "honest" / "sgl-s1")]
    assert all("--resume" in c and c[0] == sys.executable for c in fake.calls)
    assert t2.main(["run", *args]) == 0  # the last one, fresh: no --resume
    assert len(fake.calls) == 3 and "--resume" not in fake.calls[2]
    assert fake.calls[2][fake.calls[2].index("--out") + 1] == str(root / "honest" / "sgl-s2")
    assert t2.main(["run", *args]) == 0 and len(fake.calls) == 3  # all done: nothing runs

    failing = FakeGraphpro(rc=3)
    monkeypatch.setattr(t2.subprocess, "Popen", failing)
    # (reference/sgl-s2 holds an honest run: refused up front, see below; leave sgl out here)
    assert t2.main(["run", *_grid(root, data, "--selections", "reference", "--backbones",
                                  "lightgcn")]) == 3
    assert len(failing.calls) == 1  # stopped at the first failure
    assert "failed (exit code 3)" in capsys.readouterr().err
    # a folder holding another configuration, anywhere in the grid, is refused before anything
    # runs
    assert t2.main(["run", *_grid(root, data, "--selections", "reference")]) == 2
    assert len(failing.calls) == 1 and "want test" in capsys.readouterr().err
    fake_results(root / "reference" / "lightgcn-s1", 1, {"graphpro": (0.01, 0.005)},
                 record_seed=7, selection="reference")
    assert t2.main(["run", *_grid(root, data, "--selections", "reference", "--backbones",
                                  "lightgcn")]) == 2
    assert len(failing.calls) == 1 and "seed 7 (want 1)" in capsys.readouterr().err



def test_run_jobs_side_by_side(tmp_path, data, monkeypatch, capsys):
    """--jobs J keeps at most J cells running, each logging to its own folder; --threads reaches
    every graphpro command; after a failure no new cell starts, running ones finish."""
    root = tmp_path / "t2"
    monkeypatch.setattr(t2.time, "sleep", lambda s: None)
    fake = FakeGraphpro(polls=3)
    monkeypatch.setattr(t2.subprocess, "Popen", fake)
    args = _grid(root, data, "--selections", "honest")
    assert t2.main(["run", *args, "--jobs", "2", "--threads", "1"]) == 0
    assert len(fake.calls) == 4 and fake.most_live == 2
    assert all(c[c.index("--threads") + 1] == "1" for c in fake.calls)
    assert all((Path(c[c.index("--out") + 1]) / "table2-run.log").exists() for c in fake.calls)
    assert "4 cell(s) run" in capsys.readouterr().out

    first = str(root / "reference" / "lightgcn-s1")
    failing = FakeGraphpro(polls=2, fail={first: 5})
    monkeypatch.setattr(t2.subprocess, "Popen", failing)
    assert t2.main(["run", *_grid(root, data, "--selections", "reference"), "--jobs", "2"]) == 5
    assert len(failing.calls) == 2 and failing.live == 0  # the second finished, none after
    err = capsys.readouterr().err
    assert "lightgcn-s1 failed (exit code 5)" in err
    assert t2.main(["plan", *_grid(root, data, "--selections", "reference"),
                    "--threads", "3"]) == 0
    assert capsys.readouterr().out.count("--threads 3") == 4


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT"])
def test_run_stopped_stops_its_cells(how, tmp_path, data, monkeypatch, capsys):
    """SIGTERM or Ctrl-C to `table2.py run` terminates the cells it started (they would
    otherwise train on unattended) and says how to resume; no new cell starts."""
    import signal

    root = tmp_path / "t2"
    fake = FakeGraphpro(polls=10 ** 6)  # never ends by itself
    monkeypatch.setattr(t2.subprocess, "Popen", fake)
    sleeps = []

    def sleep(s):
        sleeps.append(s)
        if len(sleeps) == 3:  # both cells are running by now
            if how == "SIGTERM":
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                raise KeyboardInterrupt

    monkeypatch.setattr(t2.time, "sleep", sleep)
    before = signal.getsignal(signal.SIGTERM)
    rc = t2.main(["run", *_grid(root, data, "--selections", "honest"), "--jobs", "2"])
    assert rc == 128 + (signal.SIGTERM if how == "SIGTERM" else signal.SIGINT)
    assert len(fake.calls) == 2 and fake.live == 0
    assert sorted(fake.terminated) == sorted(c[c.index("--out") + 1] for c in fake.calls)
    err = capsys.readouterr().err
    assert "interrupted; cells stopped: honest/lightgcn-s1, honest/lightgcn-s2" in err
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is put back

# -- report ---------------------------------------------------------------------------------

def test_report_tables_significance_and_cells(tmp_path, capsys):
    root = tmp_path / "t2"
    gp_r, gp_n = [0.010, 0.012, 0.014], [0.005, 0.006, 0.010]
    ft_r, ft_n = [0.011, 0.012, 0.016], [0.004, 0.004, 0.004]
    for i, seed in enumerate((2023, 2024, 2025)):
        fake_results(root / "honest" / f"lightgcn-s{seed}", seed,
                     {"graphpro": (gp_r[i], gp_n[i]), "finetune": (ft_r[i], ft_n[i])},
                     wall={"pretrain-graphpro": 10.0, "graphpro": 20.0, "finetune": 30.0,
                           "this_process": 65.0})
    fake_results(root / "honest" / "sgl-s2023", 2023,
                 {"graphpro": (0.02, 0.01), "finetune": (0.018, 0.009)}, backbone="sgl",
                 stage_loss="backbone")
    # found under ROOT but written with another seed than its folder says: never counted
    fake_results(root / "honest" / "lightgcn-s9", 9, {"graphpro": (0.9, 0.9)}, record_seed=1)
    # a good cell of a seed outside --seeds: listed, not counted
    fake_results(root / "honest" / "lightgcn-s7", 7, {"graphpro": (0.5, 0.5),
                                                      "finetune": (0.5, 0.5)})
    out, png = tmp_path / "frag.md", tmp_path / "curves.png"
    assert t2.main(["report", "--root", str(root), "--backbones", "lightgcn,sgl", "--methods",
                    "graphpro,finetune", "--out", str(out), "--plot", str(png)]) == 0
    md = out.read_text()
    honest, reference = md.split("### Selection `reference`")[0], \
        md.split("### Selection `reference`")[1].split("### Significance")[0]
    # Recall@20: graphpro mean 0.012, sd 0.002; finetune mean 0.013, sd sqrt(7e-6) = 0.0026
    assert "| graphpro | 0.0120 ± 0.0020 (3) | 0.0200 (1) |" in honest
    assert "| finetune | 0.0130 ± 0.0026 (3) | 0.0180 (1) |" in honest
    # NDCG@20: graphpro 0.007 ± sqrt(7e-6); finetune 0.004 ± 0
    assert "| graphpro | 0.0070 ± 0.0026 (3) | 0.0100 (1) |" in honest
    assert "| finetune | 0.0040 ± 0.0000 (3) | 0.0090 (1) |" in honest
    assert "| graphpro | missing | missing |" in reference
    # paired: recall differences -0.001, 0, -0.002 -> t = -sqrt(3), p = 1 - sqrt(3/5) = 0.225;
    # ndcg differences 0.001, 0.002, 0.006 -> t^2 = 27/7, p = 1 - sqrt(27/41) = 0.188
    assert f"{1 - math.sqrt(3 / 5):.3g}" == "0.225" and f"{1 - math.sqrt(27 / 41):.3g}" == "0.188"
    assert "| lightgcn | finetune | 3 | -0.0010 | 0.225 | 0.0030 | 0.188 |" in md
    assert "| sgl | finetune | 1 | 0.0020 | n/a | 0.0010 | n/a |" in md
    assert "| simgcl |" not in md
    # cells: done with wall times, missing ones listed, the mismatched one not counted
    assert "| honest/lightgcn-s2023 | done | 2/2 | 60.0 (process 65.0) |" in md
    assert "| honest/sgl-s2024 | missing | 0/2 | – |" in md
    assert "| reference/lightgcn-s2025 | missing | 0/2 | – |" in md
    assert "| honest/lightgcn-s9 | mismatch, outside --seeds, not counted: results.json has " \
        "seed 1 (want 9)" in md
    assert "| honest/lightgcn-s7 | done, outside --seeds, not counted | 2/2 |" in md
    assert "0.9000" not in md and "0.5000" not in md
    assert "4 of 12 cells done." in md
    assert "from 4 cell(s) with results (of 14 listed below)" in md
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert png.stat().st_size > 0


def test_report_merges_a_cell_over_roots(tmp_path):
    """A method rerun in a second folder (and `full` run apart) joins the cell it belongs to:
    the last root wins a method found in both, a mismatching root adds nothing."""
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    fake_results(a / "honest" / "lightgcn-s2023", 2023,
                 {"graphpro": (0.010, 0.005), "finetune": (0.011, 0.006)},
                 wall={"graphpro": 20.0, "finetune": 30.0}, pretrain={"graphpro": (0.02, 3, 9)})
    fake_results(a / "honest" / "lightgcn-s2024", 2024, {"graphpro": (0.012, 0.007),
                                                         "finetune": (0.013, 0.008)},
                 pretrain={"graphpro": (0.04, 5, 11)})
    fake_results(b / "honest" / "lightgcn-s2023", 2023,
                 {"finetune": (0.021, 0.016), "full": (0.030, 0.020)}, wall={"full": 99.0},
                 pretrain={"lightgcn": (0.05, 1, 7)})
    fake_results(c / "honest" / "lightgcn-s2024", 2024, {"full": (0.9, 0.9)}, record_seed=1)
    out = tmp_path / "m.md"
    argv = ["report", "--root", str(a), "--root", str(b), "--root", str(c), "--selections",
            "honest", "--backbones", "lightgcn", "--seeds", "2023,2024", "--methods",
            "graphpro,finetune,full", "--out", str(out), "--plot", str(tmp_path / "m.png")]
    assert t2.main(argv) == 0
    md = out.read_text()
    # finetune: seed 2023 from b (0.021), seed 2024 from a (0.013) -> mean 0.017
    assert "| finetune | 0.0170 ± 0.0057 (2) |" in md
    assert "| graphpro | 0.0110 ± 0.0014 (2) |" in md
    assert "| full | 0.0300 (1) |" in md and "0.9000" not in md  # c's cell is not counted
    assert f"| honest/lightgcn-s2023 | done: graphpro from {a}; the rest from {b} | 3/3 | " \
        f"{a}: 50.0; {b}: 99.0 |" in md
    assert f"| honest/lightgcn-s2024 | partial: 2/3 methods over the roots; {c}: mismatch, " \
        "not counted (results.json has seed 1 (want 2024)) | 2/3 |" in md
    assert "1 of 2 cells done." in md
    assert f"--root {a} --root {b} --root {c} --seeds 2023,2024" in md
    # each pre-training from wherever it ran
    assert "| honest | lightgcn | graphpro | 0.0300 ± 0.0141 (2) | 3/9 (s2023), 5/11 (s2024) |" \
        in md
    assert "| honest | lightgcn | lightgcn | 0.0500 (1) | 1/7 (s2023) |" in md
    # a cell only begun under one root and missing under the others is partial, not missing
    (b / "honest" / "sgl-s2023" / "ckpt").mkdir(parents=True)
    assert t2.main(argv[:-4] + ["--backbones", "sgl"] + argv[-4:]) == 0
    assert f"| honest/sgl-s2023 | partial: {b}: checkpoints, no results.json yet | 0/3 |" \
        in out.read_text()
    # without --plot the curves go beside --out, never into a root the report only read
    assert t2.main(argv[:-2]) == 0
    assert (tmp_path / "recall_per_stage.png").exists()
    assert not [p for r in (a, b, c) for p in r.rglob("*.png")]
    # one root: the report reads as before (no merge notes)
    assert t2.main(argv[:3] + argv[7:]) == 0
    assert "| honest/lightgcn-s2023 | partial: 2/3 methods in results.json | 2/3 | 50.0 |" \
        in out.read_text()


def test_report_of_empty_root_invents_nothing(tmp_path):
    out = tmp_path / "frag.md"
    assert t2.main(["report", "--root", str(tmp_path / "none"), "--methods", "graphpro,finetune",
                    "--out", str(out), "--plot", str(tmp_path / "c.png")]) == 0
    md = out.read_text()
    assert "0 of 24 cells done." in md and "0.0" not in md.split("### Cells")[0]
    assert not (tmp_path / "c.png").exists()


# -- bad arguments --------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["plan", "--methods", "graphpro,nope"], "--methods: unknown ['nope']"),
    (["plan", "--backbones", "gcn"], "--backbones: unknown ['gcn']"),
    (["report", "--selections", "honest,best"], "--selections: unknown ['best']"),
    (["report", "--root", "a", "--root", "b"], "--out: required with several --root"),
    (["plan", "--seeds", "1,x"], "--seeds 1,x"),
    (["run", "--max-cells", "0"], "--max-cells 0"),
    (["run", "--jobs", "0"], "--jobs 0"),
    (["plan", "--threads", "-1"], "--threads -1"),
    (["run", "--auto-share", "0"], "--auto-share 0.0: in (0, 1]"),
    (["plan", "--nope"], "unrecognized arguments"),
])
def test_bad_arguments_exit_2(argv, message, data, capsys):
    if argv[0] != "report":
        argv = [*argv, "--data", str(data)]
    assert t2.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("table2: error: ") and message in err and err.count("\n") == 1


def test_missing_data_folder_exit_2(tmp_path, capsys):
    for cmd in ("plan", "run"):
        assert t2.main([cmd, "--data", str(tmp_path / "absent")]) == 2
        assert "not a snapshot folder" in capsys.readouterr().err
    # the script itself, as a user runs it
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "table2.py"), "plan",
                        "--backbones", "gcn"], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "gcn" in p.stderr


def test_stage_loss_is_part_of_a_cell(tmp_path, data, monkeypatch, capsys):
    """A SGL/SimGCL/MixGCF cell counts only under the --stage-loss it ran with (results.json
    without the field: BPR, as every run before the option); LightGCN cells count under both;
    the commands carry the flag for the other backbones only."""
    root = tmp_path / "t2"
    fake_results(root / "honest" / "sgl-s1", 1, {"graphpro": (0.02, 0.01)}, backbone="sgl")
    fake_results(root / "honest" / "lightgcn-s1", 1, {"graphpro": (0.01, 0.005)})
    args = ["--root", str(root), "--seeds", "1", "--backbones", "lightgcn,sgl", "--methods",
            "graphpro", "--selections", "honest"]
    tables = {}
    for loss in ("backbone", "bpr"):
        out = tmp_path / f"{loss}.md"
        assert t2.main(["report", *args, "--stage-loss", loss, "--out", str(out),
                        "--plot", str(tmp_path / "p.png")]) == 0
        tables[loss] = out.read_text()
    assert "| graphpro | 0.0100 (1) | missing |" in tables["backbone"]
    assert "stage_loss bpr (want backbone)" in tables["backbone"]
    assert "| graphpro | 0.0100 (1) | 0.0200 (1) |" in tables["bpr"]
    assert "--stage-loss bpr" in tables["bpr"] and "LightGCN's BPR" in tables["bpr"]
    capsys.readouterr()
    assert t2.main(["plan", *args, "--data", str(data), "--seeds", "2"]) == 0
    cmds = [ln for ln in capsys.readouterr().out.splitlines() if "graphpro run" in ln]
    sgl = [c for c in cmds if "--backbone sgl" in c]
    assert sgl and all("--stage-loss backbone" in c for c in sgl)
    assert all("--stage-loss" not in c for c in cmds if "--backbone lightgcn" in c)


# -- archive --------------------------------------------------------------------------------

def test_archive_copies_finished_cells_and_prunes_only_after(tmp_path, capsys):
    """Finished cells' results.json land under --to in the layout `report --root` reads;
    partial cells stay; --prune deletes ckpt/ and model/ of archived cells only; a different
    results.json at the destination is refused before anything is copied."""
    root, to = tmp_path / "runs", tmp_path / "docs"
    done, partial = root / "reference" / "sgl-s1", root / "reference" / "sgl-s2"
    fake_results(done, 1, {"graphpro": (0.02, 0.01), "finetune": (0.03, 0.02)},
                 selection="reference", backbone="sgl", stage_loss="backbone")
    fake_results(partial, 2, {"graphpro": (0.02, 0.01)}, selection="reference", backbone="sgl",
                 stage_loss="backbone")  # finetune not yet run
    for cell in (done, partial):
        for name in ("ckpt", "model", "keep"):
            (cell / name).mkdir()
            (cell / name / "x.pt").write_bytes(b"0" * 1000)
    args = ["--root", str(root), "--to", str(to), "--selections", "reference", "--backbones",
            "sgl", "--seeds", "1,2,3", "--methods", "graphpro,finetune"]

    assert t2.main(["archive", *args]) == 0  # copy only: nothing pruned without --prune
    out = capsys.readouterr().out
    copy = to / "reference" / "sgl-s1" / "results.json"
    assert copy.read_bytes() == (done / "results.json").read_bytes()
    assert not (to / "reference" / "sgl-s2").exists() and "skip reference/sgl-s2: partial" in out
    assert (done / "ckpt").is_dir() and (done / "model").is_dir()

    assert t2.main(["archive", *args, "--prune"]) == 0
    out = capsys.readouterr().out
    assert "already archived" in out and "1 finished cell(s) archived" in out
    assert not (done / "ckpt").exists() and not (done / "model").exists()
    assert (done / "keep" / "x.pt").exists() and (done / "results.json").exists()
    assert (partial / "ckpt").is_dir() and (partial / "model").is_dir()
    # the archive reads as the same finished cell
    st = t2.read_cell(t2.Cell("reference", "sgl", 1, str(to)), ["graphpro", "finetune"], PRESET)
    assert st.status == "done"

    # a rerun's different results.json never replaces the archived one, and nothing is pruned
    fake_results(done, 1, {"graphpro": (0.05, 0.01), "finetune": (0.03, 0.02)},
                 selection="reference", backbone="sgl", stage_loss="backbone")
    (done / "ckpt").mkdir()
    before = copy.read_bytes()
    assert t2.main(["archive", *args, "--prune"]) == 2
    err = capsys.readouterr().err
    assert "already holds other results" in err and err.count("\n") == 1
    assert copy.read_bytes() == before and (done / "ckpt").is_dir()

    assert t2.main(["archive", "--root", str(root), "--to", str(root)]) == 2
    assert "the same folder as --root" in capsys.readouterr().err
    assert t2.main(["archive", "--root", str(root)]) == 2  # --to is required
    assert "--to" in capsys.readouterr().err


# -- carrying finished checkpoints between folders (pieces, sessions) ---------------------------

def _ckpt(cell: Path, files: dict, config: dict | None = None) -> None:
    """A run folder's checkpoints: ``files`` maps paths under ckpt/ to their bytes."""
    (cell / "ckpt").mkdir(parents=True, exist_ok=True)
    (cell / "ckpt" / "config.json").write_text(json.dumps(config or {"window": 2, "seed": 1}))
    for rel, data in files.items():
        (cell / "ckpt" / rel).parent.mkdir(parents=True, exist_ok=True)
        (cell / "ckpt" / rel).write_bytes(data)


def test_resumable_is_a_consistent_prefix_of_finished_checkpoints(tmp_path):
    """Finished stages 1..k of each method with the tables stage k+1 reads; the pre-trainings
    the methods start from; never mid-phase files; a table-reading method whose tables are
    gone carries nothing; ``small`` keeps only what needs no table."""
    cell = tmp_path / "c"
    _ckpt(cell, {"pretrain_lightgcn.pt": b"p", "pretrain_graphpro.pt": b"g",
                 "pretrain_lightgcn.partial.pt": b"-",
                 "full/stage_1.pt": b"1", "full/stage_2.pt": b"2", "full/stage_4.pt": b"4",
                 "full/stage_3.partial.pt": b"-",
                 "finetune/stage_1.pt": b"1", "finetune/stage_2.pt": b"2",
                 "finetune/x_2.pt": b"x",
                 "graphpro/stage_1.pt": b"1", "graphpro/stage_2.pt": b"2",
                 "graphpro/x_2.pt": b"x"})  # window 2: stage 3 of graphpro also reads x_1
    got = t2.resumable(str(cell), ["full", "finetune", "graphpro"])
    assert got[0] == os.path.join("ckpt", "config.json")
    assert sorted(got[1:]) == sorted(os.path.join("ckpt", p) for p in [
        "pretrain_lightgcn.pt", "pretrain_graphpro.pt", "full/stage_1.pt", "full/stage_2.pt",
        "finetune/stage_1.pt", "finetune/stage_2.pt", "finetune/x_2.pt"])
    # only what the methods asked for start from
    assert os.path.join("ckpt", "pretrain_graphpro.pt") not in t2.resumable(str(cell),
                                                                           ["finetune"])
    small = t2.resumable(str(cell), ["full", "finetune", "graphpro"], small=True)
    assert small == [os.path.join("ckpt", p) for p in
                     ["config.json", "full/stage_1.pt", "full/stage_2.pt"]]
    assert t2.resumable(str(cell), ["finetune"], small=True) == []  # a config alone: nothing
    assert t2.resumable(str(tmp_path / "none"), ["full"]) == []


def test_seed_cell_copies_into_a_fresh_folder_only(tmp_path):
    src = tmp_path / "a" / "honest" / "lightgcn-s1"
    _ckpt(src, {"pretrain_lightgcn.pt": b"p", "full/stage_1.pt": b"1"})
    cell = t2.Cell("honest", "lightgcn", 1, str(tmp_path / "b"))
    copied = t2.seed_cell(cell, str(tmp_path / "a"), ["finetune", "full"])
    assert len(copied) == 3
    for rel in copied:
        assert (Path(cell.out) / rel).read_bytes() == (src / rel).read_bytes()
    (src / "ckpt" / "full" / "stage_2.pt").write_bytes(b"2")
    # a folder with checkpoints of its own is never written into
    assert t2.seed_cell(cell, str(tmp_path / "a"), ["full"]) == []
    assert not (Path(cell.out) / "ckpt" / "full" / "stage_2.pt").exists()


def test_archive_stages_keeps_small_checkpoints_never_over_others(tmp_path, capsys):
    root, to = tmp_path / "runs", tmp_path / "docs"
    cell = root / "honest" / "lightgcn-s1"
    cfg = {"window": 4, "seed": 1, "methods": ["full"], "dim": 64}
    _ckpt(cell, {"pretrain_lightgcn.pt": b"p" * 1000, "full/stage_1.pt": b"1",
                 "finetune/stage_1.pt": b"f", "finetune/x_1.pt": b"x"}, cfg)
    args = ["--root", str(root), "--to", str(to), "--selections", "honest", "--backbones",
            "lightgcn", "--seeds", "1", "--methods", "finetune,full"]
    assert t2.main(["archive", *args]) == 0  # without --stages: nothing of a partial cell
    assert "skip honest/lightgcn-s1: partial" in capsys.readouterr().out and not to.exists()
    assert t2.main(["archive", *args, "--stages", "--prune"]) == 0
    assert "kept 1 finished stage(s)" in capsys.readouterr().out
    kept = to / "honest" / "lightgcn-s1" / "ckpt"
    assert sorted(str(p.relative_to(kept)) for p in kept.rglob("*") if p.is_file()) == [
        "config.json", os.path.join("full", "stage_1.pt")]
    assert (cell / "ckpt").is_dir()  # an unfinished cell is never pruned
    # a later session: the config may differ where results cannot (methods), stages add up
    _ckpt(cell, {"full/stage_2.pt": b"2"}, {**cfg, "methods": ["full", "finetune"]})
    assert t2.main(["archive", *args, "--stages"]) == 0
    assert (kept / "full" / "stage_2.pt").read_bytes() == b"2"
    assert json.loads((kept / "config.json").read_text())["methods"] == ["full"]
    # ...but a different stage, or a configuration that changes results, is refused whole
    (cell / "ckpt" / "full" / "stage_1.pt").write_bytes(b"other")
    (cell / "ckpt" / "full" / "stage_3.pt").write_bytes(b"3")
    assert t2.main(["archive", *args, "--stages"]) == 2
    assert "already holds other results" in capsys.readouterr().err
    assert not (kept / "full" / "stage_3.pt").exists()
    (cell / "ckpt" / "full" / "stage_1.pt").write_bytes(b"1")
    _ckpt(cell, {}, {**cfg, "dim": 32})
    assert t2.main(["archive", *args, "--stages"]) == 2
    capsys.readouterr()


def test_seed_from_bad_folders_exit_2(tmp_path, data, capsys):
    root = tmp_path / "r"
    for bad, msg in ((str(tmp_path / "nope"), "no such folder"), (str(root), "same folder")):
        root.mkdir(exist_ok=True)
        assert t2.main(["run", "--root", str(root), "--data", str(data), "--seed-from", bad]) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1


def test_full_cell_continues_in_another_session_from_its_archived_stages(tmp_path, monkeypatch,
                                                                           capsys):
    """A `full` cell cut off after stage 2 (a session's end), archived with --stages, resumes
    in a fresh folder seeded from the archive and ends with the uninterrupted run's results,
    stages 1 and 2 not recomputed."""
    from graphpro_ext.graphpro.data import synthetic, write_snapshot_folder

    d = tmp_path / "amazon"
    write_snapshot_folder(synthetic(60, 40, num_snapshots=4, seed=3), d)
    assert (d / "fine_tune.txt").exists()
    grid = ["--data", str(d), "--selections", "honest", "--backbones", "lightgcn", "--seeds",
            "5", "--methods", "full", "--threads", "1"]
    assert t2.main(["run", "--root", str(tmp_path / "whole"), *grid]) == 0
    monkeypatch.setenv("GRAPHPRO_FAIL_AT", "full/stage2/done")
    assert t2.main(["run", "--root", str(tmp_path / "s1"), *grid]) == 75
    monkeypatch.delenv("GRAPHPRO_FAIL_AT")
    arch = tmp_path / "kept"
    assert t2.main(["archive", "--root", str(tmp_path / "s1"), "--to", str(arch), "--stages",
                    *grid[2:8], "--methods", "full"]) == 0
    capsys.readouterr()
    assert t2.main(["run", "--root", str(tmp_path / "s2"), "--seed-from", str(arch), *grid]) == 0
    assert "seeded from" in capsys.readouterr().out
    cell = "honest/lightgcn-s5"
    got, want = (json.loads((tmp_path / r / cell / "results.json").read_text())["methods"]["full"]
                 for r in ("s2", "whole"))
    key = ("stage", "recall@20", "ndcg@20", "best_epoch", "epochs_run")
    assert [{k: s[k] for k in key} for s in got["stages"]] == \
        [{k: s[k] for k in key} for s in want["stages"]]
    assert len(got["stages"]) == 3
    for n in (1, 2):  # the archived stages, not recomputed
        assert (tmp_path / "s2" / cell / "ckpt" / "full" / f"stage_{n}.pt").read_bytes() == \
            (arch / cell / "ckpt" / "full" / f"stage_{n}.pt").read_bytes()
