"""Identity similarity for faces: an ArcFace-style IR / IR-SE backbone, the field's face crop, a metric and a loss.

The GAN-inversion papers (pSp, e4e, ReStyle, HyperStyle, PTI) report identity preservation as the mean cosine
similarity ("ID" ↑) of two face embeddings from TreB1eN's InsightFace_Pytorch **IR-SE-50** ArcFace network
(``model_ir_se50.pth``, a plain state dict), and train with ``1 − cos`` as a loss. HyperStyle's evaluation also uses
CurricularFace's **IR-101** (``CurricularFace_Backbone.pth``): the same block design without squeeze-excitation and
with 3/13/30/3 units. :class:`IRBackbone` is that family — depth 50, 100 or 152, with or without SE — and
:func:`load_backbone` reads the depth, the SE blocks and the final BatchNorm's affinity off the state dict, so one
loader takes either file. The state-dict layout is theirs, key for key:

* ``input_layer.{0,1,2}``: 3×3 conv 3→64 (no bias), BatchNorm2d, PReLU;
* ``body.<n>``: the residual units, 3/4/14/3 for depth 50, 3/13/30/3 for 100 (IR-101), 3/8/36/3 for 152, with
  64/128/256/512 channels; each unit's first one has stride 2. ``body.<n>.res_layer.{0..4}`` is BatchNorm2d,
  3×3 conv (stride 1), PReLU, 3×3 conv (the unit's stride), BatchNorm2d, and with SE ``res_layer.5.fc{1,2}``
  (1×1 convs, no bias, channel reduction 16); ``body.<n>.shortcut_layer.{0,1}`` (1×1 strided conv, BatchNorm2d)
  where the channel count changes, else a parameter-free subsampling by the stride;
* ``output_layer.{0,3,4}``: BatchNorm2d(512), (dropout, flatten,) Linear(512·7·7 → 512), BatchNorm1d(512) —
  affine in TreB1eN's IR-SE-50, not in CurricularFace's IR-101. The embedding is L2-normalised.

The weights are not distributed with ganinv and cannot be fetched unattended (they sit on Google Drive): the user
gives the file, found by :func:`find_weights` in this order: the path given to :func:`set_weights_path` (what
``--id-weights PATH`` does) or passed in, ``$GANINV_ARCFACE``, then ``model_ir_se50.pth`` or
``CurricularFace_Backbone.pth`` in ganinv's weights cache (``ganinv.weights.cache_dir("ganinv")``, i.e.
``~/.cache/ganinv/weights``). Files are read with ``torch.load(weights_only=True)`` and loaded strictly.

The crop (:func:`face_crop`), as pSp's ``IDLoss`` does it: images are brought to 256×256 (area-downsampled — for
1024 px exactly pSp's ``AdaptiveAvgPool2d(256)`` — or bilinearly upsampled; non-square images are stretched), rows
35:223 and columns 32:220 are cut out (the inner face of an FFHQ-aligned 256 px portrait), average-pooled to 112×112
and mapped to [-1, 1]. The numbers are meaningful for FFHQ-style aligned RGB faces only; small images (a 64 px
model) are upsampled and give a much blurrier face to the network.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganinv.errors import CheckpointError, InputError, MissingWeightsError

__all__ = ["CROP", "EMBEDDING_DIM", "FACE_SIZE", "FILE_NAMES", "IRBackbone", "IdentityLoss", "STAGE_UNITS",
           "WEIGHTS_ENV", "cached_backbone", "embed", "face_crop", "find_weights", "get_weights_path",
           "load_backbone", "missing_message", "set_weights_path", "weights_available"]

WEIGHTS_ENV = "GANINV_ARCFACE"
"""Environment variable holding the path of the ArcFace / CurricularFace state dict."""
FILE_NAMES: tuple[str, ...] = ("model_ir_se50.pth", "CurricularFace_Backbone.pth")
"""File names looked for in ganinv's weights cache, in this order."""
EMBEDDING_DIM = 512
INPUT_SIZE = 112
"""Side of the face crop the network sees."""
FACE_SIZE = 256
"""Images are resized to this side before :data:`CROP` is cut out."""
CROP = (35, 223, 32, 220)
"""``(top, bottom, left, right)`` of the face region in a 256 px FFHQ-aligned image (pSp's ``IDLoss``)."""
STAGE_UNITS: dict[int, tuple[int, int, int, int]] = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}
"""Residual units per stage by network depth (101-layer networks are "depth 100" in InsightFace's code)."""
STAGE_CHANNELS = (64, 128, 256, 512)
_BATCH = 32
"""Images embedded per forward pass by :func:`embed`."""


# ---------------------------------------------------------------- the network

class _Subsample(nn.Module):
    """Keep every ``stride``-th pixel (the identity shortcut of a strided unit; no parameters)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        return x if self.stride == 1 else x[:, :, ::self.stride, ::self.stride]


class _SqueezeExcite(nn.Module):
    """Channel gating: global average → 1×1 conv down by ``reduction`` → ReLU → 1×1 conv up → sigmoid → scale."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate = self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True))))
        return x * torch.sigmoid(gate)


class _Unit(nn.Module):
    """One improved-residual unit: BN → conv3×3 → PReLU → conv3×3 (strided) → BN (→ SE), plus the shortcut."""

    def __init__(self, in_channels: int, channels: int, stride: int, se: bool) -> None:
        super().__init__()
        if in_channels == channels:
            self.shortcut_layer: nn.Module = _Subsample(stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride, bias=False),
                                                nn.BatchNorm2d(channels))
        layers: list[nn.Module] = [
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, channels, 3, 1, 1, bias=False),
            nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(channels),
        ]
        if se:
            layers.append(_SqueezeExcite(channels))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRBackbone(nn.Module):
    """ArcFace-style IR / IR-SE face network: ``[B, 3, 112, 112]`` in [-1, 1] → L2-normalised ``[B, 512]``.

    Args:
        depth: 50 (IR-SE-50, pSp's ``model_ir_se50.pth``), 100 (IR-101, CurricularFace) or 152.
        se: squeeze-excitation in every unit (IR-SE); CurricularFace's IR-101 has none.
        affine: whether the last BatchNorm1d has a scale and shift (TreB1eN's file: yes; CurricularFace: no).
        input_size: crop side the network was trained on (112; 224 for 14×14 final maps).
    """

    def __init__(self, depth: int = 50, *, se: bool = True, affine: bool = True, input_size: int = INPUT_SIZE,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if depth not in STAGE_UNITS:
            raise InputError(f"IR backbone depth must be one of {', '.join(map(str, STAGE_UNITS))}, got {depth}")
        if input_size % 16:
            raise InputError(f"IR backbone input size must be a multiple of 16, got {input_size}")
        self.depth, self.se, self.input_size = depth, se, input_size
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        side = input_size // 16  # defined before the body, so that the state dict's key order is theirs too
        self.output_layer = nn.Sequential(nn.BatchNorm2d(512), nn.Dropout(dropout), nn.Flatten(),
                                          nn.Linear(512 * side * side, EMBEDDING_DIM),
                                          nn.BatchNorm1d(EMBEDDING_DIM, affine=affine))
        units: list[nn.Module] = []
        in_channels = 64
        for channels, count in zip(STAGE_CHANNELS, STAGE_UNITS[depth]):
            for index in range(count):
                units.append(_Unit(in_channels, channels, 2 if index == 0 else 1, se))
                in_channels = channels
        self.body = nn.Sequential(*units)

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.output_layer(self.body(self.input_layer(x))), dim=1)


# ---------------------------------------------------------------- finding and loading the weights

_given_path: Path | None = None


def set_weights_path(path: str | Path | None) -> None:
    """Use this file for identity similarity for the rest of the process (``--id-weights``); None forgets it."""
    global _given_path
    _given_path = None if path is None else Path(path).expanduser()


def get_weights_path() -> Path | None:
    """The path set with :func:`set_weights_path`, if any."""
    return _given_path


def _cache_dir() -> Path:
    from ganinv import weights

    return weights.cache_dir("ganinv")


def _given() -> tuple[Path, str] | None:
    from ganinv import weights

    return weights.GIVEN["arcface"].find()


def missing_message() -> str:
    """The sentence for "no identity weights anywhere"."""
    return ("identity similarity needs ArcFace IR-SE-50 weights (model_ir_se50.pth, from TreB1eN/InsightFace_Pytorch, "
            f"as pSp uses): pass --id-weights PATH or set {WEIGHTS_ENV} (or put the file in {_cache_dir()}; "
            "CurricularFace_Backbone.pth works too)")


def find_weights(path: str | Path | None = None) -> Path:
    """The identity network's weight file: ``path``, else :func:`set_weights_path`'s, ``$GANINV_ARCFACE``, the cache.

    Raises:
        CheckpointError: a given path (argument, ``--id-weights`` or the environment variable) is not a file.
        MissingWeightsError: nothing was given and the cache holds neither file.
    """
    given: tuple[Path, str] | None = None
    if path is not None:
        given = Path(path).expanduser(), "the identity weights path"
    elif _given_path is not None:
        given = _given_path, "--id-weights"
    else:
        given = _given()  # $GANINV_ARCFACE, then the cache (see ganinv.weights.GIVEN)
    if given is None:
        raise MissingWeightsError(missing_message())
    file, source = given
    if not file.is_file():
        what = "is a folder, not a file" if file.is_dir() else "does not exist"
        raise CheckpointError(f"ArcFace weights {file} ({source}) {what}; give the path of model_ir_se50.pth")
    return file


def weights_available(path: str | Path | None = None) -> bool:
    """Whether :func:`find_weights` finds a file (given, in the environment or cached); never raises."""
    try:
        find_weights(path)
    except (CheckpointError, MissingWeightsError):
        return False
    return True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 200 else line[:197] + "…"


def _some(keys: list[str], limit: int = 4) -> str:
    return ", ".join(keys[:limit]) + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def load_backbone(path: str | Path) -> IRBackbone:
    """An :class:`IRBackbone` (eval mode, frozen, on the CPU) holding the state dict in ``path``.

    Depth (50/100/152), SE blocks and the last BatchNorm's affinity are read off the keys; a ``module.`` prefix
    (a saved ``DataParallel``) is dropped. The load is strict.

    Raises:
        CheckpointError: the file cannot be read, holds no state dict, or is not an IR / IR-SE backbone (the
            message names the first missing or unexpected keys).
    """
    path = Path(path)
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) files cannot be memory-mapped
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read is a corrupt file for the user
        raise CheckpointError(f"cannot read ArcFace weights {path}: {_first_line(exc)}; give an intact "
                              "model_ir_se50.pth (a plain state dict)") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()) or not state:
        raise CheckpointError(f"ArcFace weights {path} do not hold a state dict of tensors (expected a plain state "
                              "dict such as model_ir_se50.pth)")
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    units = {k.split(".")[1] for k in state if k.startswith("body.")}
    count = len(units)
    depth = next((d for d, stages in STAGE_UNITS.items() if sum(stages) == count), None)
    linear = state.get("output_layer.3.weight")
    if depth is None or linear is None or linear.dim() != 2 or linear.shape[1] % 512:
        found = f"{count} body units" if count else f"keys such as {_some(sorted(state), 3)}"
        raise CheckpointError(f"{path} is not an ArcFace IR / IR-SE backbone state dict (expected input_layer.*, "
                              f"body.<n>.* with 24, 49 or 50 units and output_layer.*; found {found})")
    side = round((linear.shape[1] // 512) ** 0.5)
    with torch.device("meta"):
        model = IRBackbone(depth, se="body.0.res_layer.5.fc1.weight" in state,
                           affine="output_layer.4.weight" in state, input_size=16 * side)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
                  for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        details = "; ".join(filter(None, [f"missing keys: {_some(missing)}" if missing else "",
                                          f"unexpected keys: {_some(unexpected)}" if unexpected else "",
                                          f"shape mismatches: {_some(mismatched)}" if mismatched else ""]))
        raise CheckpointError(f"ArcFace weights {path} do not match the IR{'-SE' if model.se else ''}-{depth} "
                              f"backbone ({details})")
    model = model.to_empty(device="cpu")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
    return model.eval().requires_grad_(False)


_CACHE: dict[tuple[str, int], IRBackbone] = {}


def cached_backbone(path: str | Path | None = None) -> IRBackbone:
    """:func:`load_backbone` of :func:`find_weights`'s file, kept in memory (one network at a time)."""
    file = find_weights(path)
    key = (str(file.resolve()), file.stat().st_mtime_ns)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = load_backbone(file)
    return _CACHE[key]


# ---------------------------------------------------------------- crop, embedding, loss

def face_crop(x: Tensor) -> Tensor:
    """``[B, 3, H, W]`` in [0, 1] → the network's ``[B, 3, 112, 112]`` in [-1, 1] (pSp's crop, see the module notes).

    Raises:
        InputError: not a ``[B, 3, H, W]`` batch (greyscale and other channel counts are refused: the network is
            trained on colour faces).
    """
    if x.dim() != 4 or x.shape[1] != 3:
        raise InputError(f"identity similarity takes RGB face images [B, 3, H, W], got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if (h, w) != (FACE_SIZE, FACE_SIZE):
        if h >= FACE_SIZE and w >= FACE_SIZE:
            x = F.interpolate(x, size=(FACE_SIZE, FACE_SIZE), mode="area")
        else:
            x = F.interpolate(x, size=(FACE_SIZE, FACE_SIZE), mode="bilinear", align_corners=False)
    top, bottom, left, right = CROP
    x = F.adaptive_avg_pool2d(x[:, :, top:bottom, left:right], INPUT_SIZE)
    return x * 2.0 - 1.0


def embed(model: nn.Module, x: Tensor, batch: int = _BATCH) -> Tensor:
    """Unit-length embeddings ``[B, 512]`` of face images ``[B, 3, H, W]`` in [0, 1] (in chunks of ``batch``)."""
    device = next(model.parameters()).device
    parts = [model(face_crop(x[i:i + batch].to(device=device, dtype=torch.float32)))
             for i in range(0, x.shape[0], batch)]
    return torch.cat(parts) if parts else x.new_zeros(0, EMBEDDING_DIM)


class IdentityLoss(nn.Module):
    """``1 − cos`` between the ArcFace embeddings of ``pred`` and ``target``: ``[B, 3, H, W] × 2 → [B]`` in [0, 2].

    The network is frozen and stays in eval mode. The target's embedding is computed once and reused while the
    same target values come back (compared exactly), so an optimisation loop pays for one network pass per step.
    Gradients flow to ``pred`` only. Any RGB size is accepted (resized to 256 px first, see :func:`face_crop`).

    Args:
        weights_path: the state dict (default: :func:`find_weights`).
        model: a ready :class:`IRBackbone` instead (tests, or sharing one network).

    Raises:
        MissingWeightsError / CheckpointError: see :func:`find_weights` and :func:`load_backbone`.
    """

    def __init__(self, weights_path: str | Path | None = None, *, model: nn.Module | None = None) -> None:
        super().__init__()
        self.model = (model if model is not None else load_backbone(find_weights(weights_path)))
        self.model.eval().requires_grad_(False)
        self._target: Tensor | None = None
        self._target_embedding: Tensor | None = None

    def train(self, mode: bool = True) -> IdentityLoss:
        """Stay in eval mode whatever is asked (frozen loss network)."""
        return super().train(False)

    def target_embedding(self, target: Tensor) -> Tensor:
        """The (cached) embedding of ``target``."""
        target = target.detach()
        cached = self._target
        if (cached is None or cached.shape != target.shape or cached.device != target.device
                or cached.dtype != target.dtype or not torch.equal(cached, target)):
            with torch.no_grad():
                self._target_embedding = embed(self.model, target)
            self._target = target.clone()
        assert self._target_embedding is not None
        return self._target_embedding

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        from ganinv.losses.pixel import check_pair

        check_pair(pred, target)
        goal = self.target_embedding(target)
        return 1.0 - (embed(self.model, pred) * goal).sum(dim=1).to(pred.dtype)
