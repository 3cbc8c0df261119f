"""QLoRA training of the reranker LLM: 4-bit NF4 base, LoRA adapters, trl's SFTTrainer.

The base model is loaded by `inference.model_files.load_base_model(for_training=True)` (NF4, double
quant, bf16 compute), prepared with `peft.prepare_model_for_kbit_training`, and given fresh
LoRA adapters (or those of `init_adapter`, trainable). Examples are prompt/completion pairs,
so the loss covers the completion only. The dev split is evaluated every `eval_steps`, a
checkpoint is saved at each evaluation, the best one (lowest dev loss) is loaded at the end,
and an interrupted run resumes from the last checkpoint in the output dir. CPU and CUDA run
the same code; the device comes from `settings.llm.device` ("auto": CUDA when available).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chatbot.config import Settings
from chatbot.errors import ConfigError

log = logging.getLogger(__name__)

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class TrainOptions:
    """Knobs of one training run; every field is recorded in the output dir."""

    out: Path
    epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs
    seed: int = 0
    eval_steps: int | None = None  # None: evaluate (and checkpoint) twice per run
    learning_rate: float = 2e-4
    batch_size: int = 4  # per device; 4 x ~500-token prompts keeps 2 CPU cores busy
    grad_accum: int = 2  # effective batch 8
    eval_batch_size: int = 8
    warmup: float = 0.05  # fraction of the steps
    logging_steps: int = 5
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_layers: int = 8  # LoRA on the top N decoder layers (0 = all): backward stops there, ~2x
    gradient_checkpointing: bool = False  # a 135M model fits easily; checkpointing costs ~30%
    bf16: bool | None = None  # bf16 autocast; None: on CUDA with bf16, on CPUs with AVX512-BF16
    init_adapter: Path | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.max_steps <= 0 and self.epochs <= 0:
            raise ConfigError("set --epochs > 0 or --max-steps > 0")
        if self.lora_r <= 0:
            raise ConfigError("set lora_r > 0")
        if self.lora_layers < 0:
            raise ConfigError("set --lora-layers >= 0 (0 = every layer)")
        if self.eval_steps is not None and self.eval_steps <= 0:
            raise ConfigError("set --eval-steps > 0 (or leave it out)")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"] = str(self.out)
        d["init_adapter"] = str(self.init_adapter) if self.init_adapter else None
        return d


@dataclass
class TrainOutcome:
    global_step: int
    resumed_from: str | None
    best_checkpoint: str | None
    dev_metrics: dict[str, float]
    log_history: list[dict[str, Any]]
    train_seconds: float
    epoch_seconds: list[float] = field(default_factory=list)
    steps_per_second: float = 0.0  # optimizer steps alone, without evaluation
    examples_per_second: float = 0.0
    device: str = "cpu"
    trainer: Any = None  # the SFTTrainer, for callers that inspect it (tests)


def lora_config(opts: TrainOptions, n_layers: int | None = None):
    """LoRA on every projection of the top `opts.lora_layers` decoder layers (all when 0 or
    when `n_layers` is unknown)."""
    from peft import LoraConfig

    top = None
    if opts.lora_layers and n_layers and opts.lora_layers < n_layers:
        top = list(range(n_layers - opts.lora_layers, n_layers))
    return LoraConfig(
        r=opts.lora_r,
        lora_alpha=opts.lora_alpha,
        lora_dropout=opts.lora_dropout,
        target_modules=list(LORA_TARGETS),
        layers_to_transform=top,
        task_type="CAUSAL_LM",
    )


def device_of(settings: Settings) -> str:
    import torch

    if settings.llm.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return settings.llm.device


def load_trainable(settings: Settings, opts: TrainOptions) -> tuple[Any, Any]:
    """The 4-bit base model with trainable LoRA adapters (fresh or from `opts.init_adapter`)."""
    from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training
    from transformers import set_seed

    from inference.model_files import load_base_model, validate_adapter_dir

    set_seed(opts.seed)  # LoRA A matrices are randomly initialised
    model, tokenizer = load_base_model(settings.llm, settings.model_cache, for_training=True)
    keep_cpu_layout(model)
    model = prepare_model_for_kbit_training(
        model, use_gradient_checkpointing=opts.gradient_checkpointing
    )
    if opts.init_adapter:
        adapter = validate_adapter_dir(opts.init_adapter)
        model = PeftModel.from_pretrained(model, adapter, is_trainable=True)
    else:
        model = get_peft_model(model, lora_config(opts, model.config.num_hidden_layers))
    return model, tokenizer


def keep_cpu_layout(model: Any) -> None:
    """Stop bitsandbytes from repacking 4-bit weights for CPU inference during evaluation.

    On CPUs with AVX512-BF16, a `Linear4bit` called in eval mode without grad rewrites its
    weight into an inference-only layout; training after a dev evaluation would then run
    through a kernel that does not backpropagate into earlier layers.
    """
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


def planned_steps(n_train: int, opts: TrainOptions) -> int:
    if opts.max_steps > 0:
        return opts.max_steps
    per_epoch = math.ceil(math.ceil(n_train / opts.batch_size) / opts.grad_accum)
    return max(1, math.ceil(per_epoch * opts.epochs))


def use_bf16(opts: TrainOptions, device: str) -> bool:
    """bf16 autocast where the hardware does bf16 matmuls natively; slower than fp32 elsewhere."""
    import torch

    if opts.bf16 is not None:
        return opts.bf16
    if device == "cuda":
        return torch.cuda.is_bf16_supported()
    # CPU autocast over 4-bit layers left lora_A frozen in our runs: fp32 on CPU unless asked.
    return False


def sft_config(opts: TrainOptions, *, device: str, n_train: int, has_dev: bool):
    from trl import SFTConfig

    total = planned_steps(n_train, opts)
    eval_steps = opts.eval_steps or max(1, math.ceil(total / 2))
    cuda = device == "cuda"
    return SFTConfig(
        output_dir=str(opts.out),
        num_train_epochs=opts.epochs,
        max_steps=opts.max_steps,
        per_device_train_batch_size=opts.batch_size,
        per_device_eval_batch_size=opts.eval_batch_size,
        gradient_accumulation_steps=opts.grad_accum,
        learning_rate=opts.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=opts.warmup,
        weight_decay=0.0,
        seed=opts.seed,
        data_seed=opts.seed,
        bf16=use_bf16(opts, device),
        use_cpu=not cuda,
        activation_checkpointing=opts.gradient_checkpointing,
        eval_strategy="steps" if has_dev else "no",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=2,
        load_best_model_at_end=has_dev,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=opts.logging_steps,
        logging_first_step=True,
        report_to="none",
        disable_tqdm=not opts.progress,
        train_sampling_strategy="group_by_length",  # less padding per batch
        completion_only_loss=True,
        prediction_loss_only=True,  # dev loss only: no full logits kept during evaluation
        max_length=None,  # never truncate: truncation would cut the completion off
        dataloader_num_workers=0,
    )


def timer() -> Any:
    """A Trainer callback keeping the wall time of each epoch and of the optimizer steps alone
    (`step_seconds` excludes evaluation and checkpointing)."""
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self.step_seconds = 0.0
            self.steps = 0
            self._epoch = self._step = 0.0

        def on_epoch_begin(self, args, state, control, **kwargs):
            self._epoch = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):
            self.seconds.append(time.perf_counter() - self._epoch)
            log.info("epoch %.2f took %.1f s", state.epoch or 0.0, self.seconds[-1])

        def on_step_begin(self, args, state, control, **kwargs):
            self._step = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.step_seconds += time.perf_counter() - self._step
            self.steps += 1

    return Timer()


def train(
    model: Any,
    tokenizer: Any,
    train_records: list[dict[str, str]],
    dev_records: list[dict[str, str]],
    opts: TrainOptions,
    *,
    device: str,
) -> TrainOutcome:
    """Run (or resume) training; the best adapter by dev loss is in `model` afterwards."""
    from datasets import Dataset

    from finetune.loss import completion_trainer

    opts.out.mkdir(parents=True, exist_ok=True)
    has_dev = bool(dev_records)
    if not has_dev:
        log.warning("no dev examples: training without evaluation or best-checkpoint selection")
    config = sft_config(opts, device=device, n_train=len(train_records), has_dev=has_dev)
    clock = timer()
    trainer = completion_trainer()(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(train_records),
        eval_dataset=Dataset.from_list(dev_records) if has_dev else None,
        processing_class=tokenizer,
        callbacks=[clock],
    )
    last = last_complete_checkpoint(opts.out)
    if last:
        log.info("resuming from %s", last)
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - start
    dev_metrics = best_eval(trainer.state) if has_dev else {}
    per_step = clock.step_seconds / clock.steps if clock.steps else 0.0
    return TrainOutcome(
        global_step=result.global_step,
        resumed_from=last,
        best_checkpoint=trainer.state.best_model_checkpoint,
        dev_metrics={k: float(v) for k, v in dev_metrics.items()},
        log_history=list(trainer.state.log_history),
        train_seconds=seconds,
        epoch_seconds=clock.seconds,
        steps_per_second=1.0 / per_step if per_step else 0.0,
        examples_per_second=opts.batch_size * opts.grad_accum / per_step if per_step else 0.0,
        device=device,
        trainer=trainer,
    )


def last_complete_checkpoint(out: Path) -> str | None:
    """The newest checkpoint in `out` whose save finished. The Trainer writes
    `trainer_state.json` last, so a checkpoint cut short by a kill lacks it and is skipped."""
    done = [
        (step, d)
        for d in (out.glob("checkpoint-*") if out.is_dir() else [])
        if (step := _checkpoint_step(str(d))) is not None and (d / "trainer_state.json").is_file()
    ]
    return str(max(done)[1]) if done else None


def best_eval(state: Any) -> dict[str, float]:
    """Dev metrics logged at the best checkpoint (the weights loaded at the end)."""
    evals = [e for e in state.log_history if "eval_loss" in e]
    if not evals:
        return {}
    best_step = _checkpoint_step(state.best_model_checkpoint)
    chosen = next((e for e in evals if e.get("step") == best_step), None)
    chosen = chosen or min(evals, key=lambda e: e["eval_loss"])
    return {k: float(v) for k, v in chosen.items() if k.startswith("eval_") or k == "step"}


def _checkpoint_step(path: str | None) -> int | None:
    try:
        return int(Path(path).name.rsplit("-", 1)[1]) if path else None
    except (IndexError, ValueError):
        return None


def rerank_dev_metrics(model: Any, tokenizer: Any, examples: list[Any], limit: int) -> dict:
    """Hit@1 and MRR of the served reranker's scores on up to `limit` dev turns: the gold letter
    among a listwise example's letters, or each "yes" item among its turn's pointwise items."""
    from inference.llm import LLM

    if limit <= 0:
        return {}
    llm = LLM(model=model, tokenizer=tokenizer, prefix_cache=None)
    was_training = model.training
    model.eval()
    try:
        ranks = [rank for group in _dev_groups(examples, limit) for rank in _gold_ranks(llm, group)]
    finally:
        if was_training:
            model.train()
    if not ranks:
        return {}
    return {
        "rerank_hit@1": sum(r == 1 for r in ranks) / len(ranks),
        "rerank_mrr": sum(1.0 / r for r in ranks) / len(ranks),
        "n": len(ranks),
    }


def _dev_groups(examples: list[Any], limit: int) -> list[list[Any]]:
    """Listwise examples one per group; pointwise examples grouped by turn."""
    groups: dict[tuple, list[Any]] = {}
    for ex in examples:
        if ex.kind == "rerank" and ex.n_candidates:
            groups[(id(ex),)] = [ex]
        elif ex.kind == "score":
            groups.setdefault((ex.dialog_id, ex.turn_id), []).append(ex)
    return list(groups.values())[:limit]


def _gold_ranks(llm: Any, group: list[Any]) -> list[int]:
    from chatbot.ranking.rerank import LABELS, SCORE_LABELS

    if group[0].kind == "rerank":
        ex = group[0]
        scores = llm.label_logprobs(ex.prompt, list(LABELS[: ex.n_candidates]))
        golds = [LABELS.index(ex.completion[0])]
    else:
        rows = llm.label_logprobs_rows([ex.prompt for ex in group], list(SCORE_LABELS))
        scores = [row[0] for row in rows]
        golds = [i for i, ex in enumerate(group) if ex.completion == SCORE_LABELS[0]]
        negatives = [s for i, s in enumerate(scores) if i not in golds]
        return [1 + sum(n > scores[g] for n in negatives) for g in golds]
    return [1 + sum(s > scores[g] for s in scores) for g in golds]
