"""Dialogue-act accuracy on the labelled ReDial seeker utterances (dev and held-out test).

    python benchmarks/dialogue_acts.py \
        --redial ../shared/data/redial/valid_data_processed.jsonl --out runs/dialogue_acts.json
    python benchmarks/dialogue_acts.py --redial ... --method mix   # rules + nearest exemplars
    python benchmarks/dialogue_acts.py --redial ... --method llm --splits dev   # LLM label scores
    python benchmarks/dialogue_acts.py --redial ... --splits dev,test1,test2    # per label round
    python benchmarks/dialogue_acts.py --redial ... --method head,rules,stack --splits train5
    python benchmarks/dialogue_acts.py --redial ... --method head,head=runs/head.toml,rules \
        --splits train6     # the bundled head against weights refitted by train_act_head.py
    python benchmarks/dialogue_acts.py --redial ... --splits train5+train6   # pooled rounds
    python benchmarks/dialogue_acts.py --redial ... --opendialkg ../shared/data/opendialkg \
        --method head,rules --splits odkg10   # OpenDialKG rounds (evaluation/opendialkg_acts.py)

Labels: evaluation/data/dialogue_acts.jsonl (keys + acts; the text is joined from --redial).
Splits by dialogue (`split_of`): rules and exemplars were written on train, chosen on dev;
test is held out. Prints accuracy, per-act recall, the confusion and latency per message, and
the hand-written synthetic product-style messages' accuracy separately (not ReDial text).
Methods (comma-separated: each is reported in the same run): head (the served path: the
learned head of prompts/dialogue_act_head.toml over the bundled MiniLM), head=FILE (the same
head with the weights of FILE, as written by train_act_head.py --out), rules (the rules
alone), stack (a head that also sees the rule's act, fitted here on label rounds 1-4),
emb (nearest exemplars only), mix (rules, unsure ones to the exemplars), llm (the default LLM
scores the eight act letters, prompts/dialogue_act_llm.txt). Each part's accuracy comes with a
95% bootstrap interval over its dialogues (2000 resamples, seed 0).
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import statistics
import time
from pathlib import Path

from chatbot.errors import ConfigError
from chatbot.understanding.acts import (
    ACTS,
    Act,
    ActClassifier,
    ExemplarActs,
    TurnContext,
    load_lexicon,
    normalize,
    slot_of,
)
from evaluation import opendialkg_acts
from evaluation.act_labels import load_labelled, load_synthetic, turn_context
from retrieval.errors import RetrievalError

LETTERS = "ABCDEFGH"  # prompts/dialogue_act_llm.txt lists the acts in ACTS order


STACK_ROUNDS = "train1,train2,dev,test1,test2,test3,test4"  # the labels before round 5
STACK_C = 0.3  # the stacked head's best C in grouped CV (benchmarks/train_act_head.py)


def build(method: str, redial: Path | None = None):
    lex = load_lexicon()
    if method == "rules":
        clf = ActClassifier(lex)
        return lex, clf.classify
    if method == "head" or method.startswith("head="):
        from chatbot.understanding.act_head import EMBEDDER, load_act_head
        from retrieval.embeddings import load_embedder

        embedder = load_embedder(EMBEDDER)
        if method == "head":
            return lex, ActClassifier(lex, embedder=embedder).classify
        weights = Path(method.removeprefix("head="))
        head = load_act_head(embedder, weights)
        try:  # a head file of older code would make the classifier fall back to the rules
            head.features("hi", TurnContext(), lex)
        except ConfigError as e:
            raise SystemExit(f"error: {weights}: {e}") from None
        return lex, ActClassifier(lex, head=head).classify
    if method == "stack":
        return lex, ActClassifier(lex, head=_stacked_head(lex, redial)).classify
    if method in ("emb", "mix"):
        from retrieval.embeddings import load_embedder

        clf = ActClassifier(lex, ExemplarActs(load_embedder(), lex), threshold=0.6)
        if method == "emb":
            clf.threshold = 2.0  # every message goes to the exemplars
        return lex, clf.classify
    if method == "llm":
        return lex, _llm_classifier(lex)
    raise SystemExit(
        f"error: unknown --method {method!r}: use head, head=FILE, rules, stack, emb, mix, llm"
    )


def _stacked_head(lex, redial):
    """The head over the embedding and the rule features, fitted on label rounds 1-4."""
    from benchmarks.train_act_head import act_rows, design, fit
    from chatbot.understanding.act_head import EMBEDDER, ActHead
    from retrieval.embeddings import load_embedder

    embedder = load_embedder(EMBEDDER)
    data = act_rows(redial, STACK_ROUNDS.split(","), lex)
    x = design(data.texts, data.contexts, lex, embedder, "rules")
    coef, intercept = fit(x, data.y, STACK_C)
    return ActHead(ACTS, tuple(map(tuple, coef)), tuple(intercept), embedder, "rules")


def bootstrap_ci(ok: list[bool], groups: list[str], reps: int = 2000, seed: int = 0):
    """95% interval of the mean of `ok`, resampling whole dialogues (turns of one dialogue
    are not independent)."""
    by: dict[str, list[bool]] = collections.defaultdict(list)
    for g, v in zip(groups, ok, strict=True):
        by[g].append(v)
    cells = [(sum(v), len(v)) for v in by.values()]
    if not cells:
        return None
    rng = random.Random(seed)
    means = []
    for _ in range(reps):
        draw = [cells[rng.randrange(len(cells))] for _ in cells]
        means.append(sum(c for c, _ in draw) / sum(n for _, n in draw))
    means.sort()
    return [round(means[int(0.025 * reps)], 3), round(means[int(0.975 * reps) - 1], 3)]


def _llm_classifier(lex):
    import os
    import tempfile

    from langchain_core.prompts import PromptTemplate

    import prompts
    from inference.llm import load_llm
    from inference.settings import LLMSettings

    template = PromptTemplate.from_template(
        (Path(prompts.__file__).parent / "dialogue_act_llm.txt").read_text(encoding="utf-8")
    )
    cache = Path(os.environ.get("RECOCHAT_MODEL_CACHE", tempfile.mkdtemp(prefix="acts-llm-")))
    llm = load_llm(LLMSettings(), cache)
    labels = list(LETTERS)

    def classify(text: str, ctx: TurnContext, previous: str = "") -> Act:
        prompt = llm.chat_prompt(template.format(previous=previous[-300:], message=text[:500]))
        logprobs = llm.label_logprobs(prompt, labels)
        best = max(range(len(labels)), key=logprobs.__getitem__)
        name = ACTS[best]
        slot = slot_of(normalize(text), lex) if name == "item_question" else None
        return Act(name, slot, round(2.718281828 ** logprobs[best], 3))

    classify.wants_previous = True  # type: ignore[attr-defined]
    return classify


def evaluate(rows, lex, classify) -> dict:
    wants_previous = getattr(classify, "wants_previous", False)
    confusion: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    slot_ok = slot_n = 0
    latencies = collections.defaultdict(list)
    ok, ok_merged, wrong = [], [], []
    for u in rows:
        ctx = turn_context(u, lex)
        start = time.perf_counter()
        act = classify(u.text, ctx, u.previous) if wants_previous else classify(u.text, ctx)
        latencies[u.act].append((time.perf_counter() - start) * 1000)
        confusion[u.act][act.name] += 1
        ok.append(act.name == u.act)
        ok_merged.append(ok[-1] or {act.name, u.act} == {"refine", "feedback"})
        if not ok[-1]:
            wrong.append(f"{u.dialog_id}:{u.utterance} {u.act} -> {act.name}")
        if u.act == "item_question" and act.name == "item_question":
            slot_n += 1
            slot_ok += act.slot == u.slot
    n = len(rows)
    correct = sum(confusion[a][a] for a in confusion)
    # Diagnostic only: refine and feedback lead to the same system step (update the state,
    # recommend again), and most errors sit on their border.
    merged = correct + confusion["refine"]["feedback"] + confusion["feedback"]["refine"]
    return {
        "n": n,
        "accuracy": round(correct / n, 3) if n else None,
        "accuracy_refine_feedback_merged": round(merged / n, 3) if n else None,
        "ci95": bootstrap_ci(ok, [u.dialog_id for u in rows]),
        "ci95_merged": bootstrap_ci(ok_merged, [u.dialog_id for u in rows]),
        "dialogues": len({u.dialog_id for u in rows}),
        "keys": [f"{u.dialog_id}:{u.utterance}" for u in rows],  # every row, in order
        "wrong": wrong,  # keys and acts only: the text stays in ../shared
        "recall": {a: round(c[a] / sum(c.values()), 3) for a, c in sorted(confusion.items())},
        "support": {a: sum(c.values()) for a, c in sorted(confusion.items())},
        "slot_accuracy": round(slot_ok / slot_n, 3) if slot_n else None,
        "slot_n": slot_n,
        "confusion": {a: dict(c) for a, c in sorted(confusion.items())},
        "latency_ms_p50": {a: round(statistics.median(v), 3) for a, v in sorted(latencies.items())},
    }


def synthetic(lex, classify) -> dict:
    """The hand-written product-style messages (evaluation/data/dialogue_acts_synthetic.jsonl)."""
    wants_previous = getattr(classify, "wants_previous", False)
    ok = slot_ok = n = 0
    wrong = []
    for u in load_synthetic():
        got = classify(u.text, u.context, "") if wants_previous else classify(u.text, u.context)
        n += 1
        ok += got.name == u.act
        slot_ok += got.name == u.act and got.slot == u.slot
        if got.name != u.act or got.slot != u.slot:
            wrong.append(
                {"text": u.text, "act": u.act, "slot": u.slot, "got": [got.name, got.slot]}
            )
    return {"n": n, "accuracy": round(ok / n, 3), "act_and_slot": round(slot_ok / n, 3),
            "wrong": wrong}  # fmt: skip


def _part(rows, split: str):
    """The rows of one part: a split ("test"), or one label round of it ("train6")."""
    name = split.rstrip("0123456789")
    if name not in ("train", "dev", "test", "odkg"):
        raise SystemExit(
            f"error: unknown part {split!r} in --splits: use e.g. dev, test3, train6, odkg10"
        )
    if name == "odkg" and not any(u.split == "odkg" for u in rows):
        raise SystemExit(f"error: part {split!r} needs --opendialkg ../shared/data/opendialkg")
    part = [u for u in rows if u.split == name]
    return part if name == split else [u for u in part if u.round == int(split[len(name) :])]


def run_method(method: str, rows, args) -> dict:
    lex, classify = build(method, args.redial)
    report: dict = {"method": method, "splits": {}}
    for split in args.splits.split(","):
        part = [u for one in split.split("+") for u in _part(rows, one)]
        result = evaluate(part, lex, classify)
        result["natural"] = evaluate([u for u in part if u.sample == "natural"], lex, classify)[
            "accuracy"
        ]
        report["splits"][split] = result
        print(
            f"{split}: accuracy {result['accuracy']} {result['ci95']} (n={result['n']}, "
            f"{result['dialogues']} dialogues; natural sample {result['natural']}; "
            f"refine=feedback {result['accuracy_refine_feedback_merged']} "
            f"{result['ci95_merged']}), slot accuracy {result['slot_accuracy']} "
            f"(n={result['slot_n']})"
        )
        print(f"  latency p50 ms per act: {result['latency_ms_p50']}")
        for act in ACTS:
            if act in result["confusion"]:
                row = ", ".join(f"{k} {v}" for k, v in result["confusion"][act].items())
                print(f"  {act:>13}: {row}")
    report["synthetic"] = synthetic(lex, classify)
    syn = report["synthetic"]
    print(f"synthetic (hand-written, not ReDial): accuracy {syn['accuracy']}, act and slot "
          f"{syn['act_and_slot']} (n={syn['n']})")  # fmt: skip
    for w in syn["wrong"]:
        print(f"  {w['text']!r}: {w['act']}/{w['slot']} -> {w['got'][0]}/{w['got'][1]}")
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--redial", type=Path, required=True, help="valid_data_processed.jsonl")
    ap.add_argument("--labels", type=Path, default=None, help="default: the bundled label file")
    ap.add_argument(
        "--opendialkg",
        type=Path,
        default=None,
        help="the OpenDialKG folder: adds its labelled rounds (parts odkg10, ...)",
    )
    ap.add_argument(
        "--method",
        default="head",
        help="comma-separated: head, head=FILE (weights from train_act_head.py --out FILE), "
        "rules, stack, emb, mix, llm",
    )
    ap.add_argument(
        "--splits",
        default="dev,test",
        help="comma-separated parts: train, dev, test, odkg (all rounds), test1 .. test4, "
        "train5, odkg10 (one round); join parts with + to pool them (train5+train6)",
    )
    ap.add_argument("--out", type=Path, default=Path("runs/dialogue_acts.json"))
    args = ap.parse_args(argv)

    from recochat.env import set_env_defaults

    set_env_defaults()
    try:
        rows = load_labelled(args.redial, args.labels)
        if args.opendialkg:
            rows += opendialkg_acts.load_labelled(args.opendialkg)
    except RetrievalError as e:
        raise SystemExit(f"error: {e}") from None
    report: dict = {"methods": {}}
    for method in args.method.split(","):
        print(f"== method {method}")
        report["methods"][method] = run_method(method, rows, args)
    if len(report["methods"]) > 1:
        print("summary (accuracy [95% CI] / refine=feedback [95% CI]):")
        for method, rep in report["methods"].items():
            for split, r in rep["splits"].items():
                print(
                    f"  {method:>6} {split:>6} n={r['n']}: {r['accuracy']} {r['ci95']} / "
                    f"{r['accuracy_refine_feedback_merged']} {r['ci95_merged']}"
                )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
