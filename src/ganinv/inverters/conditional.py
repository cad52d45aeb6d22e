"""Inversion into class-conditional generators: with the class given, or inferred (Huh et al., ECCV 2020).

* :func:`invert_with_class` — the label is known: every method of :func:`ganinv.inverters.invert` runs on
  :func:`~ganinv.generators.conditional.with_class` (the class's mean w is the start and the prior's mean).
* :func:`infer_class` — the label is unknown ("Transforming and projecting images into class-conditional
  generative networks"): a **best-of-classes start** — every class renders its mean w and a few mapped z, each
  target keeps its best (class, code) by the loss — then, in z, the class is optimised **jointly** with the
  latent as a soft mixture ``softmax(logits)`` initialised at the best class. The joint optimisation is the
  ordinary engine (:func:`ganinv.inverters.optimize.optimize`) on a
  :class:`~ganinv.generators.conditional.ClassLatentGenerator`, whose z is ``concat(z, logits)``: every row
  carries its own class, so batching, restarts, per-row stopping and L-BFGS work unchanged.

What the class means in W / W+: the synthesis never sees the class — it enters only through the mapping. So an
inversion in W or W+ cannot move the class; it only decides where the search starts (the best class's best code)
and which class's mean w the latent prior pulls towards. :func:`infer_class` in W/W+ therefore reports the
best-of-classes choice, with probability 1 by construction (``start_losses`` holds each class's evidence), and
optimises each target's code with that class bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch
from torch import Tensor

from ganinv.errors import InputError
from ganinv.generators.base import Generator
from ganinv.generators.conditional import (CLASS_MEAN_SAMPLES, ClassLatentGenerator, class_mean_w, num_classes,
                                           unwrap, with_class)
from ganinv.inverters.base import InversionResult
from ganinv.inverters.optimize import OptimizeSettings, _check_target, _FrozenGenerator, _operator, optimize
from ganinv.losses import CombinedLoss

__all__ = ["ClassInference", "ClassSearchSettings", "class_start", "infer_class", "invert_with_class",
           "start_probabilities"]


def invert_with_class(G: Generator, target: Tensor, physics: Any = None, *,
                      label: int | Sequence[float] | Tensor, method: str = "optimize",
                      mean_samples: int = CLASS_MEAN_SAMPLES, **invert_kwargs: Any) -> InversionResult:
    """Invert ``target`` into conditional ``G`` with a known class.

    Args:
        G: a class-conditional generator (or one already bound: the class is re-bound).
        target: images ``[B, C, H, W]`` in [0, 1] (observations with ``physics``).
        label: an int in ``[0, c_dim)`` or a ``[c_dim]`` probability vector, for every target.
        method, invert_kwargs: as :func:`ganinv.inverters.invert` (``method``, settings, options, encoder, …).
        mean_samples: z samples averaged for the class's mean w (the start and the prior's mean).

    Returns:
        the method's :class:`InversionResult`, plus ``metrics["class"]`` (``[B]`` long, the argmax class) and
        ``metrics["class_prob"]`` (``[B]``, its probability: 1 for an int label), ``settings["class"]``. Its W / W+
        codes render with ``G`` itself (no class needed); z codes need the class (``with_class(G, label)``).

    Raises:
        InputError: an unconditional generator or a class out of range (saying the class count).
    """
    from ganinv.inverters import invert

    bound = with_class(G, label, mean_samples=mean_samples)
    result = invert(bound, target, physics, method=method, **invert_kwargs)
    B = len(result)
    result.metrics["class"] = bound.c.argmax(1).cpu().expand(B).clone()
    result.metrics["class_prob"] = bound.c.max(1).values.cpu().expand(B).clone()
    result.settings = {**result.settings, "class": bound.config()["class"]}
    return result


@dataclass
class ClassSearchSettings:
    """Settings of :func:`infer_class` besides the optimisation's.

    Attributes:
        space: ``"z"`` (class optimised jointly, the default), ``"w"`` or ``"w+"`` (class fixed at the start).
        candidates: mapped z per class scored for the start (plus the class's mean w in W / W+).
        classes: the classes searched (None: all).
        start_prob: the start's probability of its best class in z (the other classes share the rest).
        logit_scale: :class:`~ganinv.generators.conditional.ClassLatentGenerator`'s logit multiplier.
        mean_samples: z samples per class mean w (W / W+ starts and priors).
        start_only: stop after the best-of-classes start (no optimisation; ``result`` renders the start).
        seed: seed of the candidates (the optimisation has its own, ``OptimizeSettings.seed``).
    """

    space: str = "z"
    candidates: int = 8
    classes: Sequence[int] | None = None
    start_prob: float = 0.9
    logit_scale: float = 1.0
    mean_samples: int = 2_000
    start_only: bool = False
    seed: int = 0


@dataclass
class ClassInference:
    """The outcome of :func:`infer_class` for ``B`` targets over ``C = c_dim`` classes.

    Attributes:
        result: the inversion; ``latent`` is in ``result.space`` of ``generator`` (z: ``[B, z_dim + c_dim]``, z
            then class logits); ``metrics`` gain ``class`` and ``class_prob`` (``[B]``).
        labels: the chosen class per target ``[B]`` (long; the argmax of ``probs``).
        prob: its probability ``[B]`` in [0, 1].
        probs: the class mixture per target ``[B, C]`` (rows sum to 1; one-hot in W / W+).
        start_labels: the best-of-classes start's class ``[B]``.
        start_losses: the best loss of each class's candidates per target ``[B, C]`` (inf for classes not searched).
        w_plus: class-free codes ``[B, num_ws, w_dim]`` that render the result with the conditional generator
            itself (``G.synthesize(w_plus, "w+")``) — what editing and restoration take.
        generator: the generator ``result.latent`` belongs to (a ``ClassLatentGenerator`` in z, else ``G``).
    """

    result: InversionResult
    labels: Tensor
    prob: Tensor
    probs: Tensor
    start_labels: Tensor
    start_losses: Tensor
    w_plus: Tensor
    generator: Generator = field(repr=False)


def _search_classes(c_dim: int, classes: Sequence[int] | None) -> list[int]:
    if classes is None:
        return list(range(c_dim))
    out = sorted({int(k) for k in classes})
    if not out:
        raise InputError("no classes to search (an empty list)")
    bad = [k for k in out if not 0 <= k < c_dim]
    if bad:
        raise InputError(f"class {bad[0]} is out of range: this generator has {c_dim} classes, 0…{c_dim - 1}")
    return out


@torch.no_grad()
def class_start(G: Generator, target: Tensor, physics: Any = None, *, loss: Any = "mse",
                search: ClassSearchSettings | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """The best-of-classes start: for each searched class, render its candidates (``search.candidates`` mapped z,
    plus the class's mean w in W / W+), score them against every target with ``loss`` (through ``physics``) and
    keep each target's best.

    Returns:
        ``(labels [B] long, codes, start_losses [B, C])``: ``codes`` are z ``[B, z_dim]`` for ``space="z"``, else
        w ``[B, w_dim]``; ``start_losses[b, k]`` is class k's best loss for target b (inf for classes not searched).
    """
    s = search or ClassSearchSettings()
    base = unwrap(G)
    c_dim = num_classes(base)
    if not c_dim:
        raise InputError(f"class inference needs a class-conditional generator; this {base.arch} generator is "
                         f"unconditional")
    if isinstance(s.candidates, bool) or not isinstance(s.candidates, int) or s.candidates < (1 if s.space == "z"
                                                                                              else 0):
        raise InputError(f"candidates must be a whole number ≥ {1 if s.space == 'z' else 0}, got {s.candidates!r}")
    classes = _search_classes(c_dim, s.classes)
    y = _check_target(base, target, physics)
    op = _operator(physics)
    loss_fn = CombinedLoss.from_spec(loss).to(base.device)
    B, dev = y.shape[0], base.device
    gen = torch.Generator().manual_seed(int(s.seed))
    z_dim = base.space("z").shape[0]
    best_loss = torch.full((B, c_dim), math.inf, device=dev)
    best_code = torch.zeros(B, c_dim, z_dim if s.space == "z" else base.w_dim, device=dev)  # type: ignore[attr-defined]
    eye = torch.eye(c_dim, device=dev)
    for k in classes:
        c = eye[k:k + 1]
        z = torch.randn(s.candidates, z_dim, generator=gen).to(dev)
        w = base.mapping(z, c.expand(s.candidates, -1)) if s.candidates else z.new_zeros(0, base.w_dim)
        if s.space != "z":
            w = torch.cat([class_mean_w(base, c, s.mean_samples, seed=int(s.seed) + 1), w])
        codes = z if s.space == "z" else w
        for start in range(0, w.shape[0], 64):
            imgs = base.synthesize(w[start:start + 64], "w")
            for b in range(B):
                scores = loss_fn(op(imgs), y[b:b + 1].expand(imgs.shape[0], *y.shape[1:]))
                scores = torch.nan_to_num(scores, nan=math.inf)
                i = int(scores.argmin())
                if scores[i] < best_loss[b, k]:
                    best_loss[b, k] = scores[i]
                    best_code[b, k] = codes[start + i]
    labels = best_loss.argmin(1)
    return labels, best_code[torch.arange(B, device=dev), labels], best_loss


def _optimize_settings(options: dict[str, Any], space: str, init: Tensor) -> OptimizeSettings:
    base = options.pop("settings", None)
    base = base if isinstance(base, OptimizeSettings) else OptimizeSettings()
    known = {f.name for f in fields(OptimizeSettings)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InputError(f"unknown option(s) {', '.join(unknown)} for class inference; valid: {', '.join(sorted(known))}")
    for name in ("space", "init"):
        if name in options:
            raise InputError(f"class inference sets {name!r} itself (the search's space, and the best-of-classes start)")
    return replace(base, **options, space=space, init=init)


def infer_class(G: Generator, target: Tensor, physics: Any = None, *, search: ClassSearchSettings | None = None,
                discriminator: Any = None, **optimize_options: Any) -> ClassInference:
    """Invert ``target`` into conditional ``G`` and infer each target's class (Huh et al., ECCV 2020).

    1. Best-of-classes start (:func:`class_start`), scored with the optimisation's loss.
    2. ``space="z"``: z and the class logits (``softmax``, initialised at the start's class with probability
       ``search.start_prob``) are optimised together by :func:`~ganinv.inverters.optimize.optimize` on a
       :class:`~ganinv.generators.conditional.ClassLatentGenerator`. ``"w"`` / ``"w+"``: each target's code is
       optimised with its start class bound (the class cannot change there; see the module docstring).

    Args:
        G: a class-conditional StyleGAN2 / StyleGAN3.
        target: images ``[B, C, H, W]`` in [0, 1] (observations with ``physics``).
        search: :class:`ClassSearchSettings`.
        discriminator: for a ``dfeat`` loss term.
        optimize_options: fields of :class:`~ganinv.inverters.optimize.OptimizeSettings` (``steps``, ``loss``,
            ``seed``, …; or ``settings=OptimizeSettings(...)``); ``space`` and ``init`` are set by the search.

    Returns:
        :class:`ClassInference`.

    Raises:
        InputError: an unconditional generator, an unknown option, a space other than z / w / w+,
            ``stochastic_clip`` in z (it would resample the logits).
    """
    s = search or ClassSearchSettings()
    if s.space not in ("z", "w", "w+"):
        raise InputError(f"class inference searches in z, w or w+, not {s.space!r}")
    if not (isinstance(s.start_prob, (int, float)) and 0 < s.start_prob < 1):
        raise InputError(f"start_prob must be in (0, 1), got {s.start_prob!r}")
    base = unwrap(G)
    c_dim = num_classes(base)
    options = dict(optimize_options)
    loss = options.get("loss", (options.get("settings") or OptimizeSettings()).loss)
    labels, codes, start_losses = class_start(base, target, physics, loss=loss, search=s)
    y = _check_target(base, target, physics)
    B, dev = y.shape[0], base.device
    if s.space == "z":
        M = ClassLatentGenerator(base, s.logit_scale)
        init = M.pack(codes, start_probabilities(labels, c_dim, s.start_prob).to(dev))
        if s.start_only:
            result = _start_result(M, init, "z", y, physics)
        else:
            settings = _optimize_settings(options, "z", init)
            if settings.stochastic_clip is not None:
                raise InputError("stochastic clipping would resample the class logits; leave it off for class "
                                 "inference")
            result = optimize(M, y, physics, settings, discriminator=discriminator)
        with torch.no_grad():
            probs = M.class_probs(result.latent.to(dev)).cpu()
            w_plus = M.convert(result.latent.to(dev), "z", "w+").cpu()
        generator: Generator = M
    else:
        rows_w = codes if s.space == "w" else base.convert(codes, "w", "w+")
        if s.start_only:
            result = _start_result(base, rows_w, s.space, y, physics)
        else:
            parts: list[tuple[Tensor, InversionResult]] = []
            for k in labels.unique().tolist():
                idx = (labels == k).nonzero().squeeze(1)
                bound = with_class(base, k, mean_samples=s.mean_samples, seed=int(s.seed) + 1)
                settings = _optimize_settings(dict(options), s.space, rows_w[idx])
                parts.append((idx, optimize(bound, y[idx], physics, settings, discriminator=discriminator)))
            result = _merge(parts, B)
        probs = torch.nn.functional.one_hot(labels.cpu(), c_dim).float()
        with torch.no_grad():
            w_plus = base.convert(result.latent.to(dev), s.space, "w+").cpu()
        generator = base
    chosen = probs.argmax(1)
    prob = probs.max(1).values
    result.metrics["class"] = chosen
    result.metrics["class_prob"] = prob
    result.settings = {**result.settings, "class_search": {
        "space": s.space, "candidates": s.candidates, "classes": list(s.classes) if s.classes is not None else None,
        "start_prob": s.start_prob, "logit_scale": s.logit_scale, "start_only": s.start_only, "seed": s.seed}}
    return ClassInference(result=result, labels=chosen, prob=prob, probs=probs, start_labels=labels.cpu(),
                          start_losses=start_losses.cpu(), w_plus=w_plus, generator=generator)


@torch.no_grad()
def start_probabilities(labels: Tensor, c_dim: int, start_prob: float) -> Tensor:
    """The soft class a joint z search starts from: ``[B, c_dim]``, ``start_prob`` on each row's best class
    ``labels`` ``[B]`` and the rest shared by the other classes (1 on the class when there is only one)."""
    probs = torch.full((len(labels), c_dim), (1 - start_prob) / max(c_dim - 1, 1), device=labels.device)
    probs[torch.arange(len(labels), device=labels.device), labels] = start_prob if c_dim > 1 else 1.0
    return probs


def _start_result(G: Generator, latent: Tensor, space: str, y: Tensor, physics: Any) -> InversionResult:
    """An :class:`InversionResult` holding the start itself (``start_only``)."""
    with _FrozenGenerator(G):
        image = G.synthesize(latent, space)
        fit = (_operator(physics)(image) - y).flatten(1).square().mean(1)
    metrics: dict[str, Tensor] = {"loss": fit.cpu(), "data_fit": fit.cpu(),
                                  "steps": torch.zeros(latent.shape[0], dtype=torch.long)}
    if physics is None:
        from ganinv import metrics as M

        metrics["psnr"] = M.psnr(image, y).float().cpu()
    return InversionResult(latent=latent.detach(), space=space, image=G.to_display(image), noise=None,
                           metrics=metrics, method="class-start")


def _merge(parts: list[tuple[Tensor, InversionResult]], B: int) -> InversionResult:
    """Results of disjoint groups of targets (``(indices, result)``) → one result in target order."""
    first = parts[0][1]

    def scatter(get: Any) -> Tensor:
        sample = get(first)
        out = torch.zeros((B, *sample.shape[1:]), dtype=sample.dtype, device=sample.device)
        for idx, r in parts:
            out[idx.to(out.device)] = get(r).to(out.device)
        return out

    keys = set.intersection(*(set(r.metrics) for _, r in parts))
    metrics = {k: scatter(lambda r, k=k: r.metrics[k]) for k in keys}
    noise = None
    if all(r.noise is not None for _, r in parts):
        noise = [scatter(lambda r, i=i: r.noise[i]) for i in range(len(first.noise or []))]
    history: dict[str, list[list[float]]] = {}
    for key in set.intersection(*(set(r.history) for _, r in parts)):
        length = max(len(r.history[key]) for _, r in parts)
        rows = [[math.nan] * B for _ in range(length)]
        for idx, r in parts:
            curve = r.history[key]
            for t in range(length):  # a group that stopped earlier keeps its last values
                step = curve[min(t, len(curve) - 1)] if curve else [math.nan] * len(idx)
                for j, b in enumerate(idx.tolist()):
                    rows[t][b] = step[j]
        history[key] = rows
    return InversionResult(latent=scatter(lambda r: r.latent), space=first.space, image=scatter(lambda r: r.image),
                           noise=noise, metrics=metrics, history=history, method=first.method,
                           seconds=sum(r.seconds for _, r in parts), settings=first.settings,
                           notes=[n for _, r in parts for n in r.notes])
