"""The `recochat bench` report: per-stage percentiles, targets, the table and the latency plot.

`summarize` turns the replayed `TurnSample`s of `evaluation.bench.Bench` (anything with
`samples`, `catalog_ids()` and a `settings`) into the bench.json dict.
"""

from __future__ import annotations

import resource
from collections.abc import Sequence
from pathlib import Path
from typing import Any

STAGES = [  # (report name, source key)
    ("state", "state"),
    ("embedding", "embedding"),
    ("chroma_query", "chroma_query"),
    ("retrieval", "retrieval"),
    ("rerank_prefill", "rerank"),
    ("first_rec", "first_rec"),
    ("reasons", "reasons"),
    ("total", "total"),
]
FIRST_TOKEN_KEYS = ("first_reply_token", "first_token")  # the streamed reply's first token
TARGETS = {  # CPU targets for the default model on the ReDial catalog
    "first_rec_p50_ms": 1000.0,
    "first_reply_token_p50_ms": 1000.0,
    "turn_p50_ms": 2500.0,
    "ratio_turn_p50": 0.6,
    "retrieval_100k_p50_ms": 15.0,
    "index_items_per_s": 300.0,
}


def _pct(values: Sequence[float]) -> dict[str, float]:
    import numpy as np

    if not values:
        return {"p50": float("nan"), "p95": float("nan")}
    arr = np.asarray(values, dtype=float)
    return {
        "p50": round(float(np.percentile(arr, 50)), 1),
        "p95": round(float(np.percentile(arr, 95)), 1),
    }


def _first_token(sample: Any) -> float | None:
    return next((sample.ms[k] for k in FIRST_TOKEN_KEYS if k in sample.ms), None)


def summarize(bench: Any, extra: dict[str, Any]) -> dict[str, Any]:
    s = bench.samples
    llm = bench.rec.llm
    turn = _pct([x.ms["total"] for x in s])
    first = _pct([x.ms.get("first_rec", x.ms["total"]) for x in s])
    naive = _pct([x.naive_ms for x in s if x.naive_ms])  # none with --no-naive
    tokens = sum(x.generated_tokens for x in s)
    decode = sum(x.decode_s for x in s)
    naive_tokens = sum(x.naive_tokens for x in s)
    naive_decode = sum(x.naive_decode_s for x in s)
    named = sum(x.naive_titles for x in s)
    recs = sum(x.n_recs for x in s)
    stats = llm.stats
    report = {
        "catalog": extra.get("catalog"),
        "items": extra.get("items"),
        "turns": len(s),
        "device": str(llm.device),
        "backend": bench.settings.llm.backend,
        "dtype": str(
            getattr(getattr(llm, "model", None), "dtype", getattr(llm, "dtype", ""))
        ).removeprefix("torch."),
        "threads": extra.get("threads"),
        "load_avg": extra.get("load_avg"),
        "turn_ms": turn,
        "first_rec_ms": first,
        "first_reply_token_ms": _pct([v for v in map(_first_token, s) if v is not None]),
        "stages_ms": {name: _pct([x.ms.get(key, 0.0) for x in s]) for name, key in STAGES},
        "naive_turn_ms": naive,
        "ratio_turn_p50": round(turn["p50"] / naive["p50"], 3) if naive["p50"] > 0 else None,
        "ratio_first_rec_p50": round(first["p50"] / naive["p50"], 3) if naive["p50"] > 0 else None,
        # Process CPU time (all threads): the work done, much less sensitive to machine load.
        "turn_cpu_ms": _pct([x.ms["cpu"] for x in s]),
        "naive_turn_cpu_ms": _pct([x.naive_cpu_ms for x in s if x.naive_ms]),
        "tokens_per_s": round(tokens / decode, 1) if decode else None,
        # all generation of the run (reasons + the naive chain's free text): decode speed
        "decode_tokens_per_s": round((tokens + naive_tokens) / (decode + naive_decode), 1)
        if decode + naive_decode
        else None,
        "naive_tokens_per_s": round(naive_tokens / naive_decode, 1) if naive_decode else None,
        "prefill_tokens_per_s": round(stats.prompt_tokens / stats.prefill_s, 1)
        if stats.prefill_s
        else None,
        "prefix_cached_share": round(
            stats.cached_tokens / max(1, stats.cached_tokens + stats.prompt_tokens), 3
        ),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "out_of_catalog_rate": {
            "ours": round(sum(x.out_of_catalog for x in s) / recs, 3) if recs else 0.0,
            "naive": round(sum(x.naive_missing for x in s) / named, 3) if named else None,
        },
        "naive_titles_named": named,
        "naive_examples": [  # to audit the out-of-catalog count by eye
            {
                "message": x.message,
                "answer": x.naive_text,
                "titles": x.naive_titles,
                "missing": x.naive_missing,
            }
            for x in s[:3]
        ],
        "catalog_index_items_per_s": extra.get("catalog_index_items_per_s"),
        "retrieval_ms_at": extra.get("retrieval_ms_at", {}),
        "index_items_per_s_at": extra.get("index_items_per_s_at", {}),
        "scaling": extra.get("scaling", []),
    }
    report["targets"] = _targets(report)
    return report


def _targets(r: dict[str, Any]) -> dict[str, Any]:
    values = {
        "first_rec_p50_ms": r["first_rec_ms"]["p50"],
        "first_reply_token_p50_ms": r["first_reply_token_ms"]["p50"],
        "turn_p50_ms": r["turn_ms"]["p50"],
        "ratio_turn_p50": r["ratio_turn_p50"],
        "retrieval_100k_p50_ms": r["retrieval_ms_at"].get("100000"),
        "index_items_per_s": min(r["index_items_per_s_at"].values(), default=None)
        if r["index_items_per_s_at"]
        else None,
    }
    out = {}
    for key, target in TARGETS.items():
        value = values[key]
        higher_is_better = key == "index_items_per_s"
        if value is None or value != value:  # not measured (None or NaN)
            ok = None
        else:
            ok = value >= target if higher_is_better else value <= target
        out[key] = {"target": target, "value": value, "ok": ok}
    return out


def format_table(r: dict[str, Any]) -> str:
    load = r.get("load_avg") or ["?", "?"]
    lines = [
        f"recochat bench: {r['catalog']} ({r['items']} items), {r['turns']} turns, "
        f"{r['device']} {r['dtype']}, {r['threads']} threads, load avg {load[0]} -> {load[1]}",
        f"{'stage':<28}{'p50 ms':>10}{'p95 ms':>10}",
    ]
    for name, pct in r["stages_ms"].items():
        lines.append(f"{name:<28}{pct['p50']:>10.1f}{pct['p95']:>10.1f}")
    n = r["naive_turn_ms"]
    lines += [
        f"{'naive RAG turn (128 tok)':<28}{n['p50']:>10.1f}{n['p95']:>10.1f}",
        f"ours/naive p50: whole turn {r['ratio_turn_p50']}, first rec {r['ratio_first_rec_p50']}",
        f"CPU time per turn p50 (all threads): ours {r['turn_cpu_ms']['p50']} ms, naive "
        f"{r['naive_turn_cpu_ms']['p50']} ms",
        f"out-of-catalog rate: ours {r['out_of_catalog_rate']['ours']}, naive "
        f"{r['out_of_catalog_rate']['naive']} (of {r['naive_titles_named']} titles named)",
        f"tokens/s: reasons {r['tokens_per_s']}, naive {r['naive_tokens_per_s']}; prefill "
        f"{r['prefill_tokens_per_s']} tok/s, {r['prefix_cached_share']:.0%} of prompt tokens "
        "from the prefix cache",
        f"peak RSS {r['peak_rss_mb']} MB",
    ]
    for p in r["scaling"]:
        lines.append(
            f"scaling {p['size']:>7} items: query p50 {p['query_p50_ms']} ms "
            f"(filtered {p['filtered_query_p50_ms']} ms), index {p['items_per_s']} items/s"
        )
    for key, t in r["targets"].items():
        mark = {True: "ok", False: "MISSED", None: "not measured"}[t["ok"]]
        lines.append(f"target {key} {t['target']}: {t['value']} {mark}")
    return "\n".join(lines)


def plot_latency(r: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [*r["stages_ms"], "naive_turn"]
    p50 = [r["stages_ms"][k]["p50"] for k in r["stages_ms"]] + [r["naive_turn_ms"]["p50"]]
    p95 = [r["stages_ms"][k]["p95"] for k in r["stages_ms"]] + [r["naive_turn_ms"]["p95"]]
    fig, ax = plt.subplots(figsize=(9, 4))
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], p50, width=0.4, label="p50")
    ax.bar([x + 0.2 for x in xs], p95, width=0.4, label="p95")
    ax.set_xticks(list(xs), names, rotation=30, ha="right")
    ax.set(ylabel="ms", title=f"turn stages, {r['catalog']} ({r['device']} {r['dtype']})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# -- CLI ------------------------------------------------------------------------------------
