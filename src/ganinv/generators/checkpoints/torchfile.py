"""Reading ``torch.save`` files safely: ``torch.load(weights_only=True)`` with errors for people."""

from __future__ import annotations

import argparse
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from ganinv.errors import CheckpointError
from ganinv.generators.checkpoints.common import _short
from ganinv.generators.checkpoints.sniff import _require_file, sniff_format
from ganinv.generators.checkpoints.unpickler import _prescan_pickle, _refusal, _refused_global_from
from ganinv.modelfile import CONFIG_NAME


def _torch_load(path: Path) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with errors for people."""
    kind = sniff_format(path)
    _require_file(path, kind, "a PyTorch checkpoint file")
    if kind == "pickle":
        raise CheckpointError(
            f"{path} is a plain Python pickle, not a PyTorch checkpoint; if it is an NVIDIA stylegan2-ada "
            f"network pickle, load it with load_nvidia_pkl (or give it to load_generator / the CLI as is)")
    if kind == "safetensors":
        raise CheckpointError(f"{path} is a safetensors file, not a PyTorch checkpoint; "
                              f"it needs a {CONFIG_NAME} beside it")
    if kind == "torch-legacy":  # five pickles (magic, version, system info, objects, storage keys), then data
        with open(path, "rb") as f:
            size = path.stat().st_size
            for _ in range(5):
                _prescan_pickle(f, size, str(path), rewind=False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.serialization.safe_globals([argparse.Namespace]):
                return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        name = _refused_global_from(exc)
        if name:
            tail = "ganinv loads PyTorch checkpoints with weights_only=True and never runs their code"
            raise _refusal(name, str(path), "the file", tail) from None
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: it is corrupt or in another "
                              f"format") from None
    except CheckpointError:
        raise
    except Exception as exc:  # torch.load raises RuntimeError, EOFError, KeyError, ... on damaged files
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint; it looks truncated or corrupt "
                              f"({_short(exc)})") from None
