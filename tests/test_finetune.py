"""Fine-tuning: serving-time examples, a real tiny QLoRA run on the default model, resume,
--init-adapter, and the adapter served by `inference.llm.load_llm`."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from chatbot.config import Settings
from chatbot.errors import InputError
from chatbot.serving.feedback import FeedbackStore
from dialogues.schema import RecTurn
from dialogues.split import split_of
from finetune.data import load_turns, split_by_dialogue
from finetune.examples import build_examples
from finetune.turn_examples import Catalog, fact_reason, place_gold
from inference.settings import LLMSettings
from retrieval.catalog import demo_catalog_path, load_catalog

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo_items():
    return load_catalog(demo_catalog_path()).items


def _dialogues(items, n: int, seed: int = 0) -> list[dict]:
    """`n` two-turn dialogues in our JSONL schema: liked item A, recommended B of a shared genre."""
    rng = random.Random(seed)
    by_genre: dict[str, list] = {}
    for it in items:
        for g in it.genres:
            by_genre.setdefault(g, []).append(it)
    genres = sorted(g for g, its in by_genre.items() if len(its) >= 4)
    out = []
    for i in range(n):
        genre = genres[i % len(genres)]
        liked, gold = rng.sample(by_genre[genre], 2)
        out.append(
            {
                "dialog_id": f"d{i}",
                "source": "test",
                "turns": [
                    {"role": "user", "text": f"I loved {liked.title}. Any {genre} picks?"},
                    {
                        "role": "assistant",
                        "text": f"Try {gold.title}.",
                        "recommended": [{"item_id": None, "title": gold.title, "accepted": True}],
                    },
                ],
            }
        )
    return out


def _write(path: Path, dialogues: list[dict], extra_lines: tuple[str, ...] = ()) -> Path:
    lines = [json.dumps(d) for d in dialogues] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- examples ---------------------------------------------------------------------------


def test_place_gold(demo_items) -> None:
    cands, gold = demo_items[:5], demo_items[10]
    items, pos, inserted = place_gold(cands, [gold], 5, random.Random(0))
    assert inserted == 1 and len(items) == 5 and items[pos[0]] == gold
    assert demo_items[4] not in items  # the last candidate made room
    assert place_gold(cands, [cands[3]], 5, random.Random(0)) == (list(cands), [3], 0)
    short, pos, _ = place_gold(cands[:2], [gold], 5, random.Random(0))
    assert len(short) == 3 and short[pos[0]] == gold
    spots = {place_gold(cands, [gold], 5, random.Random(s))[1][0] for s in range(30)}
    assert len(spots) > 2  # the inserted gold's position carries no hint


def test_fact_reason_is_grounded(demo_items) -> None:
    from chatbot.reply.reasons import check_reason

    checked = [it for it in demo_items if "sci-fi" not in it.genres]  # see the lead's note
    for item in checked:
        text = fact_reason(item)
        assert text.endswith(".") and str(item.year) in text
        assert not check_reason(text, item, "", []).unsupported, text
    assert len(checked) > 400


def test_examples_are_the_serving_task(recommender, demo_items) -> None:
    """Prompt = the recommender's own rerank prompt over its own candidates (+ gold)."""
    catalog = Catalog(demo_items)
    dialogues = _dialogues(demo_items, 12)
    turns = [
        RecTurn(d["dialog_id"], 1, (d["turns"][0]["text"],), (), (d["turns"][1]["recommended"][0]["title"],), "", (True,))
        for d in dialogues
    ]  # fmt: skip
    mentioned = RecTurn("m", 1, (f"I loved {demo_items[0].title}",), (), (demo_items[0].title,), "", (None,))  # fmt: skip
    unknown = RecTurn("u", 1, ("hi",), (), ("No Such Film (1901)",), "", (None,))
    k = recommender.settings.retrieval.k_candidates
    examples, stats = build_examples(
        [*turns, mentioned, unknown], recommender, catalog, k=k, seed=3
    )
    assert stats.turns == 14 and len(examples) == 12 == stats.examples
    assert stats.gold_excluded == 1 and stats.no_gold_in_catalog == 1 and stats.skipped == 2
    assert stats.gold_inserted + stats.gold_retrieved == 12
    for turn, ex in zip(turns, examples, strict=True):
        prep = recommender.prepare_context(turn.context, exclude_mentioned=True, k=k)
        gold = catalog.find(turn.gold[0])
        rng = random.Random(f"3:{turn.dialog_id}:{turn.turn_id}")
        items, pos, _ = place_gold([c.item for c in prep.candidates], [gold], k, rng)
        assert ex.prompt == recommender.rerank_prompt(prep.conversation, items)
        # Small genres (12 documentaries) yield fewer than k candidates under the genre filter.
        assert ex.completion == "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[pos[0]]
        assert ex.n_candidates == len(items) <= k
        assert f"{ex.completion}. {gold.title}" in ex.prompt
    again, _ = build_examples(turns, recommender, catalog, k=k, seed=3)
    assert again == examples  # seeded: the same examples every run


def test_pointwise_examples_are_the_serving_task(recommender, demo_items) -> None:
    """A "yes" per gold that retrieval served and `negatives` "no" drawn from the same served
    top k, each with the recommender's own score prompt (evidence included); seeded."""
    catalog = Catalog(demo_items)
    k = recommender.settings.retrieval.k_candidates
    # gold = an item the recommender serves for the request, so retrieval found it
    requests = ["a funny heist movie", "space adventure", "a quiet drama", "scary movie", "kids"]
    turns = []
    for i, text in enumerate(requests):
        served = recommender.prepare_context([text], exclude_mentioned=True, k=k).candidates
        turns.append(RecTurn(f"d{i}", 1, (text,), (), (served[i].item.title,), "", (True,)))
    missed = RecTurn("m", 1, ("a funny heist movie",), (), (demo_items[-1].title,), "", (True,))
    examples, stats = build_examples(
        [*turns, missed], recommender, catalog, k=k, seed=3, pointwise=True, negatives=2
    )
    assert stats.gold_retrieved == 5 and stats.gold_not_retrieved == 1
    assert stats.skipped == 1 and stats.examples == len(examples) == 5 * 3
    for i, turn in enumerate(turns):
        mine = [ex for ex in examples if ex.dialog_id == turn.dialog_id]
        assert [ex.completion for ex in mine] == ["yes", "no", "no"]
        assert {ex.kind for ex in mine} == {"score"}
        prep = recommender.prepare_context(turn.context, exclude_mentioned=True, k=k)
        served = [recommender.score_prompt(prep.conversation, c) for c in prep.candidates]
        assert mine[0].prompt == served[i] and "Evidence: request top" in mine[0].prompt
        assert {ex.prompt for ex in mine[1:]} <= set(served) - {served[i]}
    again, _ = build_examples(turns, recommender, catalog, k=k, seed=3, pointwise=True, negatives=2)
    assert again == examples[: len(again)]
    # a 👎 from the feedback log is a "no" for that item in that context, and adds no sampling
    served = recommender.prepare_context(["a quiet drama"], exclude_mentioned=True, k=k)
    down_item = served.candidates[4]
    down = RecTurn("f", 1, ("a quiet drama",), (), (down_item.item.title,), "", (False,))
    (ex,), _ = build_examples([down], recommender, catalog, k=k, pointwise=True, negatives=2)
    assert ex.completion == "no"
    assert ex.prompt == recommender.score_prompt(served.conversation, down_item)


def test_dialogue_input_split_and_bad_lines(tmp_path: Path, demo_items) -> None:
    path = _write(tmp_path / "d.jsonl", _dialogues(demo_items, 40), ("{not json", '{"a": 1}'))
    data = load_turns(path, "jsonl", tmp_path)
    assert len(data.turns) == 40 and len(data.rejects) == 2 and len(data.sha256) == 64
    splits = split_by_dialogue(data.turns, seed=0)
    for name, turns in splits.items():
        assert all(split_of(t.dialog_id, 0) == name for t in turns)
    assert 0 < len(splits["train"]) < 40 and "test" not in splits


def test_feedback_format_reads_the_store(tmp_path: Path, demo_items) -> None:
    db = tmp_path / "feedback.sqlite3"
    with FeedbackStore(db) as store:
        for i, it in enumerate(demo_items[:30]):
            store.record(f"s{i}", it.item_id, it.title, "up" if i % 3 else "down", [f"hi {i}"])
    data = load_turns(db, "feedback", tmp_path)
    assert data.fmt == "feedback" and len(data.turns) == 30
    assert {t.accepted for t in data.turns} == {(True,), (False,)}
    assert data.turns[1].gold_ids == (demo_items[1].item_id,)


def test_cli_help_and_one_line_errors(tmp_path: Path, capsys) -> None:
    import argparse

    from finetune.cli import add_finetune_parser
    from recochat.cli import main

    parser = argparse.ArgumentParser(prog="recochat")
    add_finetune_parser(parser.add_subparsers(dest="command"))
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["finetune", "--help"])
    assert exit_info.value.code == 0
    with pytest.raises(SystemExit) as exit_info:
        main(["finetune", "--help"])
    assert exit_info.value.code == 0
    capsys.readouterr()

    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\nnot json either\n", encoding="utf-8")
    assert main(["finetune", "--dialogues", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no usable training turns")
    assert "2 unreadable lines" in err[0]
    assert (
        main(
            ["finetune", "--dialogues", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o")]
        )
        == 2
    )
    assert "not found" in capsys.readouterr().err


def test_no_usable_examples_is_an_error(tmp_path: Path, demo_home, model_cache) -> None:
    from finetune.run import FinetuneJob, run_job
    from finetune.train import TrainOptions

    dialogues = [
        {"dialog_id": f"x{i}", "turns": [
            {"role": "user", "text": "hi"},
            {"role": "assistant", "text": "ok", "recommended": [{"title": "Not In Catalog"}]},
        ]}
        for i in range(20)
    ]  # fmt: skip
    path = _write(tmp_path / "d.jsonl", dialogues)
    job = FinetuneJob(path, TrainOptions(out=tmp_path / "out", max_steps=1), progress=False)
    with pytest.raises(InputError, match="no usable training examples"):
        run_job(job, _settings(tmp_path, demo_home, model_cache))


# -- a real tiny QLoRA run --------------------------------------------------------------


def _settings(tmp_path: Path, demo_home: Path, model_cache: Path) -> Settings:
    """The demo index (shared, read-only here) and the session's converted model."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "models").symlink_to(model_cache, target_is_directory=True)
    return Settings(home=home, retrieval={"chroma": str(demo_home / "chroma")})


def _lora_state(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


@pytest.mark.slow
def test_qlora_train_resume_init_adapter_and_serve(
    tmp_path, demo_home, model_cache, demo_items, llm
):
    import torch
    from safetensors.torch import load_file

    from chatbot.ranking.rerank import SCORE_LABELS
    from finetune.artifacts import RECORD
    from finetune.run import FinetuneJob, run_job
    from finetune.train import TrainOptions, load_trainable
    from inference.llm import load_llm
    from inference.model_files import rerank_mode_of

    settings = _settings(tmp_path, demo_home, model_cache)
    # 8 candidates instead of 20: fewer negatives to draw from, same serving code path
    settings = settings.model_copy(
        update={"retrieval": settings.retrieval.model_copy(update={"k_candidates": 8})}
    )
    path = _write(tmp_path / "d.jsonl", _dialogues(demo_items, 40))  # 40: dev split non-empty
    out = tmp_path / "run"

    def job(steps: int, out: Path = out, init: Path | None = None) -> FinetuneJob:
        opts = TrainOptions(
            out=out, max_steps=steps, eval_steps=2, learning_rate=2e-3, batch_size=2,
            grad_accum=1, eval_batch_size=4, logging_steps=1, seed=0, init_adapter=init,
            warmup=0.0, progress=False,
        )  # fmt: skip
        return FinetuneJob(path, opts, reason_fraction=0.0, dev_rerank_limit=4, progress=False)

    # 1. two steps, then "interrupted": rerunning with a larger budget resumes
    first = run_job(job(2), settings)
    assert first.outcome.global_step == 2 and first.outcome.resumed_from is None
    for name in ("adapter_model.safetensors", "adapter_config.json", RECORD, "loss.png"):
        assert (out / name).is_file(), name
    rec = json.loads((out / RECORD).read_text())
    assert rec["n_train"] > 0 and rec["n_dev"] > 0 and len(rec["data_sha256"]) == 64
    assert rec["split"]["seed"] == 0 and rec["seed"] == 0 and rec["base_model"]
    assert {"eval_loss", "rerank_hit@1"} <= set(rec["dev_metrics"])
    assert rec["config"]["lora"]["r"] == 16 and rec["config"]["lora"]["lora_alpha"] == 32
    assert rec["config"]["lora"]["layers_to_transform"] == list(range(22, 30))  # top 8 of 30
    # rerank_mode 'auto' trains the pointwise reranker and records it; serving reads it back
    assert rec["config"]["llm"]["rerank_mode"] == "pointwise"
    assert rerank_mode_of(LLMSettings(adapter=out)) == "pointwise"
    assert rerank_mode_of(LLMSettings(adapter=out, rerank_mode="logits")) == "logits"
    assert rerank_mode_of(LLMSettings()) == "logits"
    assert {e.kind for e in first.train_examples} == {"score"}

    # serving-time tokenization: no BOS or template drift between training and serving
    trainer = first.outcome.trainer
    ex = next(e for e in first.train_examples if e.kind == "score")
    prompt_ids = llm.tokenizer(ex.prompt, add_special_tokens=False)["input_ids"]
    rows = [r for r in trainer.train_dataset if r["input_ids"][: len(prompt_ids)] == prompt_ids]
    assert rows, "the serving prompt's tokens must prefix a training sequence"
    first_target = rows[0]["input_ids"][len(prompt_ids)]  # the first completion token
    assert first_target in llm.label_token_ids(list(SCORE_LABELS))

    second = run_job(job(4), settings)
    assert second.outcome.resumed_from and second.outcome.resumed_from.endswith("checkpoint-2")
    assert second.outcome.global_step == 4
    history = second.outcome.log_history
    losses = [e["loss"] for e in history if "loss" in e]
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses), losses
    # training lowered the loss on the training examples (the step-0 model is the base model:
    # LoRA B starts at zero), measured on the same examples, not on noisy 2-example batches
    tuned = second.outcome.trainer
    after_loss = tuned.evaluate(tuned.train_dataset)["eval_loss"]
    with tuned.model.disable_adapter():
        before_loss = tuned.evaluate(tuned.train_dataset)["eval_loss"]
    assert after_loss < before_loss - 0.1, (before_loss, after_loss)
    evals = {e["step"]: e["eval_loss"] for e in history if "eval_loss" in e}
    assert set(evals) == {2, 4}  # dev split evaluated every --eval-steps
    best_step = min(evals, key=evals.__getitem__)
    assert second.outcome.best_checkpoint.endswith(f"checkpoint-{best_step}")
    assert second.record["dev_metrics"]["eval_loss"] == pytest.approx(evals[best_step])

    # the saved adapter: every lora_B moved off its zero init
    saved = load_file(str(out / "adapter_model.safetensors"))
    lora_b = [n for n in saved if "lora_B" in n]
    assert len(saved) == 8 * 7 * 2 and all(saved[n].abs().sum() > 0 for n in lora_b)

    # 3. --init-adapter loads that adapter as trainable; the base weights never changed
    init_job = job(2, out=tmp_path / "continued", init=out)
    loaded, _ = load_trainable(settings, init_job.train)
    start = {n.replace(".default", ""): p for n, p in _lora_state(loaded).items()}
    assert start.keys() == saved.keys()
    assert all(torch.equal(saved[n], start[n]) for n in saved), "init adapter not loaded"
    assert all(p.requires_grad for n, p in loaded.named_parameters() if "lora_" in n)
    trained = second.outcome.trainer.model
    base_trained = {n: p for n, p in trained.named_parameters() if "lora_" not in n}
    base_loaded = {n: p for n, p in loaded.named_parameters() if "lora_" not in n}
    assert base_trained.keys() == base_loaded.keys() and len(base_loaded) > 100
    assert all(torch.equal(base_trained[n].cpu(), base_loaded[n]) for n in base_loaded)
    assert not any(p.requires_grad for p in base_trained.values())
    del loaded

    # the served model with the adapter scores differently from the base model
    served = load_llm(LLMSettings(adapter=out), model_cache)
    prompt, labels = ex.prompt, list(SCORE_LABELS)
    base_lp = torch.tensor(llm.label_logprobs(prompt, labels))
    tuned_lp = torch.tensor(served.label_logprobs(prompt, labels))
    assert (base_lp - tuned_lp).abs().max() > 1e-3
    del served

    third = run_job(init_job, settings)
    assert third.outcome.global_step == 2 and third.outcome.resumed_from is None
    assert third.record["config"]["train"]["init_adapter"] == str(out)
    assert third.record["config"]["llm"]["rerank_mode"] == "pointwise"  # the init adapter's
    after = load_file(str(tmp_path / "continued" / "adapter_model.safetensors"))
    assert after.keys() == saved.keys()
    assert any(not torch.equal(after[n], saved[n]) for n in saved)


@pytest.mark.slow
def test_training_killed_mid_run_resumes_from_its_last_checkpoint(
    tmp_path, demo_home, model_cache, demo_items
):
    """`python -m finetune` SIGKILLed after a checkpoint; the same command resumes from it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from finetune.artifacts import RECORD
    from finetune.train import last_complete_checkpoint

    home = _settings(tmp_path, demo_home, model_cache).home
    env = {
        **os.environ,
        "RECOCHAT_HOME": str(home),
        "RECOCHAT_RETRIEVAL__CHROMA": str(demo_home / "chroma"),
        "RECOCHAT_RETRIEVAL__K_CANDIDATES": "8",
    }
    path = _write(tmp_path / "d.jsonl", _dialogues(demo_items, 40))
    out = tmp_path / "run"

    def command(steps: int) -> list[str]:
        return [
            sys.executable, "-m", "finetune", "--dialogues", str(path), "--max-steps", str(steps),
            "--eval-steps", "2", "--batch-size", "2", "--grad-accum", "1", "--lr", "2e-3",
            "--reason-fraction", "0", "--dev-rerank-limit", "0", "--max-dev-examples", "4",
            "--no-progress", "-v", "--out", str(out),
        ]  # fmt: skip

    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(command(400), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while last_complete_checkpoint(out) is None and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint within 10 minutes"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL, (tmp_path / "first.log").read_text()[-2000:]
    assert not (out / RECORD).exists()  # killed mid-run: no finished adapter yet

    last = last_complete_checkpoint(out)
    step = int(last.rsplit("-", 1)[1])
    assert 2 <= step < 400
    again = subprocess.run(
        command(step + 2), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"resuming from {last}" in again.stderr
    rec = json.loads((out / RECORD).read_text())
    assert rec["training"]["global_step"] == step + 2
    assert rec["training"]["resumed_from"] == last


def test_completion_loss_equals_the_full_causal_lm_loss(model_cache) -> None:
    """Logits only at completion positions give exactly the loss of the full LM head."""
    import torch

    from finetune.loss import completion_loss, completion_positions
    from inference.model_files import load_base_model

    model, tok = load_base_model(LLMSettings(dtype="float32"), model_cache)
    pairs = [("Pick one: A or B? Answer:", " B<|im_end|>"), ("Which letter?", " C D<|im_end|>")]
    rows = [tok(p + c, add_special_tokens=False)["input_ids"] for p, c in pairs]
    width = max(map(len, rows))
    ids = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    labels = torch.full_like(ids, -100)
    for b, (p, _c) in enumerate(pairs):
        start = len(tok(p, add_special_tokens=False)["input_ids"])
        labels[b, start : len(rows[b])] = ids[b, start : len(rows[b])]
    inputs = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    with torch.no_grad():
        full = model(**inputs).loss
        ours, logits, target = completion_loss(model, dict(inputs))
    assert ours.item() == pytest.approx(full.item(), rel=1e-4)
    assert logits.shape[1] == len(completion_positions(labels)) < width - 1
    assert int((target != -100).sum()) == int((labels != -100).sum())


@pytest.mark.slow
def test_reply_finetune_via_the_cli_and_served_through_config(
    tmp_path, demo_home, model_cache, demo_items, llm
):
    """`recochat finetune --task reply`: a real two-step QLoRA run on logged responses, then
    `llm.reply_adapter` serves it on a second LLM that the reply writer uses."""
    import torch

    from chatbot.reply.reply_llm import build_reply_writer
    from chatbot.understanding.mentions import MentionFinder
    from finetune.artifacts import RECORD
    from recochat.cli import main

    settings = _settings(tmp_path, demo_home, model_cache)
    path = _write(tmp_path / "d.jsonl", _dialogues(demo_items, 40))
    out = tmp_path / "reply-run"
    argv = ["finetune", "--task", "reply", "--dialogues", str(path), "--format", "jsonl",
            "--catalog", "demo", "--max-steps", "2", "--batch-size", "2", "--grad-accum", "1",
            "--lr", "2e-3", "--lora-layers", "2", "--max-dev-examples", "4",
            "--home", str(settings.home), "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    rec = json.loads((out / RECORD).read_text())
    assert rec["task"] == "reply" and rec["training"]["global_step"] == 2
    assert rec["n_train"] > 0 and rec["split"]["test"] == "never read"
    kinds = {json.loads(line)["kind"] for line in (out / "examples" / "train.jsonl").open()}
    assert kinds == {"reply"}

    served = settings.model_copy(
        update={"llm": settings.llm.model_copy(update={"reply_adapter": out})}
    )
    index = MentionFinder.of(demo_items)
    writer = build_reply_writer(served, llm, index)
    assert writer.llm is not llm
    assert build_reply_writer(settings, llm, index).llm is llm  # unset: the served LLM
    ids = torch.tensor([llm.tokenizer("Try Collateral, a crime film.")["input_ids"]])
    with torch.inference_mode():
        base = llm.model(input_ids=ids).logits
        tuned = writer.llm.model(input_ids=ids).logits
    assert not torch.allclose(base, tuned)  # the adapter's weights changed the model
