"""results.json, results.md (tables) and recall_per_stage.png in the output folder."""

from __future__ import annotations

import json
import os

from .runtime import write_text_atomic

__all__ = ["write_reports", "write_json_atomic", "markdown", "collect_checkpoints"]


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.4f}"


def markdown(results: dict, k: int = 20) -> str:
    """The per-stage tables of every method (Recall@k, NDCG@k), plus the protocol notes."""
    methods = results.get("methods", {})
    proto = results.get("protocol", {})
    lines = [f"# Results: {results.get('dataset', '?')}", ""]
    if results.get("partial"):
        lines += ["**Partial**: collected from the checkpoints of a run that has not finished; "
                  "methods with missing stages are marked.", ""]
    lines.append(f"Model selection: `--select-on {proto.get('select_on')}`"
                 + (" (best epoch chosen on the test snapshot, as the reference code does)"
                    if proto.get("select_on") == "test" else
                    f" (best epoch chosen on a held-out {proto.get('val_frac')} of each "
                    "fine-tuning snapshot)")
                 + "; test pairs already in the history are "
                 + ("dropped" if proto.get("drop_seen_test_pairs") else "kept (protocol default)")
                 + f"; backend: {results.get('backend')}.")
    lines.append("")
    if not methods:
        return "\n".join(lines + ["(no stage results)"]) + "\n"
    n = max(len(m["stages"]) for m in methods.values())
    for metric in (f"recall@{k}", f"ndcg@{k}"):
        lines += [f"## {metric.capitalize()}", "",
                  "| method | " + " | ".join(f"S{i}" for i in range(1, n + 1)) + " | avg |",
                  "|---" * (n + 2) + "|"]
        for name, m in methods.items():
            vals = [_fmt(s[metric]) for s in m["stages"]] + ["–"] * (n - len(m["stages"]))
            avg = _fmt(m["average"][metric])
            lines.append(f"| {name} | " + " | ".join(vals) + f" | **{avg}** |")
        lines.append("")
    lines += [f"## Recall@{k}: users fine-tuned at the stage vs. cold users", "",
              "| method | " + " | ".join(f"S{i} tuned / cold" for i in range(1, n + 1)) + " |",
              "|---" * (n + 1) + "|"]
    for name, m in methods.items():
        cells = [f"{_fmt((s.get('tuned') or {}).get(f'recall@{k}'))} / "
                 f"{_fmt((s.get('cold') or {}).get(f'recall@{k}'))}" for s in m["stages"]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    share = results.get("seen_test_share", [])
    if share:
        lines += ["Share of test pairs already in the user's history (never hittable under the "
                  "masked protocol): " + ", ".join(f"S{i + 1} {s:.1%}" for i, s in
                                                    enumerate(share)), ""]
    wall = results.get("wall_s", {})
    if wall:
        lines += ["Wall time (s): " + ", ".join(f"{k_} {v:.1f}" for k_, v in wall.items()), ""]
    pre = results.get("pretrain", {})
    for kind, s in pre.items():
        lines.append(f"Pre-training {kind}: {s['epochs_run']} epochs (best {s['best_epoch']}), "
                     f"{s['epoch_train_s']:.2f} s per training epoch.")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: str, k: int = 20) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, m in results.get("methods", {}).items():
        xs = [s["stage"] for s in m["stages"]]
        ax.plot(xs, [s[f"recall@{k}"] for s in m["stages"]], marker="o", label=name)
    ax.set_xlabel("stage")
    ax.set_ylabel(f"Recall@{k}")
    ax.set_title(f"{results.get('dataset', '')}: Recall@{k} per stage")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_json_atomic(obj, path: str) -> None:
    write_text_atomic(json.dumps(obj, indent=1, default=float), path)


def write_reports(results: dict, out: str, k: int = 20) -> None:
    write_json_atomic(results, os.path.join(out, "results.json"))
    write_text_atomic(markdown(results, k), os.path.join(out, "results.md"))
    if results.get("methods"):
        plot(results, os.path.join(out, "recall_per_stage.png"), k)


def collect_checkpoints(out: str, k: int = 20) -> dict:
    """Results of a (possibly still running or interrupted) run, rebuilt from OUT/ckpt: every
    finished pre-training and stage; a method with missing stages gets ``complete: false`` and
    no average."""
    import numpy as np

    from .checkpoint import CheckpointLayout, load_checkpoint
    from .errors import RunDirError

    layout = CheckpointLayout(out)
    try:
        cfg = layout.read_config()
    except (OSError, ValueError) as e:
        raise RunDirError(f"{layout.config}: unreadable ({e})") from None
    if cfg is None:
        raise RunDirError(f"{layout.config}: no checkpoints of a run here")
    res = {"dataset": cfg.get("dataset"), "partial": True, "hyperparameters": cfg,
           "protocol": {"select_on": cfg.get("select_on"), "val_frac": cfg.get("val_frac"),
                        "drop_seen_test_pairs": cfg.get("drop_seen_test_pairs")},
           "backend": "see log.txt", "pretrain": {}, "methods": {}}
    for kind, p in layout.finished_pretrainings().items():
        res["pretrain"][kind] = load_checkpoint(p, f"{kind} pre-training", "cpu")["summary"]
    shares, found = {}, {}
    for m in cfg.get("methods", []):
        stages = [load_checkpoint(p, f"{m} {os.path.basename(p)[:-3]}")
                  for p in layout.finished_stages(m)]
        stages = [s for s in stages if s.get("tested", True)]  # untested: --no-final-test, update
        if stages:
            found[m] = sorted(stages, key=lambda s: s["stage"])
    # the stage count is not in config.json: take the largest stage any method reached
    total = max((s["stage"] for st in found.values() for s in st), default=0)
    for m, stages in found.items():
        for s in stages:
            shares[s["stage"]] = s.get("seen_share")
        done = [s["stage"] for s in stages] == list(range(1, total + 1))
        entry = {"stages": stages, "wall_s": float(sum(s["wall_s"] for s in stages)),
                 "average": {f"recall@{k}": None, f"ndcg@{k}": None},
                 "stages_done": len(stages), "complete": done,
                 "loss": stages[0].get("loss")}  # as `graphpro run` records it
        if done:  # an average over some stages only would not compare with the others
            entry["average"] = {
                f"recall@{k}": float(np.mean([s[f"recall@{k}"] for s in stages])),
                f"ndcg@{k}": float(np.mean([s[f"ndcg@{k}"] for s in stages]))}
        res["methods"][m if done else f"{m} ({len(stages)}/{total} stages)"] = entry
    res["seen_test_share"] = [shares[n] for n in sorted(shares)]
    res["wall_s"] = {f"pretrain-{kk}": v["wall_s"] for kk, v in res["pretrain"].items()}
    res["wall_s"].update({m: v["wall_s"] for m, v in res["methods"].items()})
    return res
