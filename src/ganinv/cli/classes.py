"""The class of a class-conditional generator on the command line (``--class``, class inference, the record).

* ``--class K`` is one option of :class:`ganinv.cli.groups.ModelChoice`: ``model.load()`` binds the class
  (:func:`ganinv.generators.conditional.with_class`), so every command works on the bound generator unchanged.
* ``ganinv invert`` without ``--class`` on a conditional model infers each image's class
  (:func:`prepare_inference`): a best-of-classes start (:func:`ganinv.inverters.conditional.class_start`), then the
  ordinary optimisation on an :class:`InferredClassGenerator` — in z jointly with the class logits, in W / W+
  from the best class's code (the class cannot change there: the synthesis never sees it).
* :func:`record_classes` writes the class into the result: ``class`` ``[1, c_dim]`` (probabilities) in each
  ``.npz`` and ``settings.class`` (labels, probabilities, how it was chosen) in ``summary.json``; z codes are
  written without the logits, so that ``edit`` / ``interpolate`` / ``mix`` read them with the model and re-bind
  the recorded class (:func:`ganinv.latentfiles.native.read_npz`).
"""

from __future__ import annotations

from typing import Any

import torch
from rich.markup import escape
from torch import Tensor

from ganinv.errors import InputError
from ganinv.generators.base import Generator
from ganinv.generators.conditional import ClassBoundGenerator, ClassLatentGenerator, num_classes

__all__ = ["InferredClassGenerator", "planning_view", "prepare_inference", "record_classes"]


class InferredClassGenerator(ClassLatentGenerator):
    """A :class:`ClassLatentGenerator` that also remembers the best-of-classes start of the images it inverts
    (``start_labels`` ``[B]``, ``start_losses`` ``[B, c_dim]``): their class in W / W+, where it cannot move."""

    def __init__(self, G: Generator, start_labels: Tensor, start_losses: Tensor) -> None:
        super().__init__(G)
        self.start_labels = start_labels.detach().cpu()
        self.start_losses = start_losses.detach().cpu()


def planning_view(G: Generator) -> Generator:
    """What ``ganinv invert`` plans with before the targets are read: for a conditional model without a bound
    class, the class-inference generator it will run (its z renders without a given class), else ``G``."""
    if num_classes(G) and not isinstance(G, (ClassBoundGenerator, ClassLatentGenerator)):
        return ClassLatentGenerator(G)
    return G


def prepare_inference(G: Generator, y: Tensor | list[Tensor], options: dict[str, Any], method: str) -> Generator:
    """The generator ``ganinv invert`` runs for targets ``y`` ``[B, C, H, W]`` (or a list of ``[C, H, W]``): ``G`` itself unless it is a
    conditional model without a bound class; then an :class:`InferredClassGenerator` whose start (``options["init"]``,
    unless the user gave ``--init``) is each image's best class's best code. ``options`` is updated in place.

    Raises:
        InputError: a conditional model without ``--class`` and a method other than optimize (one sentence).
    """
    c_dim = num_classes(G)
    if not c_dim or isinstance(G, ClassBoundGenerator):
        return G
    if method != "optimize":
        raise InputError(f"this generator is class-conditional ({c_dim} classes, 0…{c_dim - 1}): give --class K "
                         f"(inferring the class without it works with --method optimize)")
    from ganinv.inverters.conditional import ClassSearchSettings, class_start, start_probabilities

    space = options.get("space") or G.default_space
    if space not in ("z", "w", "w+"):
        raise InputError(f"class inference searches in z, w or w+, not {space!r}")
    seed = int(options.get("seed") or 0)
    search = ClassSearchSettings(space="z" if space == "z" else "w", seed=seed)
    y = torch.stack(list(y)) if not isinstance(y, Tensor) else y
    labels, codes, losses = class_start(G, y.to(G.device), loss=options.get("loss") or "mse", search=search)
    M = InferredClassGenerator(G, labels, losses).to(G.device)
    if "init" not in options:
        if space == "z":
            options["init"] = M.pack(codes, start_probabilities(labels, c_dim, search.start_prob).to(G.device))
        else:
            options["init"] = M.convert(codes, "w", space)
    return M


def record_classes(G: Generator, result: Any, stems: list[str], console: Any = None) -> None:
    """Record the class of each inverted target of a conditional ``G`` in ``result`` (in place; nothing for an
    unconditional model, or a conditional one inverted without class, e.g. W+ codes for editing): ``extra["class"]``
    ``[B, c_dim]`` (the ``.npz`` array ``class``), ``settings["class"]`` (``labels``, ``probs``, ``source``:
    ``given`` / ``inferred``), ``metrics["class"]``; an :class:`InferredClassGenerator`'s z codes lose their logits
    (``[B, z_dim]``). Inferred classes are printed to ``console``."""
    B = len(result)
    if isinstance(G, ClassBoundGenerator):
        probs, source = G.c.detach().cpu().expand(B, -1).clone(), "given"
    elif isinstance(G, InferredClassGenerator):
        source = "inferred"
        if result.space == "z":
            with torch.no_grad():
                probs = G.class_probs(result.latent).detach().cpu()
            result.latent = G.split(result.latent)[0].detach()
        else:
            probs = torch.nn.functional.one_hot(G.start_labels, G.c_dim).float()
    else:
        return
    labels = probs.argmax(1)
    result.extra["class"] = probs
    result.metrics["class"] = labels
    result.metrics["class_prob"] = probs.max(1).values
    result.settings = {**result.settings, "class": {
        "source": source, "labels": labels.tolist(), "probs": [[round(float(p), 6) for p in row] for row in probs],
        **({"how": "best-of-classes start, then z and the class logits optimised jointly" if result.space == "z"
            else "best-of-classes start (W/W+ codes cannot change the class)"} if source == "inferred" else {})}}
    if console is not None and source == "inferred":
        for stem, k, p in zip(stems, labels.tolist(), probs.max(1).values.tolist()):
            console.print(f"{escape(stem)}: inferred class {k} (probability {p:.2f})")
