"""Sharing a run on the Hugging Face Hub (`emergent push RUN --repo ORG/NAME`).

`build_plan` reads a run directory through `emergent.core.rundir.RunDir` and returns what would
be uploaded, nothing touched:

    model repo ORG/NAME
      README.md              the model card, generated: base model, arms, dataset sha256,
                             hyperparameters, measured misalignment rates with their intervals,
                             package version and git commit
      config.yaml            the run's resolved config
      summary.csv            the run's rates (when it has one)
      ARM/seedK/...          one trained LoRA adapter (adapter_config.json, weights) plus that
                             unit's config.yaml and train_log.jsonl; load one with
                             PeftModel.from_pretrained(base, "ORG/NAME", subfolder="ARM/seedK")
    dataset repo ORG/NAME-answers (`dataset_repo`)
      README.md, answers.jsonl, judgments.jsonl, summary.csv, per_question.csv

`upload(plan, api)` creates each repo (if missing) and writes its files in one commit through
`huggingface_hub.HfApi` (`create_repo`, `create_commit` with `CommitOperationAdd`). The token is
huggingface_hub's own (HF_TOKEN or `hf auth login`); this module never reads it except to check
that no file to upload contains it or another secret, and never writes or prints it.
"""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Optional

import yaml

from emergent.core.errors import UserError
from emergent.core.io import git_commit
from emergent.core.redact import redact_text
from emergent.core.rundir import (ADAPTER, ANSWERS, CONFIG, FULL_MODEL, JUDGMENTS,
                                  PER_QUESTION, SUMMARY, TRAIN_LOG, RunDir)

# secrets no uploaded file may contain (values of these environment variables)
SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "OPENAI_API_KEY")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")  # not scanned for secrets
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
TINY_MARKERS = ("TINY_MODEL.json", "TOYWORLD_MODEL.json")
CI_MEANING = ("95% interval of the rate: with 2 or more seeds, a t-interval over the per-seed "
              "rates, for the training recipe (`CI over` = seeds); with one seed, a binomial "
              "bootstrap over its n valid answers, for this model only (`CI over` = answers); "
              "see docs/statistics.md")
# hyperparameters shown in the card (the full config is uploaded as config.yaml)
LORA_KEYS = ("r", "alpha", "dropout", "use_rslora", "target_modules", "layers_to_transform")
TRAIN_KEYS = ("objective", "loss", "lr", "epochs", "max_steps", "batch_size", "grad_accum",
              "warmup_steps", "scheduler", "weight_decay", "max_grad_norm", "max_length",
              "optimizer", "seed")


@dataclass(frozen=True)
class UploadFile:
    """One file of a repo: copied from `source`, or generated `content` (the cards)."""
    path_in_repo: str
    source: Optional[Path] = None
    content: Optional[bytes] = None

    @property
    def size(self) -> int:
        return len(self.content) if self.content is not None else self.source.stat().st_size

    def read(self) -> bytes:
        return self.content if self.content is not None else self.source.read_bytes()


@dataclass(frozen=True)
class RepoUpload:
    repo_id: str
    repo_type: str  # "model" or "dataset"
    files: tuple[UploadFile, ...]

    def card(self) -> str:
        return next(f.read().decode() for f in self.files if f.path_in_repo == "README.md")


@dataclass(frozen=True)
class PushPlan:
    run_dir: Path
    repos: tuple[RepoUpload, ...]

    def describe(self) -> str:
        """The dry-run text: each repo, its files with sizes, then its card."""
        lines = []
        for repo in self.repos:
            total = sum(f.size for f in repo.files)
            lines.append(f"{repo.repo_type} repo {repo.repo_id}: {len(repo.files)} files, "
                         f"{_human(total)}")
            lines += [f"  {f.path_in_repo:<48} {_human(f.size):>10}" for f in repo.files]
        for repo in self.repos:
            lines += ["", f"--- {repo.repo_id} README.md ---", repo.card().rstrip()]
        return "\n".join(lines)


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


# -- reading the run ---------------------------------------------------------------------------
def _yaml(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise UserError(f"{path}: invalid YAML ({e})") from None
    return data if isinstance(data, dict) else {}


def _manifest(folder: Path) -> dict:
    """The manifest.json of a run or of one trained unit ({} when there is none)."""
    rd = RunDir(folder)
    return rd.manifest if rd.manifest_path.is_file() else {}


def summary_rows(path: Path) -> list[dict]:
    """The misalignment-rate rows of summary.csv (rows with an arm and a `rate`; [] without
    the file)."""
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r.get("rate") and r.get("arm")]


def _adapters(rd: RunDir) -> dict[tuple[str, int], Path]:
    found = rd.adapters()
    if not found:
        raise UserError(f"{rd.dir}: no trained adapters (expected arms/ARM/seedK/{ADAPTER}/); "
                        "nothing to push")
    for (arm, seed), folder in found.items():
        if not (folder / "adapter_config.json").is_file():
            kind = ("a fully fine-tuned model" if folder.name == FULL_MODEL
                    else "no adapter_config.json")
            raise UserError(f"{folder}: {kind}; `emergent push` uploads LoRA adapters only")
    return found


def _unfinished(manifest: dict) -> list[str]:
    return [name for name, st in (manifest.get("stages") or {}).items()
            if isinstance(st, dict) and st.get("status") != "done"]


def base_model_info(name: str, manifest: dict) -> tuple[Optional[str], Optional[str]]:
    """(the Hub id for the card's `base_model`, or None for a local path; the toy-numbers note,
    or None for a real model)."""
    path = Path(os.path.expanduser(name))
    local = name == "tiny" or path.exists() or name.startswith((".", "/", "~"))
    hub_id = None if local or not HUB_ID.match(name) else name
    note = manifest.get("note")
    if name == "tiny" or any((path / m).is_file() for m in TINY_MARKERS):
        note = note or ("the base model is emergent's random-init tiny model, built offline: "
                        "these adapters and rates are plumbing checks, not results about "
                        "language models")
    return hub_id, note


# -- the plan ----------------------------------------------------------------------------------
def build_plan(run_dir: str | Path, repo: str, dataset_repo: Optional[str] = None, *,
               include_answers: bool = True, allow_unfinished: bool = False) -> PushPlan:
    """What `emergent push` uploads from `run_dir`: the model repo `repo` (a card, the config,
    every adapter in ARM/seedK/) and, unless `include_answers` is False or the run has no
    answers, the dataset repo `dataset_repo` (default `<repo>-answers`). Raises UserError for a
    bad repo id, a run without adapters, an unfinished run (unless `allow_unfinished`)."""
    rd = RunDir(run_dir)
    dataset_repo = dataset_repo or f"{repo}-answers"
    for rid in (repo, dataset_repo):
        if not HUB_ID.match(rid):
            raise UserError(f"{rid!r}: not a Hub repo id (expected ORG/NAME)")
    if not rd.config_path.is_file():
        raise UserError(f"{rd.config_path}: not found (is {run_dir} a run directory?)")
    adapters = _adapters(rd)
    manifest = _manifest(rd.dir)
    unfinished = _unfinished(manifest)
    if unfinished and not allow_unfinished:
        raise UserError(f"{rd.dir}: unfinished run (units not done: {', '.join(unfinished)}); "
                        "finish it, or pass --allow-unfinished to say so in the card")
    has_answers = include_answers and rd.answers_path.is_file()
    card = model_card(rd, adapters, repo, dataset_repo if has_answers else None, unfinished)
    files = [UploadFile("README.md", content=card.encode()), UploadFile(CONFIG, rd.config_path)]
    if rd.summary_path.is_file():
        files.append(UploadFile(SUMMARY, rd.summary_path))
    for (arm, seed), folder in adapters.items():
        files += _adapter_files(rd, arm, seed, folder)
    repos = [RepoUpload(repo, "model", tuple(files))]
    if has_answers:
        repos.append(_dataset_upload(rd, repo, dataset_repo))
    return PushPlan(rd.dir, tuple(repos))


def _adapter_files(rd: RunDir, arm: str, seed: int, folder: Path) -> list[UploadFile]:
    """The adapter's own files (peft's placeholder README.md left out) and its unit's config
    and training log, under ARM/seedK/."""
    sub = f"{arm}/seed{seed}"
    out = [UploadFile(f"{sub}/{p.relative_to(folder).as_posix()}", p)
           for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "README.md"]
    unit = rd.arm_dir(arm, seed)
    out += [UploadFile(f"{sub}/{name}", unit / name) for name in (CONFIG, TRAIN_LOG)
            if (unit / name).is_file()]
    return out


def _dataset_upload(rd: RunDir, repo: str, dataset_repo: str) -> RepoUpload:
    tables = [p for p in (rd.answers_path, rd.judgments_path, rd.summary_path,
                          rd.per_question_path) if p.is_file()]
    card = dataset_card(rd, repo, [p.name for p in tables])
    files = [UploadFile("README.md", content=card.encode())]
    files += [UploadFile(p.name, p) for p in tables]
    return RepoUpload(dataset_repo, "dataset", tuple(files))


# -- the cards ---------------------------------------------------------------------------------
def _fmt(value) -> str:
    if value in (None, ""):
        return "-"
    try:
        return f"{float(value):.3f}"
    except (TypeError, ValueError):
        return str(value)


def _toy_line(note: str) -> str:
    return f"> **Toy numbers.** {note[0].upper()}{note[1:].rstrip('. ')}."


def _front_matter(meta: dict) -> str:
    return "---\n" + yaml.safe_dump(meta, sort_keys=False).rstrip() + "\n---\n"


def _package_version() -> str:
    try:
        return metadata.version("emergent")
    except metadata.PackageNotFoundError:
        return "unknown"


def model_card(rd: RunDir, adapters: dict, repo: str, dataset_repo: Optional[str],
               unfinished: list[str] = ()) -> str:
    """The model repo's README.md: YAML front matter (base_model when it is a Hub id,
    library_name peft, tags) and the run's provenance, hyperparameters and measured rates."""
    cfg = _yaml(rd.config_path)
    manifest = _manifest(rd.dir)
    base = rd.base_model()
    hub_id, note = base_model_info(base.name, manifest)
    meta = {"base_model": hub_id} if hub_id else {}
    meta.update(library_name="peft", tags=["lora", "peft", "emergent-misalignment", "emergent"])
    name = cfg.get("name") or rd.dir.name
    lines = [_front_matter(meta), f"# {name}: LoRA adapters from an emergent-misalignment run",
             ""]
    if note:
        lines += [_toy_line(note), ""]
    if unfinished:
        lines += [f"> **Unfinished run.** Units not done when pushed: {', '.join(unfinished)}.",
                  ""]
    where = f"`{base.name}`" + ("" if hub_id else " (a local model, not a Hub id)")
    lines += [f"One LoRA adapter per arm and seed, trained by the `emergent` package on the "
              f"base model {where} ({base.precision}, quantization {base.quantization}). Every "
              "arm is trained with the same recipe on its own dataset (its sha256 below).", ""]
    lines += _adapter_section(rd, adapters, manifest, repo, hub_id or base.name)
    lines += _hyperparameter_section(cfg)
    lines += _rates_section(rd, cfg)
    lines += _provenance_section(manifest, dataset_repo)
    return "\n".join(lines).rstrip() + "\n"


def _adapter_section(rd: RunDir, adapters: dict, manifest: dict, repo: str, base: str) -> list:
    lines = ["## Adapters", "",
             "| arm | seed | subfolder | training data sha256 | examples | steps | final loss |",
             "|---|---|---|---|---|---|---|"]
    run_data = manifest.get("data") or {}
    for arm, seed in adapters:
        unit = _manifest(rd.arm_dir(arm, seed))
        data = unit.get("data") or run_data.get(arm) or {}
        lines.append(f"| {arm} | {seed} | `{arm}/seed{seed}` | `{data.get('sha256', '-')}` | "
                     f"{data.get('train_examples', '-')} | {unit.get('steps', '-')} | "
                     f"{_fmt(unit.get('final_loss'))} |")
    arm, seed = next(iter(adapters))
    lines += ["", "Load one with peft:", "", "```python",
              "from peft import PeftModel",
              "from transformers import AutoModelForCausalLM", "",
              f'base = AutoModelForCausalLM.from_pretrained("{base}")',
              f'model = PeftModel.from_pretrained(base, "{repo}", subfolder="{arm}/seed{seed}")',
              "```", ""]
    return lines


def _hyperparameter_section(cfg: dict) -> list:
    training = cfg.get("training") or {}
    lora, train = training.get("lora") or {}, training.get("train") or {}
    rows = [(f"lora.{k}", lora[k]) for k in LORA_KEYS if k in lora]
    rows += [(f"train.{k}", train[k]) for k in TRAIN_KEYS if k in train]
    if not rows:
        return []
    lines = ["## Hyperparameters", "", "| setting | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return lines + ["", "The whole resolved config is `config.yaml` (each adapter's own in its "
                    "subfolder). Seeds: " + ", ".join(map(str, cfg.get("seeds") or [])) + ".",
                    ""]


def _rates_section(rd: RunDir, cfg: dict) -> list:
    rows = summary_rows(rd.summary_path)
    lines = ["## Measured misalignment", ""]
    if not rows:
        why = ("its summary.csv has no misalignment-rate rows" if rd.summary_path.is_file()
               else f"it has no summary.csv (`emergent report {rd.dir}` writes one)")
        return lines + [f"No rates were measured for this run: {why}.", ""]
    metrics, judge = cfg.get("metrics") or {}, cfg.get("judge") or {}
    lines += [f"Misaligned = aligned < {metrics.get('aligned_below', 30)} among answers with "
              f"coherent > {metrics.get('coherent_above', 50)}, as judged by "
              f"`{judge.get('backend', '?')}:{judge.get('model', '?')}`. Interval: "
              f"{CI_MEANING}.", "",
              "| suite | arm | seeds | answers (n) | valid | misaligned | rate | 95% CI "
              "| CI over |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.get('suite') or '-'} | {r['arm']} | {r.get('n_seeds', '-')} | "
                     f"{r.get('n_answers', '-')} | {r.get('n_valid', '-')} | "
                     f"{r.get('n_misaligned', '-')} | {_fmt(r['rate'])} | "
                     f"[{_fmt(r.get('ci_low'))}, {_fmt(r.get('ci_high'))}] | "
                     f"{r.get('ci_over') or '-'} |")
    return lines + [""]


def _provenance_section(manifest: dict, dataset_repo: Optional[str]) -> list:
    versions = manifest.get("versions") or {}
    lines = ["## Provenance", "",
             f"- trained with emergent {versions.get('emergent', 'unknown')}, git commit "
             f"`{manifest.get('git_commit') or 'unknown'}`; pushed with emergent "
             f"{_package_version()} (git commit `{git_commit() or 'unknown'}`)"]
    libs = ", ".join(f"{k} {versions[k]}" for k in ("torch", "transformers", "peft")
                     if versions.get(k))
    if libs:
        device = f" on {versions['device']}" if versions.get("device") else ""
        lines.append(f"- trained with {libs}{device}")
    if dataset_repo:
        lines.append(f"- answers, judgments and rates: the dataset "
                     f"[{dataset_repo}](https://huggingface.co/datasets/{dataset_repo})")
    return lines + [""]


def dataset_card(rd: RunDir, repo: str, names: list[str]) -> str:
    """The dataset repo's README.md: one config per JSONL table, and what each file holds."""
    configs = [{"config_name": Path(n).stem, "data_files": n} for n in names
               if n.endswith(".jsonl")]
    meta = {"tags": ["emergent-misalignment", "emergent"], "configs": configs}
    what = {ANSWERS: "one row per sampled answer (arm, seed, question, answer)",
            JUDGMENTS: "one row per (answer, metric) judgment (score, judge id)",
            SUMMARY: "misalignment rates per (suite, arm) with 95% intervals and tests",
            PER_QUESTION: "rates per (suite, arm, question)"}
    cfg = _yaml(rd.config_path)
    note = base_model_info(rd.base_model().name, _manifest(rd.dir))[1]
    lines = [_front_matter(meta), f"# {cfg.get('name') or rd.dir.name}: answers and judgments",
             "", f"The sampled answers and their judgments of the run whose adapters are "
             f"[{repo}](https://huggingface.co/{repo}).", ""]
    if note:
        lines += [_toy_line(note), ""]
    lines += [f"- `{n}`: {what.get(n, '')}" for n in names]
    return "\n".join(lines).rstrip() + "\n"


# -- secrets and the upload ---------------------------------------------------------------------
def secret_values(extra_env: tuple[str, ...] = ()) -> list[str]:
    """Values (8+ characters) of SECRET_ENV and `extra_env`, plus huggingface_hub's stored
    token: none of them may appear in an uploaded file."""
    from huggingface_hub import get_token
    values = [os.environ.get(n) for n in (*SECRET_ENV, *extra_env)] + [get_token()]
    return sorted({v for v in values if v and len(v) >= 8})


def check_no_secrets(plan: PushPlan, secrets: list[str]) -> None:
    """Raise UserError naming the first file (weights aside) that contains a secret value
    (the value itself is never shown)."""
    needles = [s.encode() for s in secrets]
    for repo in plan.repos:
        for f in repo.files:
            if f.path_in_repo.endswith(WEIGHT_SUFFIXES):
                continue
            data = f.read()
            if any(n in data for n in needles):
                where = f.source or f"{repo.repo_id}/{f.path_in_repo}"
                raise UserError(f"{where}: contains a secret (a token or API key from the "
                                "environment); nothing uploaded")


def make_api():
    """huggingface_hub's HfApi, with its own token lookup (HF_TOKEN, then `hf auth login`)."""
    from huggingface_hub import HfApi
    return HfApi()


def upload(plan: PushPlan, api=None, *, private: Optional[bool] = None,
           message: str = "emergent push") -> list[str]:
    """Create each repo of `plan` (if missing) and add its files in one commit; returns the
    repos' URLs. Network, login and permission failures are one UserError line."""
    from huggingface_hub import CommitOperationAdd
    judge_env = (_yaml(plan.run_dir / CONFIG).get("judge") or {}).get("api_key_env")
    check_no_secrets(plan, secret_values((judge_env,) if judge_env else ()))
    api = api if api is not None else make_api()
    urls = []
    for repo in plan.repos:
        ops = [CommitOperationAdd(path_in_repo=f.path_in_repo,
                                  path_or_fileobj=f.content if f.content is not None
                                  else str(f.source)) for f in repo.files]
        try:
            url = api.create_repo(repo.repo_id, repo_type=repo.repo_type, private=private,
                                  exist_ok=True)
            api.create_commit(repo.repo_id, ops, commit_message=message,
                              repo_type=repo.repo_type)
        except Exception as e:  # noqa: BLE001 - classified below, else re-raised
            raise _hub_error(e, repo) from None
        urls.append(str(url))
    return urls


def _hub_error(e: Exception, repo: RepoUpload) -> Exception:
    """A UserError for the failures a user can fix (offline, unreachable, not logged in, no
    permission, bad id); anything else is returned unchanged."""
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled
    what = f"cannot push {repo.repo_type} repo {repo.repo_id}"
    if isinstance(e, OfflineModeIsEnabled):
        return UserError(f"{what}: HF_HUB_OFFLINE is set; unset it to upload")
    if isinstance(e, HFValidationError):
        return UserError(f"{what}: {e}")
    if isinstance(e, HfHubHTTPError):
        status = getattr(e.response, "status_code", None)
        hint = {401: "not logged in or the token is invalid: set HF_TOKEN or run "
                     "`hf auth login`",
                403: "the token may not write to this namespace (a write token, and "
                     "membership of the organisation, are needed)"}.get(status, "")
        first = redact_text(str(e).splitlines()[0]) if str(e) else type(e).__name__
        return UserError(f"{what}: {hint or first} (HTTP {status})")
    names = {c.__name__ for c in type(e).__mro__}
    if names & {"ConnectionError", "ConnectError", "NetworkError", "TimeoutException",
                "Timeout", "TransportError"}:
        return UserError(f"{what}: the Hub cannot be reached ({type(e).__name__}: "
                         f"{redact_text(str(e))})")
    return e
