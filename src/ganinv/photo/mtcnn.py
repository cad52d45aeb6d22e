"""MTCNN face detector (Zhang et al., 2016): P-Net → R-Net → O-Net, five landmarks per face.

This is ganinv's own implementation of the three networks and of the cascade (image pyramid,
non-maximum suppression, bounding-box regression, landmark decoding). Only the trained weights come
from elsewhere: the files ``pnet.pt``, ``rnet.pt`` and ``onet.pt`` that the facenet-pytorch wheel
ships (MIT licence, © 2019 Timothy Esler; the weights are a port of the original MTCNN release).
facenet-pytorch pins old torch/Pillow/numpy versions, so install it **without its dependencies**::

    python -m pip install --no-deps facenet-pytorch==2.6.0

Nothing of facenet-pytorch is imported: the package is only located on disk
(:func:`importlib.util.find_spec`) and its three state dicts are read with
``torch.load(weights_only=True)``. A folder holding the three files can be given instead, as the
``weights_dir`` argument or the ``GANINV_MTCNN_WEIGHTS`` environment variable.

Coordinates are pixel coordinates of the input image, x to the right, y down, as everywhere in
:mod:`ganinv.photo` (pixel ``(i, j)`` centred on ``(i, j)``; MTCNN's own decoding is within half a
pixel of that convention, below its accuracy). Landmark order: eye on the image's left (the person's right eye),
eye on the image's right, nose tip, mouth corner on the image's left, mouth corner on the right.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import nms

from ganinv.errors import CheckpointError
from ganinv.photo._image import ImageLike, to_rgb_array
from ganinv.photo.detect import Face
from ganinv.photo.errors import DetectorWeightsError

WEIGHTS_ENV = "GANINV_MTCNN_WEIGHTS"
PIP_COMMAND = "python -m pip install --no-deps facenet-pytorch==2.6.0"
_FILES = ("pnet.pt", "rnet.pt", "onet.pt")


def _conv_prelu(module: nn.Module, index: int, cin: int, cout: int, k: int) -> None:
    setattr(module, f"conv{index}", nn.Conv2d(cin, cout, kernel_size=k))
    setattr(module, f"prelu{index}", nn.PReLU(cout))


def _apply(module: nn.Module, index: int, x: Tensor) -> Tensor:
    return getattr(module, f"prelu{index}")(getattr(module, f"conv{index}")(x))


def _tf_flatten(x: Tensor) -> Tensor:
    """Flatten ``[B, C, H, W]`` in the (W, H, C) order that the ported dense weights expect."""
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class PNet(nn.Module):
    """Proposal network, fully convolutional.

    Input ``[B, 3, H, W]`` normalised as ``(rgb255 − 127.5) / 128``; output
    ``(regression [B, 4, H', W'], face probability [B, H', W'])`` with one cell per 12 × 12
    window at stride 2.
    """

    def __init__(self) -> None:
        super().__init__()
        _conv_prelu(self, 1, 3, 10, 3)
        _conv_prelu(self, 2, 10, 16, 3)
        _conv_prelu(self, 3, 16, 32, 3)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = F.max_pool2d(_apply(self, 1, x), 2, 2, ceil_mode=True)
        x = _apply(self, 3, _apply(self, 2, x))
        return self.conv4_2(x), self.conv4_1(x).softmax(dim=1)[:, 1]


class RNet(nn.Module):
    """Refinement network. Input ``[B, 3, 24, 24]`` (normalised as for P-Net); output
    ``(regression [B, 4], face probability [B])``."""

    def __init__(self) -> None:
        super().__init__()
        _conv_prelu(self, 1, 3, 28, 3)
        _conv_prelu(self, 2, 28, 48, 3)
        _conv_prelu(self, 3, 48, 64, 2)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = F.max_pool2d(_apply(self, 1, x), 3, 2, ceil_mode=True)
        x = F.max_pool2d(_apply(self, 2, x), 3, 2, ceil_mode=True)
        x = self.prelu4(self.dense4(_tf_flatten(_apply(self, 3, x))))
        return self.dense5_2(x), self.dense5_1(x).softmax(dim=1)[:, 1]


class ONet(nn.Module):
    """Output network. Input ``[B, 3, 48, 48]``; output ``(regression [B, 4], landmarks [B, 10],
    face probability [B])`` — landmarks as five x then five y, relative to the input window in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        _conv_prelu(self, 1, 3, 32, 3)
        _conv_prelu(self, 2, 32, 64, 3)
        _conv_prelu(self, 3, 64, 64, 3)
        _conv_prelu(self, 4, 64, 128, 2)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = F.max_pool2d(_apply(self, 1, x), 3, 2, ceil_mode=True)
        x = F.max_pool2d(_apply(self, 2, x), 3, 2, ceil_mode=True)
        x = F.max_pool2d(_apply(self, 3, x), 2, 2, ceil_mode=True)
        x = self.prelu5(self.dense5(_tf_flatten(_apply(self, 4, x))))
        return self.dense6_2(x), self.dense6_3(x), self.dense6_1(x).softmax(dim=1)[:, 1]


def find_weights(weights_dir: str | Path | None = None) -> Path:
    """The folder holding ``pnet.pt``, ``rnet.pt`` and ``onet.pt``.

    Looked up in order: ``weights_dir``, ``$GANINV_MTCNN_WEIGHTS``, the ``data/`` folder of an installed
    facenet-pytorch. Raises :class:`DetectorWeightsError` (with the pip command) when none has them.
    """
    given = weights_dir if weights_dir is not None else os.environ.get(WEIGHTS_ENV) or None
    if given is not None:
        folder = Path(given).expanduser()
        missing = [f for f in _FILES if not (folder / f).is_file()]
        if missing:
            source = "weights_dir" if weights_dir is not None else f"${WEIGHTS_ENV}"
            raise DetectorWeightsError(
                f"MTCNN weights: {source} = {str(folder)!r} lacks {', '.join(missing)}. "
                f"Point it at a folder holding {', '.join(_FILES)}, or unset it and run: {PIP_COMMAND}")
        return folder
    try:
        spec = importlib.util.find_spec("facenet_pytorch")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin:
        folder = Path(spec.origin).parent / "data"
        if all((folder / f).is_file() for f in _FILES):
            return folder
    raise DetectorWeightsError(
        "The MTCNN face detector's weights are not installed. Install them (the facenet-pytorch wheel ships "
        f"them; --no-deps keeps your torch and Pillow):\n    {PIP_COMMAND}\n"
        f"or set {WEIGHTS_ENV} to a folder holding {', '.join(_FILES)}. "
        "Without a detector, align with --align center (or none).")


def _load(module: nn.Module, path: Path) -> nn.Module:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        module.load_state_dict(state, strict=True)
    except Exception as exc:  # corrupt, foreign or unsafe file
        raise CheckpointError(f"MTCNN weights {str(path)!r} could not be loaded: {exc}") from exc
    return module.eval().requires_grad_(False)


def _normalise(x: Tensor) -> Tensor:
    return (x - 127.5) * 0.0078125


def _square(boxes: Tensor) -> Tensor:
    """Grow ``[N, 4]`` boxes (x0, y0, x1, y1) to squares with the same centre (side = longer side)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    x0 = boxes[:, 0] + (w - side) / 2
    y0 = boxes[:, 1] + (h - side) / 2
    return torch.stack([x0, y0, x0 + side, y0 + side], dim=1)


def _regress(boxes: Tensor, reg: Tensor, plus_one: bool = True) -> Tensor:
    """Apply MTCNN's box regression ``reg`` ``[N, 4]`` (offsets in units of the box size)."""
    extra = 1.0 if plus_one else 0.0
    w = (boxes[:, 2] - boxes[:, 0] + extra)[:, None]
    h = (boxes[:, 3] - boxes[:, 1] + extra)[:, None]
    return boxes + reg * torch.cat([w, h, w, h], dim=1)


def _nms_min(boxes: Tensor, scores: Tensor, threshold: float) -> Tensor:
    """Greedy NMS on intersection over the *smaller* area (MTCNN's last step); indices kept, best first."""
    order = torch.argsort(scores, descending=True)
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    keep: list[int] = []
    while order.numel():
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = (torch.minimum(boxes[i, 2], boxes[rest, 2]) - torch.maximum(boxes[i, 0], boxes[rest, 0]) + 1).clamp(min=0)
        ih = (torch.minimum(boxes[i, 3], boxes[rest, 3]) - torch.maximum(boxes[i, 1], boxes[rest, 1]) + 1).clamp(min=0)
        overlap = iw * ih / torch.minimum(area[i], area[rest])
        order = rest[overlap <= threshold]
    return torch.tensor(keep, dtype=torch.long)


def _windows(img: Tensor, boxes: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """Cut square windows out of ``img`` ``[1, 3, H, W]`` (0..255) and resize them to ``size``.

    Boxes are truncated to integers; the part of a window outside the image is zero (as in the
    original MTCNN). Returns the windows ``[N, 3, size, size]`` and the integer boxes used ``[N, 4]``
    (x0, y0, x1, y1 with x1, y1 inclusive; column x0 − 1 is the window's first).
    """
    _, _, h, w = img.shape
    ib = boxes.trunc().to(torch.long)
    out = []
    for x0, y0, x1, y1 in ib.tolist():
        ww, hh = x1 - x0 + 1, y1 - y0 + 1
        win = img.new_zeros(1, 3, hh, ww)
        sx0, sy0 = max(x0 - 1, 0), max(y0 - 1, 0)
        sx1, sy1 = min(x1, w), min(y1, h)
        if sx1 > sx0 and sy1 > sy0:
            dx, dy = sx0 - (x0 - 1), sy0 - (y0 - 1)
            win[:, :, dy:dy + sy1 - sy0, dx:dx + sx1 - sx0] = img[:, :, sy0:sy1, sx0:sx1]
        out.append(F.interpolate(win, size=(size, size), mode="area"))
    return torch.cat(out), ib


class MTCNNDetector:
    """Five-landmark face detector; implements :class:`ganinv.photo.detect.Detector`.

    Args:
        weights_dir: folder with ``pnet.pt``/``rnet.pt``/``onet.pt`` (default: see :func:`find_weights`).
        min_face_size: smallest face searched for, in pixels (default 20).
        thresholds: face-probability thresholds of the three stages (default 0.6, 0.7, 0.7).
        factor: scale step of the image pyramid (default 0.709).
        device: where the networks run (default CPU).
    """

    def __init__(self, weights_dir: str | Path | None = None, *, min_face_size: float = 20.0,
                 thresholds: Sequence[float] = (0.6, 0.7, 0.7), factor: float = 0.709,
                 device: str | torch.device = "cpu") -> None:
        folder = find_weights(weights_dir)
        self.weights_dir = folder
        self.device = torch.device(device)
        self.pnet = _load(PNet(), folder / "pnet.pt").to(self.device)
        self.rnet = _load(RNet(), folder / "rnet.pt").to(self.device)
        self.onet = _load(ONet(), folder / "onet.pt").to(self.device)
        self.min_face_size = float(min_face_size)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = float(factor)

    @torch.no_grad()
    def detect(self, image: ImageLike) -> list[Face]:
        """Faces in ``image`` (PIL, tensor ``[C, H, W]`` in [0, 1] or uint8 array), most confident first."""
        arr = to_rgb_array(image)
        img = torch.from_numpy(arr).permute(2, 0, 1)[None].float().to(self.device)
        boxes, scores, points = self._cascade(img)
        faces = []
        for b, s, p in zip(boxes.tolist(), scores.tolist(), points.tolist()):
            faces.append(Face(box=(b[0], b[1], b[2], b[3]), score=float(s),
                              landmarks=tuple((float(x), float(y)) for x, y in p)))
        return faces

    def _cascade(self, img: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        t1, t2, t3 = self.thresholds
        _, _, h, w = img.shape
        empty = (torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, 5, 2))
        # Stage 1: P-Net over a pyramid whose first level maps min_face_size to the 12 px window.
        scale = 12.0 / self.min_face_size
        proposals = []
        while min(h, w) * scale >= 12:
            level = F.interpolate(img, size=(int(h * scale + 1), int(w * scale + 1)), mode="area")
            reg, prob = self.pnet(_normalise(level))
            ys, xs = torch.nonzero(prob[0] >= t1, as_tuple=True)
            if ys.numel():
                cell = torch.stack([xs, ys], dim=1).float()
                top_left = ((2 * cell + 1) / scale).floor()
                bottom_right = ((2 * cell + 12) / scale).floor()
                b = torch.cat([top_left, bottom_right], dim=1)
                sc = prob[0, ys, xs]
                rg = reg[0, :, ys, xs].T
                keep = nms(b, sc, 0.5)
                proposals.append((b[keep], sc[keep], rg[keep]))
            scale *= self.factor
        if not proposals:
            return empty
        boxes = torch.cat([p[0] for p in proposals])
        scores = torch.cat([p[1] for p in proposals])
        regs = torch.cat([p[2] for p in proposals])
        keep = nms(boxes, scores, 0.7)
        boxes = _square(_regress(boxes[keep], regs[keep], plus_one=False))
        # Stage 2: R-Net on 24 px windows.
        windows, _ = _windows(img, boxes, 24)
        reg, prob = self._batched(self.rnet, windows)
        ok = prob > t2
        if not ok.any():
            return empty
        boxes, scores, reg = boxes[ok], prob[ok], reg[ok]
        keep = nms(boxes, scores, 0.7)
        boxes = _square(_regress(boxes[keep], reg[keep]))
        # Stage 3: O-Net on 48 px windows: final score, box and five landmarks.
        windows, ib = _windows(img, boxes, 48)
        reg, marks, prob = self._batched(self.onet, windows)
        ok = prob > t3
        if not ok.any():
            return empty
        ib, reg, marks, scores = ib[ok].float(), reg[ok], marks[ok], prob[ok]
        size_w = (ib[:, 2] - ib[:, 0] + 1)[:, None]
        size_h = (ib[:, 3] - ib[:, 1] + 1)[:, None]
        px = marks[:, :5] * size_w + ib[:, 0:1] - 1
        py = marks[:, 5:] * size_h + ib[:, 1:2] - 1
        points = torch.stack([px, py], dim=2)
        boxes = _regress(ib, reg)
        keep = _nms_min(boxes, scores, 0.7)
        return boxes[keep].cpu(), scores[keep].cpu(), points[keep].cpu()

    @staticmethod
    def _batched(net: nn.Module, x: Tensor, chunk: int = 256) -> tuple[Tensor, ...]:
        outs = [net(_normalise(x[i:i + chunk])) for i in range(0, len(x), chunk)]
        return tuple(torch.cat(parts) for parts in zip(*outs))


__all__ = ["MTCNNDetector", "PNet", "RNet", "ONet", "find_weights", "WEIGHTS_ENV", "PIP_COMMAND"]
