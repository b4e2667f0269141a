"""scripts/table2_pieces.py: pieces of Table 2 cells run a few at a time before a deadline, a
dependent piece starting from a copy of its parent's pre-training (issue 13)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


pieces = _load("table2_pieces")


def _piece(name, methods, minutes=5, after=None):
    p = {"name": name, "backbone": "lightgcn", "seed": 5, "methods": methods,
         "minutes": minutes, "selection": "honest"}
    return p if after is None else {**p, "after": after}


def test_dependent_piece_starts_from_its_parents_pretraining(tmp_path, monkeypatch, capsys):
    from graphpro_ext.graphpro.data import synthetic, write_snapshot_folder

    data = tmp_path / "amazon"
    write_snapshot_folder(synthetic(60, 40, num_snapshots=3, seed=3), data)
    runs = tmp_path / "runs"
    lst = tmp_path / "pieces.json"
    lst.write_text(json.dumps([_piece("a", "finetune"), _piece("b", "gpf", after="a"),
                               _piece("late", "dgcn", minutes=10**9)]))
    # only this test's trainings count (the machine may be busy with others)
    monkeypatch.setattr(pieces, "trainings_running", lambda: 0)
    rc = pieces.main([str(lst), "--until", "2999-01-01T00:00", "--runs", str(runs), "--data",
                      str(data), "--poll", "0.2"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "not started (would not end before 2999-01-01T00:00): late" in out
    assert not (runs / "logs" / "late.out").exists()
    cell = Path("honest") / "lightgcn-s5"
    for name, method in (("a", "finetune"), ("b", "gpf")):
        res = json.loads((runs / name / cell / "results.json").read_text())
        assert set(res["methods"]) == {method}
    log_b = (runs / "logs" / "b.out").read_text()
    assert log_b.startswith("# table2_pieces: started ") and " UTC at " in log_b.splitlines()[0]
    assert "seeded from" in log_b and "[pretrain-lightgcn] epoch" not in log_b
    assert "[pretrain-lightgcn] epoch" in (runs / "logs" / "a.out").read_text()
    # a second call starts nothing again: every piece has its log
    rc = pieces.main([str(lst), "--until", "2999-01-01T00:00", "--runs", str(runs), "--data",
                      str(data), "--poll", "0.2"])
    assert rc == 0 and "table2_pieces: started" not in capsys.readouterr().out


@pytest.mark.parametrize("content,message", [
    ("{}", "a JSON list of pieces expected"),
    ("[{\"name\": \"a\"}]", "'backbone' missing or of the wrong type"),
    (json.dumps([_piece("a", "finetune"), _piece("a", "gpf")]), "unique name"),
    (json.dumps([_piece("b", "gpf", after="a")]), "after 'a' is not an earlier piece"),
    (json.dumps([{**_piece("a", "gpf"), "minutes": 0}]), "minutes > 0"),
    ("[", "Expecting value"),
])
def test_bad_lists_exit_2(tmp_path, capsys, content, message):
    lst = tmp_path / "p.json"
    lst.write_text(content)
    assert pieces.main([str(lst), "--until", "2999-01-01T00:00"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_bad_flags_exit_2(tmp_path, capsys):
    lst = tmp_path / "p.json"
    lst.write_text("[]")
    assert pieces.main([str(lst), "--until", "tomorrow"]) == 2
    assert "--until tomorrow" in capsys.readouterr().err
    assert pieces.main([str(lst), "--until", "2999-01-01", "--slots", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err


def test_pieces_still_running_at_the_deadline_are_stopped(tmp_path, monkeypatch, capsys):
    """A piece longer than the session (its minutes: one stage) starts, and is stopped (SIGTERM,
    so it checkpoints) when --until comes; the call then ends."""
    import datetime as dt
    import time

    lst = tmp_path / "p.json"
    lst.write_text(json.dumps([_piece("long", "full", minutes=0.01)]))
    monkeypatch.setattr(pieces, "trainings_running", lambda: 0)
    monkeypatch.setattr(pieces, "command", lambda *a: [sys.executable, "-c",
                                                       "import time; time.sleep(120)"])
    until = (dt.datetime.utcnow() + dt.timedelta(seconds=4)).isoformat(timespec="seconds")
    t0 = time.monotonic()
    assert pieces.main([str(lst), "--until", until, "--runs", str(tmp_path / "runs"),
                        "--poll", "0.2"]) == 0
    assert time.monotonic() - t0 < 60
    out = capsys.readouterr().out
    assert "started long" in out and "reached; stopped long" in out
