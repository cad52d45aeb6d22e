"""Editing real images through their latent codes.

* :mod:`~ganinv.editing.ops` — interpolation (:func:`lerp`, :func:`slerp`, :func:`interpolate`), style mixing
  (:func:`mix`) and moving along a direction on a layer range (:func:`apply_direction`);
* :mod:`~ganinv.editing.directions` — GANSpace (:func:`ganspace`), SeFa (:func:`sefa`) and InterFaceGAN
  (:func:`interfacegan`, :func:`train_boundary`) directions, their files, and :func:`resolve_direction`;
* :mod:`~ganinv.editing.codes` — latent codes read from files (any format of :mod:`ganinv.latentfiles`: ganinv/NVIDIA
  ``.npz``, ``.npy``, e4e ``latents.pt``, ReStyle/HyperStyle ``latents.npy``, rosinality and PTI ``.pt``) and checked
  for a generator;
* :mod:`~ganinv.editing.render` — batched rendering of edits and direction grids.

Typical use::

    from ganinv.editing import apply_direction, resolve_direction
    r = ganinv.invert(G, images)                               # W+ codes [B, num_ws, w_dim]
    d = resolve_direction("towards-7.npy", G)                  # or "pca:0", "sefa:2"
    edited, space = apply_direction(r.latent, d.step(), [0, 1, 2, 3], space=r.space, layers=range(0, 4))
    images = G.synthesize(edited[3], space)                    # strength 3 (in σ units)
"""

from ganinv.editing.codes import LatentCode, edit_space, read_latent_file, to_space
from ganinv.editing.directions import (
    Boundary,
    Components,
    Direction,
    classifier_labels,
    ganspace,
    interfacegan,
    load_components,
    load_direction,
    resolve_direction,
    sefa,
    train_boundary,
)
from ganinv.editing.ops import apply_direction, interpolate, lerp, mix, parse_layers, slerp, to_wplus
from ganinv.editing.render import direction_grid, render

__all__ = [
    "Boundary", "Components", "Direction", "LatentCode", "apply_direction", "classifier_labels", "direction_grid",
    "edit_space", "ganspace", "interfacegan", "interpolate", "lerp", "load_components", "load_direction", "mix",
    "parse_layers", "read_latent_file", "render", "resolve_direction", "sefa", "slerp", "to_space", "to_wplus",
    "train_boundary",
]
