"""Write an eval run: report.json, report.md, recall.png, latency.png and turns.jsonl.

report.json (the contract `recochat eval` was specified with):

    {"systems": {"<system>": {"novel": {"recall@1", "recall@10", "recall@50", "ndcg@10", "mrr@10"},
                              "raw": {...same...},
                              "out_of_catalog_rate", "reason_unsupported_rate", "coverage",
                              "long_tail_share", "intra_list_diversity",
                              "latency_ms": {"p50", "p95"}, "n_turns", "n_gold",
                              # the system that writes replies (full), unless --no-replies:
                              "conversation": {"reply_survival_rate", "fallback_rate",
                                  "grounded_title_rate", "titles_named", "ungrounded_titles",
                                  "distinct2", "bleu2", "perplexity", "n_perplexity",
                                  "n_replies"}}},
     "catalog_items": int, "dialogues": {...counts, malformed lines...}, "config": {...}}

Rates that a system cannot have (reasons of a system that writes none, a long tail without any
popularity signal) are null.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evaluation.protocol import EvalTurn
from evaluation.runner import LIST_K, SystemRun, counters, stage_medians

META_KEYS = ("systems", "catalog_items", "dialogues", "config")
RANKING_KEYS = ("recall@1", "recall@10", "recall@50", "ndcg@10", "mrr@10")
SYSTEM_KEYS = (
    "novel",
    "raw",
    "out_of_catalog_rate",
    "reason_unsupported_rate",
    "coverage",
    "long_tail_share",
    "intra_list_diversity",
    "latency_ms",
    "n_turns",
    "n_gold",
)

CONVERSATION_KEYS = (  # report["systems"][name]["conversation"], for the system writing replies
    "n_replies",
    "reply_survival_rate",
    "fallback_rate",
    "grounded_title_rate",
    "titles_named",
    "ungrounded_titles",
    "distinct2",
    "bleu2",
    "perplexity",
    "n_perplexity",
)


def system_names(report: Mapping[str, Any]) -> list[str]:
    return list(report["systems"])


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown(
    report: Mapping[str, Any],
    run_counters: Mapping[str, Mapping[str, int]],
    stages: Mapping[str, Mapping[str, float]] | None = None,
) -> str:
    d = report["dialogues"]
    lines = [
        "# recochat eval",
        "",
        f"{d['turns']} recommender turns from {d['dialogues']} dialogues "
        f"(`{d['path']}`, split {d['split']}); catalog of {report['catalog_items']} items. "
        f"Novel protocol: {d['novel_turns']} turns, {d['novel_gold']} gold items.",
        "",
        "| system | R@1 | R@10 | R@50 | NDCG@10 | MRR@10 | raw R@10 | raw R@50 | OOC | "
        "unsupported | coverage | long tail | diversity | p50 ms | p95 ms |",
        "|---|" + "---:|" * 14,
    ]
    for name in system_names(report):
        s = report["systems"][name]
        n, r = s["novel"], s["raw"]
        cells = [
            n["recall@1"], n["recall@10"], n["recall@50"], n["ndcg@10"], n["mrr@10"],
            r["recall@10"], r["recall@50"], s["out_of_catalog_rate"],
            s["reason_unsupported_rate"], s["coverage"], s["long_tail_share"],
            s["intra_list_diversity"],
        ]  # fmt: skip
        lat = [_fmt(s["latency_ms"]["p50"], 0), _fmt(s["latency_ms"]["p95"], 0)]
        lines.append(f"| {name} | " + " | ".join([*map(_fmt, cells), *lat]) + " |")
    lines += [
        "",
        "R@k, NDCG@10 and MRR@10 use the novel protocol unless marked raw. OOC: recommended "
        "titles not in the catalog. Coverage, long tail and diversity are measured on each "
        f"turn's top {LIST_K}.",
    ]
    talks = {k: v["conversation"] for k, v in report["systems"].items() if "conversation" in v}
    if talks:
        lines += [
            "",
            "| system | replies | survive checks | fallback | grounded titles | ungrounded served "
            "| Distinct-2 | BLEU-2 | perplexity of resp |",
            "|---|" + "---:|" * 8,
        ]
        for name, c in talks.items():
            cells = [
                c["n_replies"], c["reply_survival_rate"], c["fallback_rate"],
                c["grounded_title_rate"], c["ungrounded_titles"], c["distinct2"], c["bleu2"],
                c["perplexity"],
            ]  # fmt: skip
            lines.append(f"| {name} | " + " | ".join(map(_fmt, cells)) + " |")
    if d["malformed_lines"]:
        lines.append(f"\n{d['malformed_lines']} malformed dialogue line(s) were skipped.")
    if d["gold_not_in_catalog"]:
        lines.append(
            f"\n{d['gold_not_in_catalog']} gold title(s) are not in the catalog "
            "(counted as misses)."
        )
    noted = {k: v for k, v in run_counters.items() if any(v.values())}
    if noted:
        lines.append(
            "\nCounters, summed over turns (rerank_fallback: turns; reason_fallback: template "
            "reasons; reason_link: template reasons naming a link to the user's items):"
        )
        for name, c in noted.items():
            lines.append(f"- {name}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    timed = {k: v for k, v in (stages or {}).items() if v}
    if timed:
        lines.append("\nMedian ms per stage (scored pass):")
        for name, st in timed.items():
            lines.append(f"- {name}: " + ", ".join(f"{k} {v:.0f}" for k, v in st.items()))
    return "\n".join(lines) + "\n"


def plot_recall(report: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = system_names(report)
    ks = ("recall@1", "recall@10", "recall@50")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    width = 0.8 / len(ks)
    for ax, protocol in zip(axes, ("novel", "raw"), strict=True):
        for j, key in enumerate(ks):
            xs = [i + (j - (len(ks) - 1) / 2) * width for i in range(len(names))]
            ax.bar(xs, [report["systems"][n][protocol][key] for n in names], width, label=key)
        ax.set_xticks(range(len(names)), names)
        ax.set_title(f"{protocol} protocol")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("recall (per gold item)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_latency(latencies: Mapping[str, Sequence[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(latencies)
    fig, ax = plt.subplots(figsize=(6, 4))
    data = [[max(v, 1e-3) for v in latencies[n]] or [1e-3] for n in names]
    ax.boxplot(data, tick_labels=names, showfliers=True)
    ax.set_yscale("log")
    ax.set_ylabel("latency per turn (ms, log scale)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_report(
    out_dir: str | os.PathLike[str],
    report: Mapping[str, Any],
    runs: Sequence[SystemRun],
    turns: Sequence[EvalTurn],
) -> list[Path]:
    """Write every artifact of a run into `out_dir`; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / n for n in ("report.json", "report.md", "recall.png", "latency.png")]
    _atomic_write(paths[0], json.dumps(report, indent=2) + "\n")
    md = markdown(
        report, {r.name: counters(r) for r in runs}, {r.name: stage_medians(r) for r in runs}
    )
    _atomic_write(paths[1], md)
    plot_recall(report, paths[2])
    plot_latency({r.name: [x.out.latency_ms for x in r.records] for r in runs}, paths[3])
    rows = []
    for run in runs:
        for t, rec in zip(turns, run.records, strict=True):
            row = {
                "system": run.name,
                "dialog_id": t.turn.dialog_id,
                "turn_id": t.turn.turn_id,
                "gold": list(t.gold),
                "mentioned": sorted(t.mentioned),
                "top": t.ranking_for("novel", rec.ranked["novel"], LIST_K),
                "latency_ms": round(rec.out.latency_ms, 1),
            }
            if rec.out.reasons:
                row["reasons"] = rec.out.reasons
                row["unsupported_reasons"] = rec.unsupported_reasons
            if rec.out.raw_text:
                row["llm_output"] = rec.out.raw_text
            if rec.out.counters:
                row["counters"] = rec.out.counters
            rows.append(json.dumps(row, ensure_ascii=False))
    turns_path = out / "turns.jsonl"
    _atomic_write(turns_path, "\n".join(rows) + ("\n" if rows else ""))
    return [*paths, turns_path]
