"""Sampling throughput: the package's batched sampler (`emergent.sample.sampler.sample_questions`:
all samples of a prompt in one `generate` call, left padding, KV cache) vs the loop a user
would write first: one `model.generate` call per answer.

Same model, same prompts (the paper's 8 main questions, first paraphrase, from upstream
first_plot_questions.yaml), same sampling settings (temperature 1, top_p 1, max_new_tokens).
The sequential loop is timed on the first `--sequential-samples` answers of each prompt
(it is a rate: answers per second), the batched sampler on `--samples` per prompt.
Random-init models rarely emit the end-of-turn token, so nearly every answer runs to
max_new_tokens in both; generated tokens per second are reported too.

    PYTHONPATH=src python benchmarks/sample_throughput.py
    PYTHONPATH=src python benchmarks/sample_throughput.py --models tiny,50m --samples 100
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

import common  # noqa: F401
from common import (PeakRSS, build_model, count_params, cuda_peak_mib, cuda_peak_reset,
                    device_suffix, machine_info, print_table, upstream_insecure, write_result)

TARGETS = {"speedup_vs_sequential": 10.0}


def main_questions(samples: int):
    from emergent.data.questions import load_suite

    path = upstream_insecure().parent / "first_plot_questions.yaml"
    qs = load_suite(path)[:8]
    return [dataclasses.replace(q, paraphrases=q.paraphrases[:1], samples_per_paraphrase=samples)
            for q in qs]


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_batched(model, tok, questions, cfg, work: Path) -> dict:
    from emergent.core.io import read_jsonl
    from emergent.sample.sampler import sample_questions

    out = work / "answers.jsonl"
    out.unlink(missing_ok=True)
    cuda_peak_reset()
    with PeakRSS() as mem:
        _sync()
        t0, c0 = time.perf_counter(), time.process_time()
        n = sample_questions(model, tok, questions, out, suite="bench", arm="base", seed=0,
                             model_name="bench", adapter=None, cfg=cfg, progress=False)
        _sync()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rows = read_jsonl(out)
    return _rates("batched", n, sum(r["n_tokens"] for r in rows),
                  sum(r["finish_reason"] == "stop" for r in rows), wall, cpu, mem)


def run_sequential(model, tok, questions, cfg, per_prompt: int) -> dict:
    """One generate call per answer, as in a plain `for` loop."""
    import torch

    from emergent.sample.sampler import prompt_messages

    tok.padding_side = "left"
    n = tokens = stops = 0
    cuda_peak_reset()
    with PeakRSS() as mem:
        _sync()
        t0, c0 = time.perf_counter(), time.process_time()
        for q in questions:
            prompt = tok.apply_chat_template(prompt_messages(q, q.paraphrases[0]), tokenize=False,
                                             add_generation_prompt=True)
            enc = tok(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
            for s in range(per_prompt):
                torch.manual_seed(s)
                with torch.no_grad():
                    out = model.generate(**enc, do_sample=True, temperature=cfg.temperature,
                                         top_p=cfg.top_p, top_k=None,
                                         max_new_tokens=cfg.max_new_tokens,
                                         pad_token_id=tok.pad_token_id,
                                         eos_token_id=tok.eos_token_id)
                gen = out[0, enc["input_ids"].shape[1]:].tolist()
                if tok.eos_token_id in gen:
                    gen = gen[:gen.index(tok.eos_token_id) + 1]
                    stops += 1
                tok.decode(gen, skip_special_tokens=True)
                n += 1
                tokens += len(gen)
        _sync()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return _rates("sequential", n, tokens, stops, wall, cpu, mem)


def _rates(name, n, tokens, stops, wall, cpu, mem) -> dict:
    return {"method": name, "answers": n, "generated_tokens": tokens, "stopped_at_eos": stops,
            "seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
            "answers_per_s": round(n / wall, 3), "answers_per_cpu_s": round(n / cpu, 3),
            "tokens_per_s": round(tokens / wall, 1), "peak_rss_mib": mem.peak_mib,
            "peak_cuda_mib": cuda_peak_mib()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="tiny", help="comma list of: tiny, 50m")
    p.add_argument("--samples", type=int, default=50,
                   help="answers per prompt for the batched sampler (the paper: 100)")
    p.add_argument("--sequential-samples", type=int, default=4,
                   help="answers per prompt timed for the one-at-a-time loop")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=100, help="sampler batch size")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = default)")
    p.add_argument("--note", default=None)
    p.add_argument("--name", default=None)
    p.add_argument("--results-dir", default=None)
    a = p.parse_args(argv)

    import torch

    from emergent.core.config import ModelConfig
    from emergent.models.loading import load_for_inference
    from emergent.sample.sampler import SamplingConfig

    if a.threads and not torch.cuda.is_available():
        torch.set_num_threads(a.threads)
    machine = machine_info(a.note)
    cfg = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=a.max_new_tokens,
                         batch_size=a.batch_size, seed=0)
    questions = main_questions(a.samples)
    results, ratios = [], []
    work = Path(tempfile.mkdtemp(prefix="emergent-bench-sample-"))
    try:
        for name in [m.strip() for m in a.models.split(",") if m.strip()]:
            model_dir = build_model(name, work / f"model-{name}")
            model, tok = load_for_inference(ModelConfig(name=str(model_dir), precision="bf16"))
            run_sequential(model, tok, questions[:1], dataclasses.replace(cfg, max_new_tokens=4), 1)
            by = {}
            for r in (run_sequential(model, tok, questions, cfg, a.sequential_samples),
                      run_batched(model, tok, questions, cfg, work)):
                r.update(model=name, parameters=count_params(model_dir), prompts=len(questions))
                print(r)
                results.append(r)
                by[r["method"]] = r
            ratios.append({
                "model": name,
                "speedup_answers_per_s": round(by["batched"]["answers_per_s"]
                                               / by["sequential"]["answers_per_s"], 2),
                "speedup_answers_per_cpu_s": round(by["batched"]["answers_per_cpu_s"]
                                                   / by["sequential"]["answers_per_cpu_s"], 2),
                "speedup_tokens_per_s": round(by["batched"]["tokens_per_s"]
                                              / by["sequential"]["tokens_per_s"], 2)})
            ratios[-1]["meets_target"] = (ratios[-1]["speedup_answers_per_s"]
                                          >= TARGETS["speedup_vs_sequential"])
            del model
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print_table(results, ["model", "method", "answers", "generated_tokens", "seconds",
                          "answers_per_s", "answers_per_cpu_s", "tokens_per_s", "peak_rss_mib",
                          "peak_cuda_mib"])
    print()
    print_table(ratios, list(ratios[0]))
    write_result(a.name or "sample_throughput" + device_suffix(),
                 {"args": vars(a), "targets": TARGETS, "runs": results, "ratios": ratios,
                  "models_note": "random-init models built offline; speed numbers only"},
                 machine, a.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
