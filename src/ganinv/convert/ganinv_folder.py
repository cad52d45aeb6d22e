"""Output format ``ganinv``: a ganinv model folder (:mod:`ganinv.modelfile`).

``OUT/config.json`` (architecture, ``meta`` with ``converted_from``) + ``OUT/model.safetensors``
(the generator's state dict and ``latent_avg``); a discriminator goes beside it as
``OUT/discriminator.safetensors``, described by ``config.json``'s ``"discriminator"`` entry —
the layout of the bundled models and of ``ganinv train-gan``. Any ganinv generator and
discriminator can be written.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ganinv.convert.base import SourceModel, Target
from ganinv.generators.base import Generator
from ganinv.modelfile import WEIGHTS_NAME, load_pretrained, read_config, save_pretrained

__all__ = ["DISCRIMINATOR_WEIGHTS", "GaninvFolderTarget"]

#: File name of a discriminator stored beside a generator in a ganinv folder.
DISCRIMINATOR_WEIGHTS = "discriminator.safetensors"


class GaninvFolderTarget(Target):
    """Any ganinv generator (and discriminator) as a ganinv model folder."""

    name = "ganinv"
    label = "ganinv folder"
    is_folder = True
    suffixes = ("", ".ganinv")

    def refusal(self, G: Generator) -> str | None:
        if not callable(getattr(G, "config", None)):
            return f"this {type(G).__name__} generator has no config() describing its architecture"
        return None

    def discriminator_refusal(self, D: nn.Module) -> str | None:
        if not callable(getattr(D, "config", None)):
            return f"its discriminator ({type(D).__name__}) has no config() describing its architecture"
        return None

    def write(self, source: SourceModel, path: Path, *, name: str, notices: list[str]) -> None:
        name = name.removesuffix(".ganinv")
        meta = dict(source.meta) if source.deltas is None else {}
        meta["converted_from"] = {"source": source.spec, "format": source.format,
                                  **({"deltas": str(source.deltas)} if source.deltas is not None else {})}
        extra = None
        if source.D is not None:
            save_pretrained(source.D, path, name=name, kind="discriminator", weights_name=DISCRIMINATOR_WEIGHTS,
                            write_config=False)
            extra = {"discriminator": source.D.config()}
        save_pretrained(source.G, path, name=name, kind="generator", meta=meta, weights_name=WEIGHTS_NAME,
                        extra_config=extra)

    def load_discriminator(self, path: Path) -> nn.Module | None:
        if "discriminator" not in read_config(path):
            return None
        return load_pretrained(path, weights_name=DISCRIMINATOR_WEIGHTS, config_key="discriminator")
