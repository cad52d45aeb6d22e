"""Load generators from the checkpoint files people already have — without running their code.

Supported inputs (:func:`load_generator` picks by looking at the file's bytes, not its name):

* a bundled model name (:func:`ganinv.zoo.available`);
* a ganinv model folder (``config.json`` + ``model.safetensors``) or a ``.safetensors``
  file with a sibling ``config.json``;
* rosinality ``stylegan2-pytorch`` ``.pt`` files (:func:`load_rosinality`): converter output
  ``{"g_ema", "latent_avg"}``, training checkpoints ``{g, d, g_ema, g_optim, d_optim, args,
  ada_aug_p}``, pSp/e4e checkpoints (their ``decoder.*``) and bare state dicts. They are
  read with ``torch.load(weights_only=True)`` (``argparse.Namespace`` is the one extra class
  allowed, because rosinality stores its ``args`` that way);
* NVIDIA ``stylegan2-ada-pytorch`` / ``stylegan3`` ``.pkl`` files (:func:`load_nvidia_pkl`), read by a
  restricted unpickler (:class:`NvidiaUnpickler`) that rebuilds tensors and plain settings
  and refuses every other global. The pickled ``module_src`` (NVIDIA's source code that
  their loader ``exec()``\\ s) is never executed, only its length is kept.

The StyleGAN2 architecture (resolution, per-resolution widths, ``z_dim``, ``w_dim``,
``n_mlp``, image channels) is inferred from tensor names and shapes, and the weights are
loaded strictly: any missing key, unexpected key or shape mismatch is an error that lists
them. Loaders report things the user should know (an estimated ``latent_avg``, an ignored
``conv_clamp``) as *notices*: appended to a ``notices`` list when one is passed, otherwise
issued with :func:`warnings.warn` as :class:`CheckpointNotice`.

Layout (adding a format is adding a module and registering it): :mod:`.sniff` (format detection),
:mod:`.unpickler` (the restricted unpickler: pickle → :class:`PersistentRecord` trees, no architecture
knowledge), :mod:`.torchfile` (``torch.load(weights_only=True)``), :mod:`.rosinality`, :mod:`.nvidia`
(pickle → records → the first matching *record converter*: StyleGAN2, then StyleGAN3;
:func:`register_record_converter`), :mod:`.folder` (ganinv folders / safetensors), :mod:`.load`
(:func:`load_generator` and its format registry, :func:`register_format`) and :mod:`.inspect`
(:func:`inspect_checkpoint`).
"""

from __future__ import annotations

from ganinv.generators.checkpoints.common import W_AVG_SAMPLES, CheckpointNotice
from ganinv.generators.checkpoints.inspect import inspect_checkpoint
from ganinv.generators.checkpoints.load import CheckpointFormat, formats, load_generator, register_format
from ganinv.generators.checkpoints.nvidia import RecordConverter, find_record_converter, load_nvidia_pkl
from ganinv.generators.checkpoints.nvidia import nvidia_to_rosinality, read_nvidia_pkl, record_converters
from ganinv.generators.checkpoints.nvidia import register_record_converter
from ganinv.generators.checkpoints.rosinality import GANINV_EXTRA_KEY, infer_rosinality_config, load_rosinality
from ganinv.generators.checkpoints.rosinality import save_rosinality
from ganinv.generators.checkpoints.sniff import sniff_format
from ganinv.generators.checkpoints.torchfile import _torch_load as _torch_load
from ganinv.generators.checkpoints.unpickler import _ALLOWED_GLOBALS as _ALLOWED_GLOBALS
from ganinv.generators.checkpoints.unpickler import _EasyDict as _EasyDict
from ganinv.generators.checkpoints.unpickler import _flatten_record as _flatten_record
from ganinv.generators.checkpoints.unpickler import _prescan_pickle as _prescan_pickle
from ganinv.generators.checkpoints.unpickler import _refused_global_from as _refused_global_from
from ganinv.generators.checkpoints.unpickler import NvidiaUnpickler, PersistentRecord

__all__ = [
    "CheckpointNotice", "PersistentRecord", "NvidiaUnpickler", "sniff_format", "load_rosinality",
    "save_rosinality", "infer_rosinality_config", "load_nvidia_pkl", "read_nvidia_pkl", "nvidia_to_rosinality",
    "load_generator", "inspect_checkpoint", "W_AVG_SAMPLES", "GANINV_EXTRA_KEY",
    "CheckpointFormat", "register_format", "formats",
    "RecordConverter", "register_record_converter", "record_converters", "find_record_converter",
]
