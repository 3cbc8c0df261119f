"""QLoRA training of the reranker LLM: 4-bit NF4 base, LoRA adapters, trl's SFTTrainer.

The base model is loaded by `chatbot.llm.load_base_model(for_training=True)` (NF4, double
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
    gradient_checkpointing: bool = False  # a 135M model fits easily; checkpointing costs ~30%
    init_adapter: Path | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.max_steps <= 0 and self.epochs <= 0:
            raise ConfigError("set --epochs > 0 or --max-steps > 0")
        if self.lora_r <= 0:
            raise ConfigError("set lora_r > 0")
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
    steps_per_second: float = 0.0
    examples_per_second: float = 0.0
    device: str = "cpu"
    trainer: Any = None  # the SFTTrainer, for callers that inspect it (tests)


def lora_config(opts: TrainOptions):
    from peft import LoraConfig

    return LoraConfig(
        r=opts.lora_r,
        lora_alpha=opts.lora_alpha,
        lora_dropout=opts.lora_dropout,
        target_modules=list(LORA_TARGETS),
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

    from chatbot.llm import load_base_model, validate_adapter_dir

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
        model = get_peft_model(model, lora_config(opts))
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


def sft_config(opts: TrainOptions, *, device: str, n_train: int, has_dev: bool):
    import torch
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
        # The 4-bit layers already compute in bf16; CPU autocast on top of them got slower
        # step after step in our measurements, so mixed precision is for CUDA only.
        bf16=cuda and torch.cuda.is_bf16_supported(),
        use_cpu=not cuda,
        gradient_checkpointing=opts.gradient_checkpointing,
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
        max_length=None,  # never truncate: truncation would cut the completion off
        dataloader_num_workers=0,
    )


def epoch_timer() -> Any:
    """A Trainer callback that keeps the wall time of each epoch in `.seconds`."""
    from transformers import TrainerCallback

    class EpochTimer(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self._start = 0.0

        def on_epoch_begin(self, args, state, control, **kwargs):
            self._start = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):
            self.seconds.append(time.perf_counter() - self._start)
            log.info("epoch %.2f took %.1f s", state.epoch or 0.0, self.seconds[-1])

    return EpochTimer()


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
    from transformers.trainer_utils import get_last_checkpoint
    from trl import SFTTrainer

    opts.out.mkdir(parents=True, exist_ok=True)
    has_dev = bool(dev_records)
    if not has_dev:
        log.warning("no dev examples: training without evaluation or best-checkpoint selection")
    config = sft_config(opts, device=device, n_train=len(train_records), has_dev=has_dev)
    timer = epoch_timer()
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(train_records),
        eval_dataset=Dataset.from_list(dev_records) if has_dev else None,
        processing_class=tokenizer,
        callbacks=[timer],
    )
    last = get_last_checkpoint(str(opts.out)) if opts.out.is_dir() else None
    if last:
        log.info("resuming from %s", last)
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - start
    dev_metrics = trainer.evaluate() if has_dev else {}
    steps_done = result.global_step - _step_of(last)
    return TrainOutcome(
        global_step=result.global_step,
        resumed_from=last,
        best_checkpoint=trainer.state.best_model_checkpoint,
        dev_metrics={k: float(v) for k, v in dev_metrics.items()},
        log_history=list(trainer.state.log_history),
        train_seconds=seconds,
        epoch_seconds=timer.seconds,
        steps_per_second=steps_done / seconds if seconds else 0.0,
        examples_per_second=steps_done * opts.batch_size * opts.grad_accum / seconds
        if seconds
        else 0.0,
        device=device,
        trainer=trainer,
    )


def _step_of(checkpoint: str | None) -> int:
    if not checkpoint:
        return 0
    try:
        return int(Path(checkpoint).name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def rerank_dev_metrics(model: Any, tokenizer: Any, examples: list[Any], limit: int) -> dict:
    """Hit@1 and MRR of the letter the logits reranker reads, on up to `limit` dev examples."""
    from chatbot.llm import LLM
    from chatbot.rerank import LABELS

    if limit <= 0:
        return {}
    llm = LLM(model=model, tokenizer=tokenizer)
    was_training = model.training
    model.eval()
    hits = 0
    rr = 0.0
    chosen = [ex for ex in examples if ex.kind == "rerank" and ex.n_candidates][:limit]
    if not chosen:
        return {}
    for ex in chosen:
        labels = list(LABELS[: ex.n_candidates])
        scores = llm.label_logprobs(ex.prompt, labels)
        gold = LABELS.index(ex.completion[0])
        rank = 1 + sum(s > scores[gold] for s in scores)
        hits += rank == 1
        rr += 1.0 / rank
    if was_training:
        model.train()
    return {"rerank_hit@1": hits / len(chosen), "rerank_mrr": rr / len(chosen), "n": len(chosen)}
