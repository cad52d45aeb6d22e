"""Class-conditional generators (``c_dim > 0``): binding a class, and a latent that carries its own class.

A conditional StyleGAN2 / StyleGAN3 (:attr:`~ganinv.generators.base.StyleGenerator.c_dim` > 0) needs its class
only where z becomes w: ``G.convert(z, "z", "w", c=c)`` with ``c`` ``[B, c_dim]`` (one-hot rows, or soft
mixtures whose rows sum to 1). W and W+ codes render without a class. Everything else in ganinv passes latents
only, so two thin wrappers make a conditional model look like an ordinary generator:

* :func:`with_class` → :class:`ClassBoundGenerator`: one class (an int label or a ``[c_dim]`` probability
  vector) bound for every row. ``convert`` / ``sample_latent`` / ``sample`` / ``forward`` map z with it, and
  :meth:`~ClassBoundGenerator.mean_latent` is that class's mean w (the mean of ``mapping(z, c)`` over z), not the
  model's overall ``w_avg``. Every inversion method, editing and sampling work on it unchanged.
* :class:`ClassLatentGenerator`: the z space becomes ``[z_dim + c_dim]`` — z followed by class *logits*; the
  class is ``softmax(logit_scale · logits)`` per row. Each row carries its own class, so the optimisation
  engine (which splits rows into batches, repeats them for restarts and drops converged ones) optimises the
  class jointly with z without knowing it (:func:`ganinv.inverters.conditional.infer_class`).
* :func:`for_whole_model` → :class:`AllClassesGenerator`: each row's z maps with a class of its own, drawn
  uniformly (a hash of z): the whole model as model-wide tools sample it (``train-encoder``, SeFa, GANSpace).

Other attributes (``synthesis``, ``layers``, ``convs``, ``num_ws``, ``set_transform``, …) are the wrapped
generator's, so code that reaches into a StyleGAN2/3 (SeFa, coarse-to-fine, the StyleGAN3 pose search) works too.
The wrapped generator is a submodule named ``base``: parameter names, and hence PTI's weight deltas, carry a
``base.`` prefix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ganinv.errors import InputError
from ganinv.generators.base import Generator, LatentSpace, StyleGenerator

__all__ = ["AllClassesGenerator", "ClassBoundGenerator", "ClassLatentGenerator", "CLASS_MEAN_SAMPLES",
           "check_class_option", "class_mean_w", "class_probabilities", "for_whole_model", "num_classes", "unwrap",
           "with_class"]

#: z samples averaged for a class's mean w (NVIDIA's projector averages 10k samples for ``w_avg``).
CLASS_MEAN_SAMPLES = 10_000


# ----------------------------------------------------------------------------------
# Classes as tensors
# ----------------------------------------------------------------------------------
def unwrap(G: Generator) -> Generator:
    """The conditional generator inside the wrappers of this module (``G`` itself otherwise)."""
    while isinstance(G, _Wrapper):
        G = G.base
    return G


def num_classes(G: Generator) -> int:
    """Number of classes of ``G`` (``c_dim``; 0 for an unconditional generator or one without a mapping)."""
    c_dim = getattr(unwrap(G), "c_dim", 0)
    return c_dim if isinstance(c_dim, int) and not isinstance(c_dim, bool) else 0


def _classes_text(c_dim: int) -> str:
    return f"{c_dim} classes, 0…{c_dim - 1}" if c_dim > 1 else "1 class, 0"


def class_probabilities(c_dim: int, label: int | Sequence[int] | Sequence[float] | Tensor,
                        device: torch.device | str | None = None) -> Tensor:
    """A class given as people give it → class probabilities ``[N, c_dim]`` (float32, rows sum to 1).

    Args:
        c_dim: the number of classes (> 0).
        label: an int label ``K`` in ``[0, c_dim)`` (→ ``[1, c_dim]`` one-hot); a sequence / 1-D integer tensor of
            labels (→ ``[N, c_dim]`` one-hot); a float ``[c_dim]`` probability vector (→ ``[1, c_dim]``) or
            ``[N, c_dim]`` matrix, non-negative with rows summing to 1 (within 1e-4).
        device: where the result lives (default: CPU, or the tensor's device).

    Raises:
        InputError: a conditional class count of 0, a label out of range, or a vector that is not a probability
            distribution over ``c_dim`` classes — one sentence naming the class count.
    """
    if c_dim < 1:
        raise InputError("this generator is unconditional (it has no classes), so it takes no class")
    if isinstance(label, bool):
        raise InputError(f"a class must be a whole number in 0…{c_dim - 1} or a probability vector, got {label!r}")
    if isinstance(label, int) or (isinstance(label, Tensor) and label.dim() == 0 and not label.is_floating_point()):
        labels = torch.as_tensor([int(label)])
    elif isinstance(label, Tensor):
        if not label.is_floating_point():
            labels = label.reshape(-1).long().cpu()
        else:
            return _check_probabilities(c_dim, label.detach().float(), device)
    else:
        items = list(label)
        if not items:
            raise InputError("no class given (an empty list)")
        if all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            labels = torch.as_tensor(items)
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
            return _check_probabilities(c_dim, torch.as_tensor(items, dtype=torch.float32), device)
        else:
            raise InputError(f"a class must be a whole number in 0…{c_dim - 1} or a probability vector of "
                             f"{c_dim} numbers, got {label!r}")
    bad = labels[(labels < 0) | (labels >= c_dim)]
    if bad.numel():
        raise InputError(f"class {int(bad[0])} is out of range: this generator has {_classes_text(c_dim)}")
    return F.one_hot(labels, c_dim).float().to(device or "cpu")


def _check_probabilities(c_dim: int, p: Tensor, device: torch.device | str | None) -> Tensor:
    if p.dim() == 1:
        p = p.unsqueeze(0)
    if p.dim() != 2 or p.shape[1] != c_dim or p.shape[0] == 0:
        raise InputError(f"a class probability vector must have {c_dim} entries (one per class), got shape "
                         f"{list(p.shape)}")
    if not torch.isfinite(p).all() or (p < 0).any() or ((p.sum(1) - 1).abs() > 1e-4).any():
        raise InputError(f"class probabilities must be finite, non-negative and sum to 1 over the {c_dim} classes")
    return p.to(device or p.device)


def check_class_option(G: Generator, label: int | None, *, required: bool = True) -> int | None:
    """Check a command line's ``--class`` against the generator (for ``sample``, ``invert``, ``edit``, ``restore``).

    Returns ``label`` (``None`` when not given and not needed). Raises :class:`InputError`: a class for an
    unconditional generator; a label out of range; no class for a conditional generator when ``required``
    (each message says the class count).
    """
    c_dim = num_classes(G)
    if label is None:
        if c_dim and required:
            raise InputError(f"this generator is class-conditional ({_classes_text(c_dim)}): choose one with "
                             f"--class K")
        return None
    if not c_dim:
        raise InputError(f"--class {label} was given, but this generator is unconditional (it has no classes)")
    class_probabilities(c_dim, label)  # raises for a label out of range
    return label


@torch.no_grad()
def class_mean_w(G: Generator, c: Tensor, n: int = CLASS_MEAN_SAMPLES, seed: int = 0) -> Tensor:
    """The mean w of class ``c`` ``[1, c_dim]`` (probabilities): the mean of ``mapping(z, c)`` over ``n`` z drawn
    from ``seed``; ``[1, w_dim]`` on ``G``'s device."""
    base = unwrap(G)
    if not isinstance(base, StyleGenerator):
        raise InputError(f"a class mean needs a StyleGAN mapping network; this is a {base.arch} generator")
    gen = torch.Generator().manual_seed(int(seed))
    total = torch.zeros(1, base.w_dim, device=base.device)  # type: ignore[attr-defined]
    done = 0
    while done < n:
        k = min(2048, n - done)
        z = torch.randn(k, base.space("z").shape[0], generator=gen).to(base.device)
        total += base.mapping(z, c.to(base.device).expand(k, -1)).sum(0, keepdim=True)
        done += k
    return total / n


# ----------------------------------------------------------------------------------
# Shared delegation
# ----------------------------------------------------------------------------------
class _Wrapper(Generator):
    """A generator wrapping a conditional StyleGAN (submodule ``base``) whose attributes it delegates."""

    base: StyleGenerator

    def __init__(self, G: Generator) -> None:
        super().__init__()
        base = unwrap(G)
        if not isinstance(base, StyleGenerator) or not num_classes(base):
            raise InputError(f"this {base.arch} generator is unconditional (it has no classes), so it takes no class")
        self.base = base
        self.arch = base.arch
        self.resolution, self.channels = base.resolution, base.channels
        self.image_shape, self.output_range = base.image_shape, base.output_range
        self.c_dim = num_classes(base)

    def _own_buffer(self, name: str, value: Tensor) -> None:
        """Register a non-persistent buffer ``name`` even where the base generator has an attribute of that name
        (``register_buffer`` would see the delegated one and refuse)."""
        self._buffers[name] = value
        self._non_persistent_buffers_set.add(name)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            base = self.__dict__.get("_modules", {}).get("base")
            if base is None or name.startswith("__"):
                raise
            return getattr(base, name)

    # ----- description -------------------------------------------------------------
    @property
    def noise_shapes(self) -> list[tuple[int, ...]]:
        return self.base.noise_shapes

    @property
    def default_space(self) -> str:
        return self.base.default_space

    @property
    def device(self) -> torch.device:
        return self.base.device

    @property
    def z_dim(self) -> int:
        return self.base.space("z").shape[0]

    def _latent_spaces(self) -> dict[str, LatentSpace]:
        return dict(self.base.latent_spaces)

    def mean_latent(self, space: str = "w") -> Tensor:
        """z: zeros of this wrapper's z space; w / w+: the model's stored ``w_avg`` (the mean over classes)."""
        if space == "z":
            return super().mean_latent("z")
        return self.base.mean_latent(space)

    def convert(self, latent: Tensor, src: str, dst: str) -> Tensor:
        """Along z → w → w+: this wrapper's z through its :meth:`mapping` (which supplies the class), then the base's."""
        if src == "z" and dst != "z":
            return self.base.convert(self.mapping(latent), "w", dst)
        return self.base.convert(latent, src, dst)

    # ----- rendering: everything goes through W+, which needs no class ---------------
    def _native(self, latent: Tensor, space: str, noise: list[Tensor] | None) -> Tensor:
        return self.base._native(self.convert(latent, space, "w+"), "w+", noise)

    def skip_resolutions(self) -> list[int]:
        return self.base.skip_resolutions()

    def feature_layers(self) -> list[str]:
        return self.base.feature_layers()

    def default_feature_layer(self) -> int:
        return self.base.default_feature_layer()

    def tail_shape(self, layer: int) -> tuple[int, ...] | None:
        return self.base.tail_shape(layer)

    def render_head(self, latent: Tensor, space: str, layer: int) -> list[Tensor]:
        return self.base.render_head(self.convert(latent, space, "w+"), "w+", layer)

    def render_tail(self, state: list[Tensor], tail: Tensor | None, layer: int) -> Tensor:
        return self.base.render_tail(state, tail, layer)

    def forward(self, z: Tensor, truncation: float = 1.0) -> Tensor:
        """z (this wrapper's z space) → native image ``[B, C, H, W]``; truncation towards :meth:`mean_latent`."""
        ws = self.truncate(self.convert(z, "z", "w+"), truncation, "w+")
        return self.base._native(ws, "w+", None)


# ----------------------------------------------------------------------------------
# One class bound to every row
# ----------------------------------------------------------------------------------
class ClassBoundGenerator(_Wrapper):
    """A conditional generator with one class bound: latents only in, images out (see :func:`with_class`).

    Attributes:
        base: the conditional generator.
        c: the bound class ``[1, c_dim]`` (probabilities; a buffer, not in ``state_dict``).
        w_avg: that class's mean w ``[w_dim]`` (buffer, not in ``state_dict``).
        label: the int label when the class is one-hot, else ``None``.
    """

    def __init__(self, G: Generator, c: Tensor, *, mean_samples: int = CLASS_MEAN_SAMPLES, seed: int = 0) -> None:
        super().__init__(G)
        c = class_probabilities(self.c_dim, c)
        if c.shape[0] != 1:
            raise InputError(f"with_class binds one class for every row, got {c.shape[0]}; give one label or one "
                             f"probability vector (a class per row: ClassLatentGenerator)")
        self._own_buffer("c", c.to(self.base.device))
        self._own_buffer("w_avg", class_mean_w(self.base, self.c, mean_samples, seed)[0])
        top = float(c.max())
        self.label: int | None = int(c.argmax()) if top == 1.0 else None

    def config(self) -> dict[str, Any]:
        """The wrapped generator's config plus ``class`` (the label, or the probability vector)."""
        return {**self.base.config(), "class": self.label if self.label is not None else self.c[0].tolist()}

    def class_rows(self, batch: int) -> Tensor:
        """The bound class for ``batch`` rows ``[batch, c_dim]``."""
        return self.c.expand(batch, -1)

    def mapping(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        """z ``[B, z_dim]`` → w ``[B, w_dim]`` with the bound class (or ``c`` ``[B or 1, c_dim]`` when given)."""
        return self.base.mapping(z, self.class_rows(z.shape[0]) if c is None else c)

    def mean_latent(self, space: str = "w") -> Tensor:
        """The bound class's mean latent ``[1, *shape]`` (z: zeros; w/w+: the class mean w)."""
        if space == "z":
            return super().mean_latent("z")
        return self.base.convert(self.w_avg.view(1, -1), "w", space)


def with_class(G: Generator, label: int | Sequence[float] | Tensor, *, mean_samples: int = CLASS_MEAN_SAMPLES,
               seed: int = 0) -> ClassBoundGenerator:
    """Bind one class to a conditional generator, so that code passing latents only uses that class.

    Args:
        G: a class-conditional StyleGAN2/StyleGAN3 (or a wrapper of one: the class is re-bound on its base).
        label: an int in ``[0, c_dim)`` or a ``[c_dim]`` probability vector (a soft mixture of classes).
        mean_samples, seed: z samples (and their seed) averaged for the class's mean w.

    Returns:
        a :class:`ClassBoundGenerator` sharing ``G``'s weights (nothing is copied), in ``G``'s mode.

    Raises:
        InputError: ``G`` is unconditional, or the class is out of range / not a probability vector.
    """
    base = unwrap(G)
    c_dim = num_classes(base)
    if not c_dim:
        raise InputError(f"this {base.arch} generator is unconditional (it has no classes), so it takes no class")
    return ClassBoundGenerator(base, class_probabilities(c_dim, label), mean_samples=mean_samples, seed=seed)


# ----------------------------------------------------------------------------------
# The class as part of the latent
# ----------------------------------------------------------------------------------
class ClassLatentGenerator(_Wrapper):
    """A conditional generator whose z space is ``[z_dim + c_dim]``: z, then class logits.

    The class of a row is ``softmax(logit_scale · logits)`` — a soft mixture the mapping embeds exactly as it
    embeds a one-hot class (the embedding is linear, so it is the probability-weighted mix of the class
    embeddings). W and W+ are the base generator's, so codes mapped from this z render with the base generator
    directly. ``mean_latent("z")`` is zero: z = 0 and uniform class probabilities; ``mean_latent("w")`` is the
    model's stored ``w_avg`` (the mean over classes).

    Args:
        G: a class-conditional StyleGAN2/StyleGAN3.
        logit_scale: multiplies the logits before the softmax; larger values make the optimiser's steps in
            the logits move the class faster (1 by default).
    """

    def __init__(self, G: Generator, logit_scale: float = 1.0) -> None:
        super().__init__(G)
        if not (isinstance(logit_scale, (int, float)) and math.isfinite(logit_scale) and logit_scale > 0):
            raise InputError(f"logit_scale must be a finite positive number, got {logit_scale!r}")
        self.logit_scale = float(logit_scale)

    def _latent_spaces(self) -> dict[str, LatentSpace]:
        spaces = dict(self.base.latent_spaces)
        spaces["z"] = LatentSpace("z", (self.z_dim + self.c_dim,),
                                  f"input noise ({self.z_dim}) followed by class logits ({self.c_dim})")
        return spaces

    @property
    def z_dim(self) -> int:
        return self.base.space("z").shape[0]

    def config(self) -> dict[str, Any]:
        return {**self.base.config(), "class": "logits", "logit_scale": self.logit_scale}

    def split(self, latent: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, z_dim + c_dim]`` → ``(z [B, z_dim], logits [B, c_dim])``."""
        return latent[:, :self.z_dim], latent[:, self.z_dim:]

    def pack(self, z: Tensor, probs: Tensor, eps: float = 1e-6) -> Tensor:
        """``z`` ``[B, z_dim]`` and class probabilities ``probs`` ``[B or 1, c_dim]`` → latent ``[B, z_dim + c_dim]``
        (logits ``log(max(p, eps)) / logit_scale``, centred per row)."""
        logits = probs.to(z).clamp_min(eps).log().expand(z.shape[0], -1) / self.logit_scale
        return torch.cat([z, logits - logits.mean(1, keepdim=True)], dim=1)

    def class_probs(self, latent: Tensor) -> Tensor:
        """The class probabilities ``[B, c_dim]`` (rows sum to 1) of latents ``[B, z_dim + c_dim]``."""
        return torch.softmax(self.split(latent)[1] * self.logit_scale, dim=1)

    def mapping(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        """Latent ``[B, z_dim + c_dim]`` → w ``[B, w_dim]`` (``c``, when given, replaces the logits' class)."""
        zz, _ = self.split(z)
        return self.base.mapping(zz, self.class_probs(z) if c is None else c)


# ----------------------------------------------------------------------------------
# The whole model: a class drawn per row
# ----------------------------------------------------------------------------------
class AllClassesGenerator(_Wrapper):
    """A conditional generator seen as the whole model: z ``[B, z_dim]`` (its own z space) maps with a class drawn
    for each row uniformly over the ``c_dim`` classes, so that sampled codes, latent statistics and generated
    training pairs cover every class. What a model-wide tool needs: ``train-encoder`` (an encoder for the whole
    model, used later with or without ``--class``), SeFa / GANSpace without a class.

    The class of a row is a hash of its z's float bits (:meth:`row_classes`): deterministic — the same z always
    maps to the same w, so seeded sampling and resumed training repeat exactly — yet independent of z's values
    (no region of z prefers a class; a smooth function of z would tie the class to the noise the mapping sees).
    W and W+ are the base generator's; ``mean_latent`` is the model's stored ``w_avg`` (the mean over classes).
    """

    #: Odd 31-bit multipliers of the row hash (one per z coordinate, cycled).
    _HASH = (0x2545F491, 0x1B873593, 0x5BD1E995, 0x68E31DA4, 0x3C6EF372, 0x27D4EB2F, 0x165667B1, 0x61C88647)

    def config(self) -> dict[str, Any]:
        return {**self.base.config(), "class": "all"}

    def row_classes(self, z: Tensor) -> Tensor:
        """The class ``[B]`` (int64 in ``[0, c_dim)``) of each row of ``z`` ``[B, z_dim]``: a multiply-xor hash
        of its float32 bits."""
        bits = z.detach().float().contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
        mult = torch.tensor(self._HASH, dtype=torch.int64, device=z.device).repeat(-(-z.shape[1] // len(self._HASH)))
        h = ((bits * mult[:z.shape[1]]) & 0x7FFFFFFF).sum(1)
        h = (((h ^ (h >> 15)) & 0x7FFFFFFF) * 0x2C1B3C6D) & 0x7FFFFFFF  # (< 2^62: no int64 overflow)
        h = h ^ (h >> 12)
        return h % self.c_dim

    def mapping(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        """z ``[B, z_dim]`` → w ``[B, w_dim]`` with each row's :meth:`row_classes` (or ``c`` when given)."""
        if c is None:
            c = F.one_hot(self.row_classes(z), self.c_dim).to(z)
        return self.base.mapping(z, c)


def for_whole_model(G: Generator) -> Generator:
    """``G`` as a model-wide tool should sample it: an :class:`AllClassesGenerator` for a conditional model with
    no class bound, ``G`` itself otherwise (unconditional, or a class already bound / carried by the latent)."""
    if num_classes(G) and unwrap(G) is G:
        return AllClassesGenerator(G)
    return G
