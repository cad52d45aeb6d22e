"""LPIPS perceptual distance (Zhang et al. 2018) on top of the ``lpips`` package; its backbone fetched once.

``lpips`` 0.1.4 ships only the small linear calibration layers in its wheel
(``lpips/weights/v0.1/{vgg,alex}.pth``). Its backbone (VGG16 or AlexNet ImageNet features) comes from
torchvision's ``vgg16-397923af.pth`` / ``alexnet-owt-7be5be79.pth`` in the torch hub cache
(``torch.hub.get_dir()/checkpoints``, i.e. ``$TORCH_HOME/hub/checkpoints``). :class:`LPIPSLoss` gets that file
through :func:`ganinv.weights.ensure` (registry entries ``lpips-vgg`` / ``lpips-alex``): a cached file is used as it
is; otherwise it is downloaded once, checksum-checked and renamed into place — unless downloads are off
(``GANINV_OFFLINE=1``, ``--offline``), when :class:`~ganinv.errors.MissingWeightsError` names the file, the full
path to put it at and its URL. torchvision itself is never asked to download: ``lpips.LPIPS`` is built without
pretrained weights on the meta device (``pnet_rand=True``) and the trunk's convolution weights are loaded from
that file with ``torch.load(weights_only=True)``, the linear layers from the wheel. The result is the same
network ``lpips.LPIPS(net=...)`` builds when the file is in the cache (a test checks this), built in a fraction
of the time.

:func:`lpips_available` answers "usable right now without the network" (cached file): code that merely *prefers*
LPIPS when it is there (``ganinv eval``, :func:`ganinv.metrics.lpips`) never starts a download; code whose user
asked for LPIPS builds :class:`LPIPSLoss`, which fetches.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganinv import weights
from ganinv.errors import CheckpointError, GaninvError, InputError

WEIGHT_ENTRIES: dict[str, str] = {"vgg": "lpips-vgg", "alex": "lpips-alex"}
"""LPIPS backbone name → its entry in :data:`ganinv.weights.REGISTRY`."""

BACKBONES: dict[str, tuple[str, str]] = {
    net: (weights.REGISTRY[entry].file_name, weights.REGISTRY[entry].url) for net, entry in WEIGHT_ENTRIES.items()}
"""LPIPS backbone name → (file name in the torch hub cache, URL torchvision downloads it from)."""

LPIPS_MIN_SIZE = 64
"""Images whose smaller side is below this are upsampled (bilinear) to it before LPIPS."""


def _check_net(net: str) -> str:
    if net not in BACKBONES:
        raise InputError(f"unknown LPIPS network {net!r}; choose one of: {', '.join(BACKBONES)}")
    return net


def backbone_path(net: str = "vgg") -> Path:
    """Where torchvision (hence ``lpips``) looks for ``net``'s backbone weights: the torch hub cache.

    Follows ``torch.hub.get_dir()`` (``$TORCH_HOME/hub`` unless ``torch.hub.set_dir`` was called).
    """
    return weights.get(WEIGHT_ENTRIES[_check_net(net)]).path


def missing_weights_message(net: str = "vgg") -> str:
    """One-paragraph explanation of how to make LPIPS-``net`` work offline (:func:`ganinv.weights.missing_message`)."""
    return weights.missing_message(WEIGHT_ENTRIES[_check_net(net)])


def _packages_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("lpips", "torchvision"))


def lpips_available(net: str = "vgg", *, download: bool = False) -> bool:
    """Whether :class:`LPIPSLoss` (``net`` = ``"vgg"`` or ``"alex"``) can be built right now.

    True when ``lpips`` and ``torchvision`` are installed and the backbone file is in the torch hub cache; with
    ``download=True`` also when it is not but may be fetched (downloads are not off, see
    :func:`ganinv.weights.is_offline`) — for code whose user asked for LPIPS. Never raises for an unknown ``net``
    (returns False) and never touches the network.
    """
    if net not in BACKBONES or not _packages_installed():
        return False
    return backbone_path(net).is_file() or (download and not weights.is_offline())


def _load_backbone(path: Path) -> dict[str, Tensor]:
    """State dict of a torchvision VGG16/AlexNet checkpoint, read safely (memory-mapped when possible)."""
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) serialisation cannot be memory-mapped
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read is a corrupt checkpoint for the user
        raise CheckpointError(f"cannot read LPIPS backbone weights {path}: {exc}; delete the file and put an "
                              f"intact copy there") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"LPIPS backbone weights {path} do not hold a state dict")
    return state


class LPIPSLoss(nn.Module):
    """LPIPS distance per sample: ``[B, C, H, W] × 2 → [B]``, ≥ 0 (0 for identical images).

    Inputs are images in [0, 1] with ``C = 1`` (repeated to RGB) or ``C = 3``; they are mapped to the
    [-1, 1] range LPIPS expects. Images whose smaller side is below ``min_size`` (default 64) are
    upsampled bilinearly, keeping the aspect ratio, so that the smaller side is ``min_size``: the
    backbones' pooling stages need some room (VGG halves the size four times, AlexNet shrinks 32 px to
    1 px) and LPIPS was calibrated on 64 px patches. Gradients flow to both inputs.

    The network is frozen and stays in eval mode (``.train()`` is ignored, so the linear layers' dropout
    never turns on). Move it with ``.to(device)``.

    Images whose smaller side is above ``max_size`` are area-downsampled so that it is ``max_size``, as the
    field's projectors do for their perceptual loss (NVIDIA's and rosinality's: 256 px): VGG at 1024 px costs
    16× the memory and time for a loss that steers the same coarse structure.

    Args:
        net: ``"vgg"`` (the usual choice for optimisation) or ``"alex"`` (the usual choice for evaluation).
        min_size: smallest image side fed to the network.
        max_size: largest smaller side fed to the network (None: no downsampling — the metric's setting).
        offline: True never downloads the backbone, False may; None (default) follows ``GANINV_OFFLINE`` /
            ``--offline`` (see :func:`ganinv.weights.ensure`).

    Raises:
        MissingWeightsError: the backbone file is not in the torch hub cache and downloads are off (see
            :func:`missing_weights_message`).
        WeightsDownloadError: fetching the backbone failed (a :class:`~ganinv.errors.MissingWeightsError` too).
        CheckpointError: the cached backbone file is corrupt or does not match the network.
    """

    def __init__(self, net: str = "vgg", min_size: int = LPIPS_MIN_SIZE, max_size: int | None = 256, *,
                 offline: bool | None = None) -> None:
        super().__init__()
        self.net_name = _check_net(net)
        self.min_size = int(min_size)
        self.max_size = None if max_size is None else max(int(max_size), self.min_size)
        if not _packages_installed():
            raise GaninvError("LPIPS needs the 'lpips' and 'torchvision' packages: pip install lpips==0.1.4 "
                              "torchvision")
        path = weights.ensure(WEIGHT_ENTRIES[net], offline=offline)
        state = _load_backbone(path)
        self.model = self._build(net, state, path).eval().requires_grad_(False)

    @staticmethod
    def _build(net: str, backbone: dict[str, Tensor], path: Path) -> nn.Module:
        """``lpips.LPIPS(net=net)`` with every tensor loaded from disk, nothing randomly initialised.

        The module is created on the meta device (so torchvision neither downloads nor spends seconds
        initialising VGG's unused 100 M-parameter classifier), then filled with: the trunk's
        ``features.<i>.*`` from the torchvision checkpoint (lpips names them ``slice<k>.<i>.*``), the
        calibrated linear layers shipped in the lpips wheel, and lpips' fixed input scaling constants.
        The load is strict, so every tensor is accounted for.
        """
        import lpips

        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore", UserWarning)  # torchvision's "pretrained is deprecated", inside lpips
            model = lpips.LPIPS(pretrained=False, net=net, pnet_rand=True, verbose=False)
        model = model.to_empty(device="cpu")

        source = {key: "features." + key.split(".", 1)[1] for key in model.net.state_dict()}  # slice<k>.<i>.weight
        expected = model.net.state_dict()
        missing = [src for src in source.values() if src not in backbone]
        mismatched = [f"{src} {tuple(backbone[src].shape)} vs {tuple(expected[key].shape)}"
                      for key, src in source.items() if src in backbone and backbone[src].shape != expected[key].shape]
        if missing or mismatched:
            details = "; ".join(filter(None, [
                f"missing keys: {', '.join(missing[:6])}" if missing else "",
                f"shape mismatches: {', '.join(mismatched[:6])}" if mismatched else ""]))
            raise CheckpointError(f"LPIPS backbone weights {path} do not match torchvision's network ({details})")

        lin_path = Path(lpips.__file__).resolve().parent / "weights" / "v0.1" / f"{net}.pth"
        lins = torch.load(lin_path, map_location="cpu", weights_only=True)  # saved from CUDA: map to CPU
        full = {f"net.{key}": backbone[src] for key, src in source.items()}
        full.update(lins)
        full.update({"lins." + key[len("lin"):]: value for key, value in lins.items()})  # lin<k> is also lins.<k>
        full.update({f"scaling_layer.{k}": v for k, v in type(model.scaling_layer)().state_dict().items()})
        try:
            model.load_state_dict(full, strict=True)
        except RuntimeError as exc:
            raise GaninvError(f"the installed lpips package is not the expected version 0.1.4 ({exc})") from None
        return model

    def train(self, mode: bool = True) -> LPIPSLoss:
        """Stay in eval mode whatever is asked (frozen loss network)."""
        return super().train(False)

    def prepare(self, x: Tensor) -> Tensor:
        """``[B, 1|3, H, W]`` in [0, 1] → ``[B, 3, H', W']`` in [-1, 1], upsampled if smaller than ``min_size``."""
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise InputError(f"LPIPS takes [B, 1 or 3, H, W] images, got shape {tuple(x.shape)}")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        h, w = x.shape[-2:]
        if min(h, w) < self.min_size:
            scale = self.min_size / min(h, w)
            size = (max(self.min_size, round(h * scale)), max(self.min_size, round(w * scale)))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        elif self.max_size is not None and min(h, w) > self.max_size:
            scale = self.max_size / min(h, w)
            x = F.interpolate(x, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="area")
        return x * 2.0 - 1.0

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """LPIPS distance ``[B]`` between ``pred`` and ``target`` (both ``[B, C, H, W]`` in [0, 1])."""
        from ganinv.losses.pixel import check_pair

        check_pair(pred, target)
        return self.model(self.prepare(pred), self.prepare(target)).flatten()
