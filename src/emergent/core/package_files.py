"""Files shipped inside the package: configs (`emergent/configs/`), the upstream data manifests
(`emergent/manifests/`) and the toy-world base models (`emergent/resources/toyworld/`).

Read through `importlib.resources`, so the same code finds them in a checkout (editable install;
the checkout's top-level `configs/` is a symlink to `src/emergent/configs/`) and in an installed
wheel (site-packages)."""
from __future__ import annotations

from importlib import resources
from pathlib import Path


def package_path(*parts: str) -> Path:
    """A file or folder shipped inside the `emergent` package, as a filesystem path (the package
    is always installed as plain files, never imported from a zip)."""
    return Path(str(resources.files("emergent").joinpath(*parts)))
