"""Latent-code operations for editing: interpolation, style mixing and moving along a direction.

All functions are pure tensor maths on batched codes (no generator calls), so they work on any
device and keep gradients. Shapes, per sample:

* ``z`` and ``w`` codes: ``[B, D]``;
* ``w+`` codes: ``[B, num_ws, D]`` (one ``w`` per layer input of a StyleGAN synthesis network).

Layers are the rows of a ``w+`` code, numbered from 0 (coarse, 4 px) to ``num_ws - 1`` (fine).
A layer selection is any sequence of row indices (``range(0, 4)`` for rows 0–3); the CLI spells
it ``A-B`` (inclusive) and :func:`parse_layers` turns that into a ``range``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ganinv.errors import InputError

#: Below this angle (radians) between two codes, :func:`slerp` falls back to :func:`lerp`.
SLERP_EPS = 1e-4


# ----------------------------------------------------------------------------------------------------------
# Layer selections
# ----------------------------------------------------------------------------------------------------------

def parse_layers(text: str | None, num_ws: int) -> range | None:
    """Parse a layer range ``"A-B"`` (inclusive, 0-based), ``"A"`` (one layer) or ``"all"``.

    Args:
        text: the user's spelling; ``None`` or ``""`` means no restriction (returns ``None``).
        num_ws: number of ``w+`` rows of the generator (8 for a 32 px StyleGAN2).

    Returns:
        ``range(A, B + 1)``, or ``None`` for no restriction.

    Raises:
        InputError: malformed text, ``A > B``, or a layer outside ``0 … num_ws - 1``.
    """
    if text is None or not text.strip():
        return None
    raw = text.strip().lower()
    if raw == "all":
        return range(0, num_ws)
    parts = raw.split("-")
    try:
        if len(parts) == 1:
            lo = hi = int(parts[0])
        elif len(parts) == 2:
            lo, hi = int(parts[0]), int(parts[1])
        else:
            raise ValueError
    except ValueError:
        raise InputError(f"bad layer range {text!r}: write A-B (inclusive, e.g. 0-3), a single layer or 'all'; "
                         f"layers are 0…{num_ws - 1}") from None
    if lo > hi:
        raise InputError(f"bad layer range {text!r}: the first layer ({lo}) is after the last ({hi})")
    if lo < 0 or hi >= num_ws:
        raise InputError(f"layer range {text!r} is outside this generator's layers 0…{num_ws - 1} "
                         f"({num_ws} rows of w+)")
    return range(lo, hi + 1)


def layer_mask(layers: Sequence[int] | None, num_ws: int, device: torch.device | None = None) -> Tensor:
    """Boolean ``[num_ws]`` mask of the selected rows (all rows when ``layers`` is None)."""
    mask = torch.zeros(num_ws, dtype=torch.bool, device=device)
    if layers is None:
        mask[:] = True
        return mask
    idx = list(layers)
    if not idx:
        raise InputError("the layer selection is empty")
    bad = [i for i in idx if not 0 <= int(i) < num_ws]
    if bad:
        raise InputError(f"layer(s) {bad} outside this generator's layers 0…{num_ws - 1}")
    mask[torch.as_tensor(idx, dtype=torch.long, device=device)] = True
    return mask


def format_layers(layers: Sequence[int] | None, num_ws: int | None = None) -> str:
    """``"0-3"`` for ``range(0, 4)``, ``"all"`` for None (or every row), ``"1,4"`` for a scattered set."""
    if layers is None:
        return "all"
    idx = sorted(int(i) for i in layers)
    if num_ws is not None and idx == list(range(num_ws)):
        return "all"
    if idx and idx == list(range(idx[0], idx[-1] + 1)):
        return f"{idx[0]}-{idx[-1]}" if len(idx) > 1 else str(idx[0])
    return ",".join(map(str, idx))


def to_wplus(latent: Tensor, space: str, num_ws: int) -> Tensor:
    """A ``w`` code ``[B, D]`` broadcast to ``w+`` ``[B, num_ws, D]``; a ``w+`` code is returned unchanged."""
    if space == "w+":
        if latent.dim() != 3 or latent.shape[1] != num_ws:
            raise InputError(f"a w+ code must be [B, {num_ws}, D], got {list(latent.shape)}")
        return latent
    if space == "w":
        if latent.dim() != 2:
            raise InputError(f"a w code must be [B, D], got {list(latent.shape)}")
        return latent.unsqueeze(1).expand(-1, num_ws, -1).clone()
    raise InputError(f"only w and w+ codes have layers; a {space!r} code cannot be broadcast to w+")


# ----------------------------------------------------------------------------------------------------------
# Interpolation
# ----------------------------------------------------------------------------------------------------------

def _weights(t: float | Sequence[float] | Tensor, ref: Tensor) -> tuple[Tensor, bool]:
    """Interpolation weights as a ``[T]`` tensor on ``ref``'s device/dtype, and whether ``t`` was a scalar."""
    tt = torch.as_tensor(t, dtype=ref.dtype, device=ref.device)
    scalar = tt.dim() == 0
    return tt.reshape(-1), scalar


def _check_pair(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    if a.shape[1:] != b.shape[1:]:
        raise InputError(f"cannot interpolate codes of shapes {list(a.shape)} and {list(b.shape)}")
    if a.shape[0] != b.shape[0] and 1 not in (a.shape[0], b.shape[0]):
        raise InputError(f"batch sizes {a.shape[0]} and {b.shape[0]} differ (one of them may be 1)")
    return torch.broadcast_tensors(a, b)


def lerp(a: Tensor, b: Tensor, t: float | Sequence[float] | Tensor) -> Tensor:
    """Linear interpolation ``(1 - t)·a + t·b``.

    Args:
        a, b: codes ``[B, *shape]`` of one space (a batch of 1 broadcasts against B).
        t: a weight (``0`` gives ``a``, ``1`` gives ``b``; values outside [0, 1] extrapolate) or a sequence of T.

    Returns:
        ``[B, *shape]`` for a scalar ``t``, else ``[T, B, *shape]``.
    """
    a, b = _check_pair(a, b)
    tt, scalar = _weights(t, a)
    tt = tt.view(-1, *([1] * a.dim()))
    out = torch.lerp(a.unsqueeze(0).expand(tt.shape[0], *a.shape), b.unsqueeze(0).expand(tt.shape[0], *b.shape), tt)
    return out[0] if scalar else out


def slerp(a: Tensor, b: Tensor, t: float | Sequence[float] | Tensor, center: Tensor | None = None) -> Tensor:
    """Spherical interpolation of the vectors along the last dimension (each ``w+`` row on its own).

    The direction moves along the great circle from ``a``'s to ``b``'s (constant angular speed) and the
    length is interpolated linearly, so codes of equal norm keep that norm all the way, and the
    endpoints are exactly ``a`` (``t = 0``) and ``b`` (``t = 1``). Nearly parallel (angle below
    :data:`SLERP_EPS`) or opposite vectors, whose great circle is undefined, fall back to :func:`lerp`.

    Args:
        a, b: codes ``[B, *shape]`` (a batch of 1 broadcasts against B).
        t: a weight in [0, 1] or a sequence of T.
        center: optional point ``[1 or B, *shape]`` to rotate about (e.g. the mean ``w``; default: the origin,
            which is right for a Gaussian ``z``).

    Returns:
        ``[B, *shape]`` for a scalar ``t``, else ``[T, B, *shape]``.
    """
    a, b = _check_pair(a, b)
    c = torch.zeros_like(a) if center is None else center.to(a).expand_as(a)
    u, v = a - c, b - c
    tt, scalar = _weights(t, a)
    tt = tt.view(-1, *([1] * a.dim()))  # [T, 1, ..., 1]
    nu, nv = u.norm(dim=-1, keepdim=True), v.norm(dim=-1, keepdim=True)
    uh, vh = u / nu.clamp_min(1e-12), v / nv.clamp_min(1e-12)
    cos = (uh * vh).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    sin = torch.sin(omega)
    ok = (omega > SLERP_EPS) & (omega < torch.pi - SLERP_EPS) & (nu > 0) & (nv > 0)
    safe_sin = torch.where(ok, sin, torch.ones_like(sin))
    wa = torch.where(ok, torch.sin((1 - tt) * omega) / safe_sin, 1 - tt)
    wb = torch.where(ok, torch.sin(tt * omega) / safe_sin, tt)
    length = (1 - tt) * nu + tt * nv
    direction = wa * uh + wb * vh
    # where the great circle is defined, ``direction`` is a unit vector; elsewhere fall back to plain lerp
    spherical = length * direction
    linear = (1 - tt) * u + tt * v
    out = torch.where(ok, spherical, linear) + c
    return out[0] if scalar else out


def interpolate(a: Tensor, b: Tensor, steps: int, method: str = "lerp", center: Tensor | None = None) -> Tensor:
    """``steps`` evenly spaced codes from ``a`` to ``b`` inclusive: ``[steps, B, *shape]``.

    Args:
        method: ``"lerp"`` (straight line; the usual choice in W/W+) or ``"slerp"`` (the usual choice
            in a Gaussian z, where the straight line passes through atypically short codes).
        center: see :func:`slerp`.
    """
    if steps < 2:
        raise InputError(f"interpolation needs at least 2 steps (both ends), got {steps}")
    ts = torch.linspace(0.0, 1.0, steps)
    if method == "lerp":
        return lerp(a, b, ts)
    if method == "slerp":
        return slerp(a, b, ts, center=center)
    raise InputError(f"unknown interpolation {method!r}; use lerp or slerp")


# ----------------------------------------------------------------------------------------------------------
# Style mixing and directions
# ----------------------------------------------------------------------------------------------------------

def mix(base: Tensor, other: Tensor, layers: Sequence[int]) -> Tensor:
    """Style mixing: ``base`` with the rows ``layers`` copied from ``other``.

    Args:
        base, other: ``w+`` codes ``[B, num_ws, D]`` (either batch may be 1 and broadcasts).
        layers: the rows to take from ``other`` (e.g. ``range(4, 8)`` for the fine layers of a 32 px model).

    Returns:
        a new ``[B, num_ws, D]`` code; rows outside ``layers`` are exactly ``base``'s.
    """
    if base.dim() != 3 or other.dim() != 3:
        raise InputError(f"style mixing works on w+ codes [B, num_ws, D]; got {list(base.shape)} and "
                         f"{list(other.shape)}")
    base, other = _check_pair(base, other)
    mask = layer_mask(layers, base.shape[1], base.device).view(1, -1, 1)
    return torch.where(mask, other, base)


def apply_direction(latent: Tensor, direction: Tensor, strengths: float | Sequence[float] | Tensor, *,
                    space: str, layers: Sequence[int] | None = None,
                    num_ws: int | None = None) -> tuple[Tensor, str]:
    """Move codes along ``direction``: ``latent + s · direction`` on the selected layers, for each strength s.

    Args:
        latent: codes ``[B, *shape]`` in ``space``.
        direction: one unit of strength ``[D]`` (or ``[1, D]``), ``D`` the code's last dimension.
        strengths: a strength or a sequence of S (0 leaves the code unchanged).
        space: ``"z"``, ``"w"`` or ``"w+"``.
        layers: ``w+`` rows to move (None: all). A ``w`` code is first broadcast to ``w+`` (needs ``num_ws``)
            when a layer subset is asked for; a ``z`` code has no layers.
        num_ws: rows of ``w+`` (only needed to broadcast a ``w`` code).

    Returns:
        ``(edited, space)``: ``[S, B, *shape']`` (``[B, *shape']`` for a scalar strength) and its space
        (``"w+"`` when a ``w`` code was broadcast, else ``space``).
    """
    d = direction.reshape(-1).to(latent)
    if d.shape[0] != latent.shape[-1]:
        raise InputError(f"direction has dimension {d.shape[0]} but the {space} code has {latent.shape[-1]}")
    out_space = space
    mask: Tensor | None = None
    if layers is not None:
        if space == "z":
            raise InputError("layer ranges apply to w+ codes; this code is in z, which has no layers "
                             "(drop --layers)")
        if space == "w":
            if num_ws is None:
                raise InputError("num_ws is needed to broadcast a w code to w+ for a layer range")
            latent, out_space = to_wplus(latent, "w", num_ws), "w+"
        mask = layer_mask(layers, latent.shape[1], latent.device)
        if bool(mask.all()):
            mask = None
    tt, scalar = _weights(strengths, latent)
    step = d.view(*([1] * (latent.dim() - 1)), -1)  # [1, ..., D]
    if mask is not None:
        step = step * mask.view(-1, 1).to(step)  # [num_ws, D]: zero on the rows left alone
    out = latent.unsqueeze(0) + tt.view(-1, *([1] * latent.dim())) * step.unsqueeze(0)
    return (out[0] if scalar else out), out_space
