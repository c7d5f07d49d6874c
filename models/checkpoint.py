"""Versioned model directories: `<model_dir>/<name>/v<NNNN>/{model.safetensors, card.json}`.

A version is written into a temporary folder and renamed into place, so a reader never sees
half a checkpoint. The card is plain JSON: data, settings, metrics, created time, version.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "card.json"
_VERSION = re.compile(r"^v([0-9]+)$")


@dataclass(frozen=True)
class Checkpoint:
    """A loaded version: tensors (on CPU), its card and where it lives."""

    path: Path
    version: int
    tensors: dict[str, torch.Tensor]
    card: dict[str, Any]


def version_dirs(root: Path | str) -> list[Path]:
    """The `v<N>` folders in `root`, oldest first by number (v10000 after v9999, as text it is before)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _VERSION.match(p.name))]
    return [p for _, p in sorted(found, key=lambda pair: pair[0])]


def _versions(root: Path) -> list[int]:
    return [int(p.name[1:]) for p in version_dirs(root)]


def latest_version(model_dir: Path | str, name: str) -> int | None:
    """Highest version number saved under `<model_dir>/<name>`, or None when there is none."""
    found = _versions(Path(model_dir) / name)
    return found[-1] if found else None


def version_path(model_dir: Path | str, name: str, version: int) -> Path:
    return Path(model_dir) / name / f"v{version:04d}"


def save_checkpoint(model_dir: Path | str, name: str, tensors: dict[str, torch.Tensor], card: dict[str, Any]) -> Path:
    """Write the next version of `name`; returns its folder. Tensors are saved contiguous on CPU."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"model name {name!r} must be letters, digits, '_', '.' or '-'")
    root = Path(model_dir) / name
    root.mkdir(parents=True, exist_ok=True)
    plain = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    while True:
        version = (latest_version(model_dir, name) or 0) + 1
        final = version_path(model_dir, name, version)
        tmp = Path(tempfile.mkdtemp(prefix=f".v{version:04d}-", dir=root))
        try:
            save_file(plain, str(tmp / WEIGHTS_FILE))
            full_card = {
                **card,
                "name": name,
                "version": version,
                "created": card.get("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())),
                "tensors": {k: list(v.shape) for k, v in plain.items()},
            }
            (tmp / CARD_FILE).write_text(json.dumps(full_card, indent=2, sort_keys=True, default=str))
            os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only; readers may be other users
            os.rename(tmp, final)  # fails if another writer took this version: retry with the next
            return final
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not final.exists():
                raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def load_checkpoint(path: Path | str) -> Checkpoint:
    """Load a version folder (or `<model_dir>/<name>`, meaning its latest version)."""
    path = Path(path)
    if not (path / CARD_FILE).is_file():
        found = version_dirs(path)
        if not found:
            raise FileNotFoundError(f"no checkpoint at {path}: expected {CARD_FILE} or v<NNNN>/ folders")
        path = found[-1]
    card = json.loads((path / CARD_FILE).read_text())
    tensors = load_file(str(path / WEIGHTS_FILE))
    return Checkpoint(path=path, version=int(card.get("version", 0)), tensors=tensors, card=card)
