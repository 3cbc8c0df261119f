"""The LLM wrapper on the real default model: scoring, the prefix cache, decoding, loading rules."""

from __future__ import annotations

import contextlib
import copy
import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from chatbot.ranking.rerank import LABELS, rerank_user_text
from inference.errors import ModelError
from inference.llm import LLM, load_llm
from inference.model_files import (
    convert_builtin,
    load_base_model,
    resolve_model_dir,
    validate_adapter_dir,
)
from inference.prefix_cache import Prefix, PrefixCache
from inference.settings import LLMSettings
from prompts.loader import render
from retrieval.types import Item

ITEMS = [
    Item("a", "Heat", "", {"year": 1995, "genres": ["crime", "thriller"]}),
    Item("b", "Toy Story", "", {"year": 1995, "genres": ["animation", "family"]}),
    Item("c", "Collateral", "", {"year": 2004, "genres": ["crime", "thriller"]}),
    Item("d", "Paddington", "", {"year": 2014, "genres": ["family", "comedy"]}),
]


def rerank_prompt(llm: LLM, conversation: str) -> str:
    user = rerank_user_text(conversation, ITEMS)
    return llm.chat_prompt(user, system=render("system"))


def test_label_logprobs_are_a_distribution_and_the_prefix_cache_changes_nothing(llm, model_cache):
    labels = list(LABELS[: len(ITEMS)])
    cached = LLM(llm.model, llm.tokenizer)  # its own, empty prefix cache
    mark = "\x00"
    assert cached.cache_head(rerank_prompt(llm, mark), mark) > 10  # the rerank prompt's head
    prompt = rerank_prompt(llm, "User: a tense crime film at night")
    got = cached.label_logprobs(prompt, labels)
    assert cached.stats.cached_tokens > 10
    for conversation in ("User: I loved Heat", "User: something for the kids"):
        cached.label_logprobs(rerank_prompt(llm, conversation), labels)
    assert len(cached.prefix_cache) == 1  # nothing learned from traffic
    assert cached.label_logprobs(prompt, labels) == got  # so other prompts change no score

    # Reference: a plain transformers forward of the whole prompt, unpacked, no cache.
    ref_model, tok = load_base_model(LLMSettings(), model_cache)
    enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        logits = ref_model(**enc).logits[0, -1].float()
    ref = torch.log_softmax(logits[cached.label_token_ids(labels)], dim=-1).tolist()

    assert math.isclose(sum(math.exp(x) for x in got), 1.0, abs_tol=1e-4)
    assert max(abs(math.exp(a) - math.exp(b)) for a, b in zip(got, ref, strict=True)) < 0.03
    uncached = LLM(llm.model, llm.tokenizer, prefix_cache=None).label_logprobs(prompt, labels)
    assert max(abs(math.exp(a) - math.exp(b)) for a, b in zip(got, uncached, strict=True)) < 0.03


def test_cache_prefix_is_used_only_when_the_prompt_starts_with_it(llm):
    fresh = LLM(llm.model, llm.tokenizer)
    header = llm.chat_prompt("", system=render("system")).split("<|im_start|>user")[0]
    assert fresh.cache_prefix(header) > 10
    fresh.label_logprobs(rerank_prompt(llm, "User: I loved Heat"), list("ABCD"))
    assert fresh.stats.cached_tokens > 10
    before = fresh.stats.cached_tokens
    fresh.label_logprobs(llm.chat_prompt("Pick A or B."), ["A", "B"])  # default system prompt
    assert fresh.stats.cached_tokens == before


def test_generate_with_allowed_tokens_only_emits_allowed_ids(llm):
    prompts = [llm.chat_prompt("Describe a movie."), llm.chat_prompt("Describe a song.")]
    allowed = [
        llm.vocabulary_of(["a quiet night drive in the city."]),
        llm.vocabulary_of(["loud drums and a happy chorus."]),
    ]
    out = llm.generate_ids(prompts, 12, allowed_tokens=allowed)
    assert all(out)
    for ids, ok in zip(out, allowed, strict=True):
        assert set(ids) <= ok
    texts = llm.generate(prompts, 12, allowed_tokens=allowed)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


@pytest.mark.parametrize("constrained", [False, True])
def test_streamed_tokens_equal_batched_generation(llm, constrained):
    prompt = llm.chat_prompt("Suggest a film for a rainy evening, in one sentence.")
    allowed = llm.vocabulary_of(["a quiet, funny film about a long night drive."])
    allowed = allowed if constrained else None
    streamed = list(llm.stream_ids(prompt, 24, allowed=allowed))
    batched = llm.generate_ids(
        [prompt], 24, allowed_tokens=[allowed] if allowed is not None else None
    )[0]
    assert streamed == batched and streamed
    if allowed is not None:
        assert set(streamed) <= allowed
    text = "".join(llm.stream_text(prompt, 24, allowed=allowed))
    assert (
        text.strip()
        == llm.generate([prompt], 24, allowed_tokens=None if allowed is None else [allowed])[0]
    )


def test_generation_stops_at_the_stop_string(llm):
    prompt = llm.chat_prompt("Name three colours, separated by commas.")
    (ids,) = llm.generate_ids([prompt], 24, stop=",")
    text = llm.tokenizer.decode(ids)
    if "," in text:  # the row ends at the token that wrote the first comma
        assert "," not in llm.tokenizer.decode(ids[:-1])


def test_greedy_loop_matches_transformers_generate(model_cache):
    fp32 = load_llm(LLMSettings(dtype="float32"), model_cache)
    ref = LLM(fp32.model, fp32.tokenizer, prefix_cache=None)
    prompt = fp32.chat_prompt("Describe the movie Heat in one sentence.")
    enc = fp32.tokenizer([prompt], return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        out = fp32.model.generate(
            **enc,
            max_new_tokens=20,
            do_sample=False,
            pad_token_id=fp32.tokenizer.pad_token_id,
            repetition_penalty=1.1,
            no_repeat_ngram_size=3,
        )
    expected = [t for t in out[0, enc["input_ids"].shape[1] :].tolist() if t != 2]
    assert ref.generate_ids([prompt], 20, stop=None)[0] == expected
    # A batch of unequal prompts (padded between the shared head and each tail) agrees with
    # running each prompt alone.
    prompts = [fp32.chat_prompt(f"One sentence about {t}.") for t in ("Heat", "Toy Story 2")]
    alone = [ref.generate_ids([p], 12, stop=None)[0] for p in prompts]
    assert fp32.generate_ids(prompts, 12, stop=None) == alone


def test_only_safetensors_weights_are_loaded(tmp_path, model_cache):
    model_dir = tmp_path / "pt-only"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (model_dir / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(ModelError, match="safetensors"):
        resolve_model_dir(str(model_dir), model_cache)
    with pytest.raises(ModelError, match="safetensors"):
        load_llm(LLMSettings(model=str(model_dir)), model_cache)


def test_remote_code_is_not_run_by_default(tmp_path, model_cache, llm):
    assert LLMSettings().trust_remote_code is False
    builtin = convert_builtin(model_cache)
    repo = tmp_path / "custom-code"
    shutil.copytree(builtin, repo, ignore=shutil.ignore_patterns("model.safetensors"))
    (repo / "model.safetensors").symlink_to(builtin / "model.safetensors")
    marker = tmp_path / "ran"
    (repo / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    config = json.loads((repo / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "evil.EvilForCausalLM"}
    (repo / "config.json").write_text(json.dumps(config))
    with contextlib.suppress(ModelError):  # refusing is fine too; running its code is not
        load_base_model(LLMSettings(model=str(repo)), model_cache)
    assert not marker.exists()


def test_invalid_adapter_dir_is_refused_before_loading(tmp_path, model_cache):
    (tmp_path / "adapter").mkdir()
    with pytest.raises(ModelError, match="adapter_config.json"):
        validate_adapter_dir(tmp_path / "adapter")
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    with pytest.raises(ModelError, match="adapter_model.safetensors"):
        load_llm(LLMSettings(adapter=tmp_path / "adapter"), model_cache)


def test_prefix_cache_keeps_the_longest_match_and_evicts_least_recent():
    cache = PrefixCache(capacity=2)
    kv = ((torch.zeros(1), torch.zeros(1)),)
    cache.put(Prefix((1, 2), kv))
    cache.put(Prefix((1, 2, 3, 4), kv))
    assert cache.longest([1, 2, 3, 4, 5]).ids == (1, 2, 3, 4)
    assert cache.longest([1, 2, 9]).ids == (1, 2)
    assert cache.longest([7]) is None
    cache.put(Prefix((5, 6), kv))  # evicts (1, 2, 3, 4): (1, 2) was used more recently
    assert cache.longest([1, 2, 3, 4, 5]).ids == (1, 2)


def test_default_dtype_follows_the_hardware(llm):
    from inference.linear_packing import cpu_has_bf16, resolve_dtype

    assert resolve_dtype("float32", "cpu") is torch.float32
    expected = torch.bfloat16 if cpu_has_bf16() else torch.float32
    assert resolve_dtype("auto", "cpu") is expected
    assert llm.model.dtype is expected


def test_packed_layers_compute_what_nn_linear_computes():
    from inference.linear_packing import pack_linears

    if not torch.backends.mkldnn.is_available():
        pytest.skip("no oneDNN in this torch build")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.SiLU(), torch.nn.Linear(32, 8))
    net = net.to(torch.bfloat16)
    x = torch.randn(5, 64, dtype=torch.bfloat16)
    with torch.inference_mode():
        expected = net(x).float()
        packed = pack_linears(net)
        got = net(x).float()
    assert packed in (0, 2)
    assert torch.allclose(got, expected, atol=2e-2, rtol=2e-2)


def _int4_ready() -> bool:
    from inference.int4_decode import available
    from inference.linear_packing import _packing_available

    return _packing_available() and available()


def test_int4_decoding_runs_one_row_calls_from_4_bit_weights_and_the_rest_from_bf16():
    from inference.int4_decode import decoding_step
    from inference.linear_packing import pack_linears

    if not _int4_ready():
        pytest.skip("no oneDNN or 4-bit CPU kernels in this torch build")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.SiLU(), torch.nn.Linear(32, 16))
    net = net.to(torch.bfloat16)
    plain = copy.deepcopy(net)
    one, rows = torch.randn(1, 64, dtype=torch.bfloat16), torch.randn(5, 64, dtype=torch.bfloat16)
    with torch.inference_mode():
        expected_one, expected_rows = net(one).float(), net(rows).float()
        packed = pack_linears(net, "int4")
        if packed == 0:  # bf16 packing is taken only where the CPU runs bf16 natively
            pytest.skip("this CPU packs no bf16 linears (no AVX-512-bf16 or AMX)")
        assert packed == 2 and pack_linears(plain) == 2
        assert net[0].int4 is not None and plain[0].int4 is None
        with decoding_step():
            got_one, got_rows = net(one).float(), net(rows).float()
        # several rows: the packed bf16 weights, exactly as without int4
        assert torch.equal(got_rows, plain(rows).float())
        # one row of a decoding step: the 4-bit weights, close to bf16 but not the same
        assert not torch.equal(got_one, plain(one).float())
        # one row outside a decoding step (a prompt's last token): bf16, exactly
        assert torch.equal(net(one).float(), plain(one).float())
    assert torch.allclose(got_rows, expected_rows, atol=2e-2, rtol=2e-2)
    error = (got_one - expected_one).norm() / expected_one.norm()
    assert error < 0.25, error


def test_int4_decoding_of_fp32_linears_changes_only_one_row_decoding_steps():
    """A CPU without bf16 units keeps the model in fp32: `decode_weights = "int4"` adds 4-bit
    weights for one-row decoding steps and leaves every other call on the fp32 weight, bit
    for bit."""
    from inference.int4_decode import available, decoding_step
    from inference.linear_packing import pack_linears

    if not available():
        pytest.skip("no 4-bit CPU kernels in this torch build")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.SiLU(), torch.nn.Linear(32, 16))
    plain = copy.deepcopy(net)
    one, rows = torch.randn(1, 64), torch.randn(5, 64)
    with torch.inference_mode():
        assert pack_linears(plain) == 0  # fp32 without int4: left as it is
        assert pack_linears(net, "int4") == 2
        assert net[0].int4 is not None and net[0].weight is not plain[0].weight
        with decoding_step():
            got_one, got_rows = net(one), net(rows)
        assert got_one.dtype == torch.float32
        assert torch.equal(got_rows, plain(rows))  # several rows: the fp32 weights
        assert torch.equal(net(one), plain(one))  # one row outside a decoding step: fp32
        expected = plain(one)
    assert not torch.equal(got_one, expected)  # one row of a decoding step: the 4-bit weights
    error = (got_one - expected).norm() / expected.norm()
    assert error < 0.25, error


def test_int4_weights_give_back_the_bundled_q4_1_weights(model_cache, llm):
    """The builtin model ships as Q4_1 (a scale and an offset per 32 weights), the grid the
    4-bit decode uses, so its weights come back up to bf16 rounding; random weights do not."""
    from safetensors.torch import load_file

    from inference.int4_decode import GROUP, int4_linear, int4_weights

    if not _int4_ready():
        pytest.skip("no 4-bit CPU kernels in this torch build")
    tensors = load_file(str(convert_builtin(model_cache) / "model.safetensors"))
    w = tensors["model.layers.0.mlp.down_proj.weight"].to(torch.bfloat16)
    eye = torch.eye(w.shape[1], dtype=torch.bfloat16)

    def error(weight):
        with torch.inference_mode():
            back = int4_linear(eye, int4_weights(weight), weight.shape[0], None).t().float()
        blocks = weight.float().reshape(weight.shape[0], -1, GROUP)
        step = (blocks.amax(-1) - blocks.amin(-1)).mean() / 15
        return float((back - weight.float()).abs().mean() / step)

    assert error(w) < 0.05  # the Q4_1 grid itself: only rounding remains
    assert error(torch.randn_like(w.float()).to(torch.bfloat16)) > 0.15  # ~1/4 step off


def test_int4_llm_decodes_from_4_bit_weights_and_ranks_as_without(model_cache, llm):
    """bf16 (CPUs with bf16 units, packed for oneDNN) or fp32 (the others): either way the
    ranking is that of the model's own weights, bit for bit, and the reply decodes."""
    from inference.int4_decode import available

    if not available() or (llm.model.dtype == torch.bfloat16 and not _int4_ready()):
        pytest.skip("no 4-bit CPU kernels (or no oneDNN for bf16) in this torch build")
    int4 = load_llm(LLMSettings(decode_weights="int4"), model_cache)
    assert sum(1 for m in int4.model.modules() if getattr(m, "int4", None) is not None) > 100
    plain = load_llm(LLMSettings(), model_cache)  # the reference, in int4's prefix-cache state
    prompt, labels = rerank_prompt(llm, "user: a heist thriller"), list(LABELS[: len(ITEMS)])
    assert int4.label_logprobs(prompt, labels) == plain.label_logprobs(prompt, labels)
    # with all but the last token cached, ranking runs one row, still on its own weights
    other = rerank_prompt(llm, "user: a space opera")
    for engine in (int4, plain):
        engine._cache_ids(engine._encode(other)[:-1])
    assert int4.label_logprobs(other, labels) == plain.label_logprobs(other, labels)
    reply = int4.chat_prompt("Recommend one movie like Heat, in one sentence.")
    text = int4.tokenizer.decode(list(int4.stream_ids(reply, 24, stop=None)))
    assert len(text.split()) >= 5, text


def test_decode_weights_is_refused_off_transformers():
    with pytest.raises(ValueError, match="decode_weights is a transformers option"):
        LLMSettings(backend="llamacpp", decode_weights="int4")


def test_conversion_cache_is_reused(model_cache, llm):
    first = convert_builtin(model_cache)
    assert convert_builtin(model_cache) == first
    assert isinstance(first, Path) and (first / "model.safetensors").is_file()
