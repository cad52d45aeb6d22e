"""The digit classifier used to *evaluate* generators and inversions.

It plays the role that an identity network (ArcFace) plays for faces: class
preservation of a reconstruction, confidence and class coverage of samples, and the
feature space of the Fréchet distance.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class DigitClassifier(nn.Module):
    """Small CNN for ``[B, 1, 32, 32]`` images in [0, 1] → ``[B, 10]`` logits.

    :meth:`features` returns the ``feature_dim``-d penultimate activations.
    """

    arch = "digit-classifier"

    def __init__(self, width: int = 32, feature_dim: int = 128, num_classes: int = 10, img_channels: int = 1,
                 resolution: int = 32) -> None:
        super().__init__()
        self.width, self.feature_dim, self.num_classes = width, feature_dim, num_classes
        self.img_channels, self.resolution = img_channels, resolution
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(img_channels, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(True),
            nn.Conv2d(w, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(True), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(True),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(True), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.BatchNorm2d(4 * w), nn.ReLU(True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(4 * w, feature_dim), nn.ReLU(True),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(feature_dim, num_classes)

    def config(self) -> dict[str, Any]:
        return {"arch": self.arch, "width": self.width, "feature_dim": self.feature_dim,
                "num_classes": self.num_classes, "img_channels": self.img_channels, "resolution": self.resolution}

    def features(self, x: Tensor) -> Tensor:
        """``[B, 1, 32, 32]`` in [0, 1] → ``[B, feature_dim]``."""
        return self.body((x - 0.5) / 0.5)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.features(x)))

    @torch.no_grad()
    def predict(self, x: Tensor, batch_size: int = 500) -> tuple[Tensor, Tensor]:
        """Class ``[B]`` and max-softmax confidence ``[B]`` for images in [0, 1]."""
        probs = torch.cat([self(chunk).softmax(1) for chunk in x.split(batch_size)])
        conf, cls = probs.max(1)
        return cls, conf
