"""`recochat bench` end to end on the demo catalog (two turns, no scaling: seconds, not minutes)."""

from __future__ import annotations

import json

from recochat.cli import main


def test_bench_json_report_has_the_contract_keys(demo_home, model_cache, tmp_path, capsys):
    models = demo_home / "models"
    if not models.exists():  # reuse the session's converted model instead of converting again
        models.symlink_to(model_cache, target_is_directory=True)
    out = tmp_path / "bench"
    argv = ["bench", "--home", str(demo_home), "--turns", "2", "--no-scaling", "--json"]
    assert main([*argv, "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)

    assert set(report["turn_ms"]) >= {"p50", "p95"}
    assert report["first_rec_ms"]["p50"] <= report["turn_ms"]["p95"]
    assert report["naive_turn_ms"]["p50"] > 0
    assert report["ratio_turn_p50"] == round(
        report["turn_ms"]["p50"] / report["naive_turn_ms"]["p50"], 3
    )
    assert set(report["retrieval_ms_at"]) == {"1000", "10000", "100000"}  # null: not measured
    assert report["turns"] == 2
    assert report["out_of_catalog_rate"]["ours"] == 0.0
    assert set(report["stages_ms"]) >= {"state", "embedding", "chroma_query", "rerank_prefill"}
    assert report["peak_rss_mb"] > 0
    assert json.loads((out / "bench.json").read_text()) == report
    assert (out / "latency.png").stat().st_size > 0


def test_naive_out_of_catalog_counts_only_named_titles():
    from evaluation.naive_rag import named_titles

    answer = (
        "Title: The Heat Movie (2022)\nGenre: horror, suspense\n"
        "1. Collateral (2004) - a tense night in L.A.\n2. **Toy Story**\n"
        'Or try "Paddington", because it is gentle.'
    )
    assert named_titles(answer) == ["The Heat Movie", "Collateral", "Toy Story", "Paddington"]
    assert named_titles("I think you would enjoy something calm tonight.") == []


def test_bench_scaling_only_loads_no_llm(tmp_path, capsys):
    out = tmp_path / "scaling"
    argv = ["bench", "--home", str(tmp_path / "home"), "--no-latency", "--scaling"]
    assert main([*argv, "--scaling-sizes", "40", "--json", "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [p["size"] for p in report["scaling"]] == [40]
    assert set(report["retrieval_ms_at"]) == {"40"} and len(report["load_avg"]) == 2
    assert json.loads((out / "bench.json").read_text()) == report
    assert (out / "scaling.png").stat().st_size > 0


def test_backend_configurations_are_engines_a_split_or_transformers_at_int4(tmp_path, capsys):
    from evaluation.backend_bench import _known

    for name in (
        "transformers",
        "llamacpp+transformers",
        "transformers@int4",
        "transformers+llamacpp@int4",
    ):
        assert _known(name), name
    for name in ("vllm", "llamacpp@int4", "transformers@int8", "a+b+c"):
        assert not _known(name), name
    # a bad configuration is one line naming the choices, before anything runs
    code = main(["bench", "--backends", "transformers,llamacpp@int4", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "transformers@int4" in err and "Traceback" not in err
