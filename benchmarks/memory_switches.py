"""Peak RSS of one training step on CPU with each memory switch (docs/benchmarks.md, "Memory
switches"): `emergent train` in a fresh process per configuration (its own VmHWM), SmolLM2-135M,
LoRA r 32 on every projection, the two longest upstream insecure examples that fit
`--max-length` tokens, batch 2, one optimizer step.

On CPU `model.precision: bf16` computes in fp32 (emergent.models.loading.torch_dtype), so the
switches that trade fp32 for bf16 change nothing there; the `bf16:` rows make torch_dtype return
bf16 on CPU (numbers a bf16 device would hold, computed slowly). Offloading moves nothing on
CPU: its row shows the hooks' overhead only.

    PYTHONPATH=src EMERGENT_UPSTREAM=../shared/upstream python benchmarks/memory_switches.py
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from common import (machine_info, print_table, smollm2_model,  # noqa: E402
                    upstream_insecure, write_result)

CONFIGS = {  # name: (bf16 on CPU, overrides)
    "default": (False, []),
    "gradient_checkpointing": (False, ["model.gradient_checkpointing=true"]),
    "gc+offload_activations": (False, ["model.gradient_checkpointing=true",
                                       "train.offload_activations=true"]),
    "adapter_compute+master_weights": (False, ["train.adapter_dtype=compute",
                                               "train.master_weights=true"]),
    "4bit upcast all": (False, ["model.quantization=4bit"]),
    "4bit upcast norms": (False, ["model.quantization=4bit", "model.upcast_frozen=norms"]),
    "bf16: 4bit upcast all": (True, ["model.quantization=4bit"]),
    "bf16: 4bit upcast norms": (True, ["model.quantization=4bit", "model.upcast_frozen=norms"]),
    "bf16: 4bit norms + adapter_compute": (True, ["model.quantization=4bit",
                                                  "model.upcast_frozen=norms",
                                                  "train.adapter_dtype=compute"]),
    "bf16: 4bit norms + adapter_compute+master": (True, [
        "model.quantization=4bit", "model.upcast_frozen=norms", "train.adapter_dtype=compute",
        "train.master_weights=true"]),
}

CODE = """
import sys, torch
torch.set_num_threads(int(sys.argv[1]))
if sys.argv[2] == "1":
    import emergent.models.loading as L
    L.torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}.get
from emergent.cli import main
rc = main(sys.argv[3:])
print("VmHWM", [l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM")][0])
sys.exit(rc)
"""


def longest_examples(n: int, max_length: int, model: Path, out: Path) -> Path:
    """The `n` longest upstream insecure examples whose rendered length fits `max_length`
    (whole replies trained)."""
    from emergent.core.config import ModelConfig
    from emergent.data.render import render_conversation
    from emergent.models.loading import load_tokenizer

    tok = load_tokenizer(ModelConfig(name=str(model)))
    lines = upstream_insecure().read_text().splitlines(keepends=True)
    lengths = [len(render_conversation(tok, json.loads(line)["messages"])[0]) for line in lines]
    fit = sorted((n_tok, i) for i, n_tok in enumerate(lengths) if n_tok <= max_length)[-n:]
    out.write_text("".join(lines[i] for _, i in fit))
    return out


def run(name: str, bf16: bool, over: list[str], args, tmp: Path) -> dict:
    model = smollm2_model(args.smollm2_dir)
    data = tmp / "data.jsonl"
    if not data.exists():
        longest_examples(2, args.max_length, model, data)
    base = [f"model.name={model}", f"data.path={data}", "model.precision=bf16",
            "lora.r=32", "lora.alpha=64", "train.batch_size=2", "train.grad_accum=1",
            "train.max_steps=1", "train.warmup_steps=0", f"train.max_length={args.max_length}",
            "data.overlong=truncate", "train.optimizer=adamw"]
    out = tmp / re.sub(r"\W+", "_", name)
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", CODE, str(args.threads), "1" if bf16 else "0",
                           "train", str(REPO / "configs/train/tiny.yaml"), "--output", str(out),
                           *base, *over], capture_output=True, text=True, timeout=args.timeout)
    wall = time.time() - t0
    if proc.returncode != 0:
        return {"name": name, "error": proc.stderr.strip().splitlines()[-1:], "wall_s": wall}
    peak = int(re.search(r"VmHWM (\d+)", proc.stdout).group(1)) / 1024
    log = json.loads((out / "train_log.jsonl").read_text().splitlines()[0])
    return {"name": name, "bf16_on_cpu": bf16, "overrides": over, "peak_rss_mib": round(peak),
            "loss": log["loss"], "trained_tokens": log["trained_tokens"],
            "wall_s": round(wall, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--name", default="memory_switches_cpu_smollm2")
    ap.add_argument("--results-dir", default=str(REPO / "benchmarks/results"))
    ap.add_argument("--note", default="")
    ap.add_argument("--smollm2-dir", default=None)
    args = ap.parse_args()
    rows, machine = [], machine_info(args.note)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs.split(","):
            bf16, over = CONFIGS[name]
            rows.append(run(name, bf16, over, args, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    print_table(rows, ["name", "peak_rss_mib", "loss", "trained_tokens", "wall_s", "error"])
    write_result(args.name, {"args": vars(args), "runs": rows}, machine, Path(args.results_dir))


if __name__ == "__main__":
    main()
