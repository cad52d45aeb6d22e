"""Run a reference StyleGAN2 implementation from the user's own checkout, with the weights of a ganinv model.

Given a checkout of `rosinality/stylegan2-pytorch <https://github.com/rosinality/stylegan2-pytorch>`_ or of
`NVlabs/stylegan2-ada-pytorch <https://github.com/NVlabs/stylegan2-ada-pytorch>`_, :func:`load_reference`
builds *that repository's* generator class in this process, gives it the weights and the stored noise maps
of a :class:`~ganinv.generators.stylegan2.StyleGAN2Generator`, and returns a function that renders W+
latents with the reference's own synthesis code. :func:`time_step` times one inversion step (forward +
backward to W+) of any such render function, so ganinv's generator and the reference can be timed on the
same weights, on the same machine, in the same process. No code of either repository is copied here: it
is imported at run time from the path given.

rosinality/stylegan2-pytorch
    ``model.Generator(size, style_dim, n_mlp, channel_multiplier, blur_kernel, lr_mlp)`` is built and
    ``G.state_dict()`` is loaded into it as is (ganinv uses rosinality's parameter names); the loader
    checks that no key is missing or unexpected. Rendering is
    ``Generator([ws], input_is_latent=True, randomize_noise=False)``: a 3-D ``ws`` is used as the W+
    latent directly, and the stored ``noises.noise_i`` buffers (loaded from ``G``) are the noise.

    **Stand-in for the compiled ops.** ``model.py`` does ``from op import FusedLeakyReLU,
    fused_leaky_relu, upfirdn2d, conv2d_gradfix``, and rosinality's ``op/__init__.py`` compiles two CUDA
    extensions with ``torch.utils.cpp_extension.load`` at import time, which fails on a machine without
    CUDA. So ``op`` is never imported: while ``model.py`` is executed, ``sys.modules["op"]`` is a stand-in
    module written here (the previous entry, if any, is put back afterwards) holding

    * ``fused_leaky_relu`` / ``FusedLeakyReLU``: bias + ``leaky_relu(·, 0.2) · √2`` in plain PyTorch,
      the same computation as rosinality's own CPU branch of ``fused_leaky_relu``;
    * ``upfirdn2d``: zero-insertion upsampling, padding/cropping, FIR filtering with the flipped kernel
      and striding, in plain PyTorch, the same computation (and argument conventions: scalar or pair
      ``up``/``down``, 2- or 4-element ``pad``) as rosinality's CPU branch ``upfirdn2d_native``;
    * ``conv2d_gradfix``: rosinality's own ``op/conv2d_gradfix.py`` loaded from the checkout as a lone
      file (it compiles nothing; off CUDA it calls ``F.conv2d`` / ``F.conv_transpose2d``); if that file
      is missing or fails to load, a stand-in with the same two functions calling ``torch.nn.functional``
      (and ``no_weight_gradients``) is used instead (:attr:`ReferenceRender.notes` says which).

    Everything else that runs — mapping, modulated convolution in rosinality's default *fused*
    (grouped-convolution) form, noise injection, ToRGB and skip upsampling — is ``model.py``'s code.
    The stand-ins are used on any device (so a CUDA run of this helper times the same pure-PyTorch ops,
    not rosinality's CUDA kernels).

NVlabs/stylegan2-ada-pytorch
    ``training.networks.Generator(z_dim, c_dim=0, w_dim, img_resolution, img_channels,
    mapping_kwargs={num_layers, lr_multiplier}, synthesis_kwargs={channel_base, channel_max,
    num_fp16_res=0, conv_clamp=None, architecture='skip', resample_filter})`` is built (for ganinv's default
    widths: ``channel_base=32768, channel_max=512``, i.e. config-f), and ganinv's weights are renamed to
    NVIDIA's names by inverting :func:`ganinv.generators.checkpoints.nvidia_to_rosinality`: the tensors
    are the same numbers (both store ``randn / lr_mul`` weights with the gains applied at run time), only
    reshaped (``[1,O,I,k,k]`` → ``[O,I,k,k]``, noise strength ``[1]`` → ``[]``, noise ``[1,1,r,r]`` →
    ``[r,r]``, ToRGB bias ``[1,C,1,1]`` → ``[C]``) and the FIR filters divided by the 4 that rosinality folds
    into them. The state dict is loaded with ``strict=True``. Rendering is
    ``G.synthesis(ws, noise_mode='const', force_fp32=True)`` in eval mode (NVIDIA's fused modulated
    convolution, as in its ``projector.py``). Nothing is stood in for: on CPU NVIDIA's ``bias_act`` and
    ``upfirdn2d`` take their own pure-PyTorch reference paths and never try to build their plugins, and
    ``conv2d_gradfix`` calls ``torch.nn.functional``. Importing puts the checkout on ``sys.path`` just for
    the import; modules ``dnnlib``, ``torch_utils`` and ``training`` from a *different* path already in
    ``sys.modules`` are dropped first. If ``requests`` or ``distutils`` (imported by ``dnnlib/util.py``
    for downloads only) cannot be imported, tiny stand-ins are inserted so the import succeeds.

Both reference modules are put in eval mode, on ``G``'s device, with ``requires_grad=False`` (a frozen
generator, as in inversion). ganinv's ``output_activation="tanh"`` exists in neither repository; for such a
model ``torch.tanh`` is applied to the reference's output, after its code. Models that a reference cannot
express (other widths, ``img_channels != 3`` or ``z_dim != w_dim`` for rosinality, …) raise ``ValueError``.

Example::

    from pathlib import Path
    import torch
    from ganinv.generators.stylegan2 import StyleGAN2Generator
    from reference_repo import load_reference, time_step

    G = StyleGAN2Generator(resolution=64).eval().requires_grad_(False)
    kind, render = load_reference(Path("~/src/stylegan2-pytorch").expanduser(), G)
    ws = torch.randn(1, G.num_ws, G.w_dim)
    print(kind, (render(ws) - G._native(ws, "w+", None)).abs().max())
    print(time_step(render, ws), time_step(lambda w: G._native(w, "w+", None), ws))
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganinv.generators.stylegan2 import StyleGAN2Generator

__all__ = ["detect", "load_reference", "time_step", "ReferenceRender", "KINDS"]

#: The reference repositories :func:`detect` recognises.
KINDS = ("rosinality", "nvidia")

_NVIDIA_ROOTS = ("dnnlib", "torch_utils", "training")


# ----------------------------------------------------------------------------------
# Detection
# ----------------------------------------------------------------------------------
def detect(path: Path) -> str:
    """Tell which reference repository the checkout at ``path`` is.

    Returns:
        ``"rosinality"`` for rosinality/stylegan2-pytorch (``model.py`` with ``class Generator`` and
        ``op/{__init__,upfirdn2d,fused_act}.py``), ``"nvidia"`` for NVlabs/stylegan2-ada-pytorch
        (``training/networks.py``, ``torch_utils/ops/bias_act.py``, ``dnnlib/``).

    Raises:
        ValueError: ``path`` is not a folder, is neither checkout, or looks like both.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ValueError(f"{path} does not exist; give the folder of a stylegan2-pytorch (rosinality) or "
                         f"stylegan2-ada-pytorch (NVIDIA) checkout")
    if not path.is_dir():
        raise ValueError(f"{path} is a file; give the folder of the checkout (the one holding model.py or "
                         f"training/networks.py), not a file in it")
    ros_files = [path / "model.py", path / "op" / "__init__.py", path / "op" / "upfirdn2d.py",
                 path / "op" / "fused_act.py"]
    nv_files = [path / "training" / "networks.py", path / "torch_utils" / "ops" / "bias_act.py",
                path / "torch_utils" / "ops" / "upfirdn2d.py", path / "dnnlib" / "__init__.py"]
    is_ros = all(f.is_file() for f in ros_files)
    is_nv = all(f.is_file() for f in nv_files)
    if is_ros and is_nv:
        raise ValueError(f"{path} has the files of both rosinality/stylegan2-pytorch (model.py, op/) and "
                         f"NVlabs/stylegan2-ada-pytorch (training/networks.py, torch_utils/); give one checkout")
    if is_ros:
        text = (path / "model.py").read_text(errors="replace")
        if "class Generator" not in text or "class ModulatedConv2d" not in text:
            raise ValueError(f"{path}/model.py has no 'class Generator' / 'class ModulatedConv2d'; it is not "
                             f"rosinality/stylegan2-pytorch's model.py")
        return "rosinality"
    if is_nv:
        text = (path / "training" / "networks.py").read_text(errors="replace")
        if "class SynthesisNetwork" not in text or "class Generator" not in text:
            raise ValueError(f"{path}/training/networks.py has no 'class SynthesisNetwork' / 'class Generator'; "
                             f"it is not NVlabs/stylegan2-ada-pytorch's networks.py")
        return "nvidia"
    if (path / "training" / "networks_stylegan2.py").is_file():
        raise ValueError(f"{path} looks like NVlabs/stylegan3 (training/networks_stylegan2.py); only "
                         f"rosinality/stylegan2-pytorch and NVlabs/stylegan2-ada-pytorch are supported")
    seen = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())[:15]
    raise ValueError(f"{path} is neither rosinality/stylegan2-pytorch (needs model.py and op/upfirdn2d.py, "
                     f"op/fused_act.py) nor NVlabs/stylegan2-ada-pytorch (needs training/networks.py, "
                     f"torch_utils/ops/bias_act.py, dnnlib/); it holds: {', '.join(seen) or '(nothing)'}")


# ----------------------------------------------------------------------------------
# The render callable
# ----------------------------------------------------------------------------------
class ReferenceRender:
    """``render(ws)``: W+ ``[B, num_ws, w_dim]`` → images ``[B, C, H, W]`` with a reference repo's code.

    Attributes:
        kind: ``"rosinality"`` or ``"nvidia"``.
        module: the reference generator (``model.Generator`` or ``training.networks.Generator``).
        num_ws, w_dim: the W+ shape it takes.
        tanh: whether ``torch.tanh`` is applied after the reference (ganinv's ``output_activation="tanh"``).
        notes: what was stood in for or adapted, in words.
    """

    def __init__(self, kind: str, module: nn.Module, fn: Callable[[Tensor], Tensor], num_ws: int, w_dim: int,
                 tanh: bool, notes: list[str]) -> None:
        self.kind, self.module, self._fn = kind, module, fn
        self.num_ws, self.w_dim, self.tanh, self.notes = num_ws, w_dim, tanh, notes

    def __call__(self, ws: Tensor) -> Tensor:
        if ws.dim() != 3 or tuple(ws.shape[1:]) != (self.num_ws, self.w_dim):
            raise ValueError(f"expected W+ latents of shape [B, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        out = self._fn(ws)
        return torch.tanh(out) if self.tanh else out

    def __repr__(self) -> str:
        return f"ReferenceRender(kind={self.kind!r}, num_ws={self.num_ws}, w_dim={self.w_dim}, tanh={self.tanh})"


def load_reference(path: Path, G: StyleGAN2Generator) -> tuple[str, Callable[[Tensor], Tensor]]:
    """Build the reference repository's generator at ``path`` with ``G``'s weights and stored noise.

    Args:
        path: a checkout of rosinality/stylegan2-pytorch or NVlabs/stylegan2-ada-pytorch (see :func:`detect`).
        G: the ganinv model whose weights (mapping, synthesis, ``noises.noise_i``, and ``w_avg`` for NVIDIA)
            are copied; it is not modified.

    Returns:
        ``(kind, render)``: ``render(ws)`` maps W+ latents ``[B, G.num_ws, G.w_dim]`` to images in ``G``'s
        native range, and should equal ``G._native(ws, "w+", None)`` to float32 rounding (~1e-5 … 1e-4).
        ``render`` is a :class:`ReferenceRender` (it also carries the module and notes).

    Raises:
        ValueError: ``path`` is not a supported checkout, or ``G`` has a shape the reference cannot build.
        RuntimeError: the weights do not map one to one onto the reference's parameters (names listed).
    """
    if not isinstance(G, StyleGAN2Generator):
        raise ValueError(f"G must be a ganinv StyleGAN2Generator, got {type(G).__name__}")
    path = Path(path).expanduser().resolve()
    kind = detect(path)
    if kind == "rosinality":
        return kind, _load_rosinality(path, G)
    return kind, _load_nvidia(path, G)


# ----------------------------------------------------------------------------------
# rosinality: stand-in for the `op` package (written here; see the module docstring)
# ----------------------------------------------------------------------------------
def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"expected one int or a pair, got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _standin_upfirdn2d(input: Tensor, kernel: Tensor, up: Any = 1, down: Any = 1,
                       pad: tuple[int, ...] = (0, 0)) -> Tensor:
    """Upsample by zero insertion, pad (or crop, for negative pads), filter with ``kernel`` and downsample.

    Same contract as rosinality's ``op.upfirdn2d`` (``up``/``down`` are ``(x, y)`` when pairs, ``pad`` is
    ``(p0, p1)`` for both axes or ``(x0, x1, y0, y1)``; the kernel is applied as a true convolution, i.e.
    flipped, and the output is ``(in·up + p0 + p1 − k) // down + 1`` per axis), in plain PyTorch.
    """
    up_x, up_y = _pair(up)
    down_x, down_y = _pair(down)
    if len(pad) == 2:
        px0, px1, py0, py1 = pad[0], pad[1], pad[0], pad[1]
    elif len(pad) == 4:
        px0, px1, py0, py1 = pad
    else:
        raise ValueError(f"pad must have 2 or 4 entries, got {pad!r}")
    b, c, h, w = input.shape
    x = input.reshape(b * c, 1, h, w)
    if up_x > 1 or up_y > 1:
        x = x.reshape(b * c, 1, h, 1, w, 1)
        x = F.pad(x, [0, up_x - 1, 0, 0, 0, up_y - 1])
        x = x.reshape(b * c, 1, h * up_y, w * up_x)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    hh, ww = x.shape[2], x.shape[3]
    x = x[:, :, max(-py0, 0): hh - max(-py1, 0), max(-px0, 0): ww - max(-px1, 0)]
    kh, kw = kernel.shape
    x = F.conv2d(x, torch.flip(kernel, [0, 1]).to(x).view(1, 1, kh, kw))
    x = x[:, :, ::down_y, ::down_x]
    return x.reshape(b, c, x.shape[2], x.shape[3])


def _standin_fused_leaky_relu(input: Tensor, bias: Tensor | None = None, negative_slope: float = 0.2,
                              scale: float = 2 ** 0.5) -> Tensor:
    """``leaky_relu(input + bias, negative_slope) · scale``, bias broadcast along dim 1 (rosinality's CPU path)."""
    if bias is not None:
        input = input + bias.view(1, bias.shape[0], *([1] * (input.dim() - 2)))
    return F.leaky_relu(input, negative_slope=negative_slope) * scale


class _StandinFusedLeakyReLU(nn.Module):
    """Module form of :func:`_standin_fused_leaky_relu` with rosinality's signature and ``bias`` parameter."""

    def __init__(self, channel: int, bias: bool = True, negative_slope: float = 0.2,
                 scale: float = 2 ** 0.5) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel)) if bias else None
        self.negative_slope, self.scale = negative_slope, scale

    def forward(self, input: Tensor) -> Tensor:
        return _standin_fused_leaky_relu(input, self.bias, self.negative_slope, self.scale)


def _standin_conv2d_gradfix() -> types.ModuleType:
    """``conv2d`` / ``conv_transpose2d`` / ``no_weight_gradients`` calling ``torch.nn.functional``."""
    mod = types.ModuleType("op.conv2d_gradfix", "ganinv stand-in for rosinality's op.conv2d_gradfix")

    def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
               dilation: Any = 1, groups: int = 1) -> Tensor:
        return F.conv2d(input, weight, bias, stride, padding, dilation, groups)

    def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
                         padding: Any = 0, output_padding: Any = 0, groups: int = 1, dilation: Any = 1) -> Tensor:
        return F.conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation)

    @contextlib.contextmanager
    def no_weight_gradients() -> Iterator[None]:
        yield

    mod.conv2d, mod.conv_transpose2d, mod.no_weight_gradients = conv2d, conv_transpose2d, no_weight_gradients
    mod.enabled = False
    return mod


def _load_file(name: str, file: Path) -> types.ModuleType:
    """Execute one source file as module ``name`` (not registered in ``sys.modules`` afterwards)."""
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {file}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.modules.pop(name, None)
    return mod


def _rosinality_op(path: Path, notes: list[str]) -> types.ModuleType:
    op = types.ModuleType("op", "ganinv stand-in for rosinality's op package (no CUDA extension is compiled)")
    op.__path__ = []  # a package, so "op.x" names resolve against it
    try:
        gradfix = _load_file("op.conv2d_gradfix", path / "op" / "conv2d_gradfix.py")
        if not (callable(getattr(gradfix, "conv2d", None)) and callable(getattr(gradfix, "conv_transpose2d", None))):
            raise ImportError("no conv2d / conv_transpose2d in it")
        notes.append("op.conv2d_gradfix: the checkout's own op/conv2d_gradfix.py (F.conv2d off CUDA)")
    except Exception as exc:  # noqa: BLE001 - any failure falls back to the documented stand-in
        gradfix = _standin_conv2d_gradfix()
        notes.append(f"op.conv2d_gradfix: ganinv stand-in calling torch.nn.functional ({path}/op/conv2d_gradfix.py "
                     f"did not load: {type(exc).__name__}: {exc})")
    op.conv2d_gradfix = gradfix
    op.upfirdn2d = _standin_upfirdn2d
    op.fused_leaky_relu = _standin_fused_leaky_relu
    op.FusedLeakyReLU = _StandinFusedLeakyReLU
    notes.append("op.upfirdn2d, op.fused_leaky_relu, op.FusedLeakyReLU: ganinv pure-PyTorch stand-ins equal to "
                 "rosinality's CPU fallbacks (op/__init__.py compiles CUDA extensions at import, so it is not run)")
    return op


def _rosinality_multiplier(G: StyleGAN2Generator) -> int:
    """The ``channel_multiplier`` whose width table is ``G.widths``, or ValueError."""
    candidates = [G.widths[64] // 256] if G.resolution >= 64 and G.widths[64] % 256 == 0 else []
    if G.resolution < 64:
        candidates = [2]
    for cm in candidates:
        table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm, 512: 32 * cm,
                 1024: 16 * cm}
        if cm >= 1 and all(G.widths[r] == table[r] for r in G.widths):
            return cm
    raise ValueError(f"rosinality's Generator has widths 512 up to 32 px then 256·m, 128·m, … for an integer "
                     f"channel_multiplier m; this model's widths {G.widths} are not of that form")


def _load_rosinality(path: Path, G: StyleGAN2Generator) -> ReferenceRender:
    problems = []
    if G.z_dim != G.w_dim:
        problems.append(f"z_dim ({G.z_dim}) != w_dim ({G.w_dim}) (rosinality has one style_dim)")
    if G.channels != 3:
        problems.append(f"img_channels={G.channels} (rosinality's ToRGB is hard-coded to 3 channels)")
    if len(G.blur_kernel) != 4:
        problems.append(f"a {len(G.blur_kernel)}-tap blur kernel (rosinality's ToRGB upsampler pads for 4 taps)")
    if problems:
        raise ValueError("rosinality/stylegan2-pytorch cannot build this model: " + "; ".join(problems))
    cm = _rosinality_multiplier(G)
    notes: list[str] = []
    op = _rosinality_op(path, notes)
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    saved_op = sys.modules.get("op")
    sys.modules["op"] = op
    try:
        model = _load_file(f"_ganinv_reference_rosinality_model_{digest}", path / "model.py")
    finally:
        if saved_op is None:
            sys.modules.pop("op", None)
        else:
            sys.modules["op"] = saved_op
    ref = model.Generator(G.resolution, G.w_dim, G.n_mlp, channel_multiplier=cm, blur_kernel=list(G.blur_kernel),
                          lr_mlp=G.lr_mlp)
    result = ref.load_state_dict(G.state_dict(), strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise RuntimeError(f"G's state dict does not match rosinality's Generator key for key: missing in G "
                           f"{list(result.missing_keys)[:12]}, not in the reference "
                           f"{list(result.unexpected_keys)[:12]}")
    notes.append("load_state_dict(G.state_dict(), strict=False): no missing and no unexpected keys "
                 "(ganinv's w_avg is a non-persistent buffer, so it is not in the state dict)")
    dtype = next(G.parameters()).dtype
    ref = ref.to(device=G.device, dtype=dtype).eval().requires_grad_(False)
    if ref.n_latent != G.num_ws:
        raise RuntimeError(f"rosinality's Generator takes {ref.n_latent} W+ rows, G takes {G.num_ws}")

    def fn(ws: Tensor) -> Tensor:
        image, _ = ref([ws], input_is_latent=True, randomize_noise=False)
        return image

    tanh = G.output_activation == "tanh"
    if tanh:
        notes.append("output_activation='tanh': torch.tanh applied after rosinality's output")
    return ReferenceRender("rosinality", ref, fn, G.num_ws, G.w_dim, tanh, notes)


# ----------------------------------------------------------------------------------
# NVIDIA stylegan2-ada-pytorch
# ----------------------------------------------------------------------------------
def _under(mod: types.ModuleType, root: Path) -> bool:
    files = [getattr(mod, "__file__", None)] + list(getattr(mod, "__path__", None) or [])
    files = [f for f in files if f]
    return bool(files) and all(Path(f).resolve().is_relative_to(root) for f in files)


def _import_nvidia(path: Path, notes: list[str]) -> types.ModuleType:
    """Import ``training.networks`` from ``path`` (dropping same-named modules from another checkout)."""
    loaded = [k for k in sys.modules if k.split(".")[0] in _NVIDIA_ROOTS]
    foreign = [k for k in loaded if not _under(sys.modules[k], path)]
    if foreign:
        for k in loaded:
            del sys.modules[k]
        notes.append(f"dropped already-imported modules from another location: {sorted(foreign)[:6]}")
    sys.path.insert(0, str(path))
    try:
        try:
            networks = importlib.import_module("training.networks")
        except ModuleNotFoundError as exc:
            if exc.name not in ("requests", "distutils", "distutils.util"):
                raise
            _stub_dnnlib_imports(notes)
            for k in [k for k in sys.modules if k.split(".")[0] in _NVIDIA_ROOTS]:
                del sys.modules[k]
            networks = importlib.import_module("training.networks")
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(path))
    if not _under(networks, path):
        raise RuntimeError(f"imported training.networks from {networks.__file__}, not from {path}")
    return networks


def _stub_dnnlib_imports(notes: list[str]) -> None:
    """Minimal ``requests`` / ``distutils.util.strtobool`` for ``dnnlib/util.py`` (download helpers only)."""
    try:
        import requests  # noqa: F401
    except ImportError:
        sys.modules["requests"] = types.ModuleType("requests", "ganinv stub: dnnlib downloads are not available")
        notes.append("requests is not installed: a stub module was inserted for dnnlib/util.py")
    try:
        from distutils.util import strtobool  # noqa: F401
    except ImportError:
        dist = types.ModuleType("distutils")
        util = types.ModuleType("distutils.util")

        def strtobool(val: str) -> int:
            v = val.lower()
            if v in ("y", "yes", "t", "true", "on", "1"):
                return 1
            if v in ("n", "no", "f", "false", "off", "0"):
                return 0
            raise ValueError(f"invalid truth value {val!r}")

        util.strtobool = strtobool
        dist.util = util
        sys.modules["distutils"], sys.modules["distutils.util"] = dist, util
        notes.append("distutils is not available: a stub distutils.util.strtobool was inserted for dnnlib/util.py")


def _nvidia_widths(G: StyleGAN2Generator) -> tuple[int, int]:
    """``(channel_base, channel_max)`` with ``min(channel_base // res, channel_max) == G.widths[res]``."""
    cmax = max(G.widths.values())
    candidates = sorted({w * r for r, w in G.widths.items()} | {cmax * G.resolution})
    for base in candidates:
        if all(min(base // r, cmax) == w for r, w in G.widths.items()):
            return base, cmax
    raise ValueError(f"NVIDIA's widths are min(channel_base // res, channel_max); no channel_base fits this "
                     f"model's widths {G.widths}")


def _ganinv_to_nvidia(G: StyleGAN2Generator) -> dict[str, Tensor]:
    """ganinv (rosinality-named) tensors → NVIDIA names; the inverse of ``checkpoints.nvidia_to_rosinality``."""
    sd = G.state_dict()
    used: set[str] = set()

    def take(key: str) -> Tensor:
        used.add(key)
        return sd[key]

    nv: dict[str, Tensor] = {}
    for j in range(G.n_mlp):
        nv[f"mapping.fc{j}.weight"] = take(f"style.{j + 1}.weight")
        nv[f"mapping.fc{j}.bias"] = take(f"style.{j + 1}.bias")
    nv["mapping.w_avg"] = G.w_avg.detach().clone()

    def layer(src: str, dst: str, noise_idx: int, upsample: bool) -> None:
        nv[f"{dst}.weight"] = take(f"{src}.conv.weight")[0]
        nv[f"{dst}.affine.weight"] = take(f"{src}.conv.modulation.weight")
        nv[f"{dst}.affine.bias"] = take(f"{src}.conv.modulation.bias")
        nv[f"{dst}.bias"] = take(f"{src}.activate.bias")
        nv[f"{dst}.noise_strength"] = take(f"{src}.noise.weight").reshape(())
        nv[f"{dst}.noise_const"] = take(f"noises.noise_{noise_idx}")[0, 0]
        if upsample:  # rosinality folds the upsampling gain 2² into the kernel; NVIDIA applies it at run time
            nv[f"{dst}.resample_filter"] = take(f"{src}.conv.blur.kernel") / 4

    def torgb(src: str, dst: str, block: str | None) -> None:
        nv[f"{dst}.weight"] = take(f"{src}.conv.weight")[0]
        nv[f"{dst}.affine.weight"] = take(f"{src}.conv.modulation.weight")
        nv[f"{dst}.affine.bias"] = take(f"{src}.conv.modulation.bias")
        nv[f"{dst}.bias"] = take(f"{src}.bias").reshape(-1)
        if block is not None:
            nv[f"{block}.resample_filter"] = take(f"{src}.upsample.kernel") / 4

    nv["synthesis.b4.const"] = take("input.input")[0]
    layer("conv1", "synthesis.b4.conv1", 0, upsample=False)
    torgb("to_rgb1", "synthesis.b4.torgb", None)
    for i in range(1, len(G.to_rgbs) + 1):
        b = f"synthesis.b{4 * 2 ** i}"
        layer(f"convs.{2 * i - 2}", f"{b}.conv0", 2 * i - 1, upsample=True)
        layer(f"convs.{2 * i - 1}", f"{b}.conv1", 2 * i, upsample=False)
        torgb(f"to_rgbs.{i - 1}", f"{b}.torgb", b)
    left = sorted(set(sd) - used)
    if left:
        raise RuntimeError(f"ganinv tensors with no NVIDIA counterpart: {left[:12]}")
    return nv


def _load_nvidia(path: Path, G: StyleGAN2Generator) -> ReferenceRender:
    notes: list[str] = []
    networks = _import_nvidia(path, notes)
    base, cmax = _nvidia_widths(G)
    ref = networks.Generator(
        z_dim=G.z_dim, c_dim=0, w_dim=G.w_dim, img_resolution=G.resolution, img_channels=G.channels,
        mapping_kwargs={"num_layers": G.n_mlp, "lr_multiplier": G.lr_mlp},
        synthesis_kwargs={"channel_base": base, "channel_max": cmax, "num_fp16_res": 0, "conv_clamp": None,
                          "architecture": "skip", "resample_filter": list(G.blur_kernel)},
    )
    notes.append(f"training.networks.Generator with channel_base={base}, channel_max={cmax}, num_fp16_res=0, "
                 f"conv_clamp=None, architecture='skip', resample_filter={list(G.blur_kernel)}")
    if ref.num_ws != G.num_ws:
        raise RuntimeError(f"NVIDIA's Generator takes {ref.num_ws} W+ rows, G takes {G.num_ws}")
    target = ref.state_dict()
    ours = _ganinv_to_nvidia(G)
    bad = [f"{k} {list(v.shape)} vs {list(target[k].shape)}" for k, v in ours.items()
           if k in target and tuple(v.shape) != tuple(target[k].shape)]
    unknown = sorted(set(ours) - set(target))
    # NVIDIA's filters of the layers that never resample (b4 and every conv1) have no ganinv counterpart;
    # they are built by NVIDIA from the same resample_filter and are unused by the computation.
    kept = sorted(set(target) - set(ours))
    odd = [k for k in kept if not (k == "synthesis.b4.resample_filter" or k.endswith("conv1.resample_filter"))]
    if bad or unknown or odd:
        raise RuntimeError(f"the weights do not map onto NVIDIA's Generator: shape mismatches {bad[:6]}, names "
                           f"NVIDIA lacks {unknown[:6]}, NVIDIA entries with no ganinv tensor {odd[:6]}")
    target.update(ours)
    ref.load_state_dict(target, strict=True)
    notes.append(f"weights renamed to NVIDIA's names and loaded strictly; NVIDIA's own unused filters kept: "
                 f"{len(kept)} (*.conv1.resample_filter, b4.resample_filter)")
    notes.append("no stand-ins: torch_utils ops run their pure-PyTorch 'ref' paths off CUDA (no plugin build)")
    dtype = next(G.parameters()).dtype
    ref = ref.to(device=G.device, dtype=dtype).eval().requires_grad_(False)

    def fn(ws: Tensor) -> Tensor:
        return ref.synthesis(ws, noise_mode="const", force_fp32=True)

    tanh = G.output_activation == "tanh"
    if tanh:
        notes.append("output_activation='tanh': torch.tanh applied after NVIDIA's output")
    return ReferenceRender("nvidia", ref, fn, G.num_ws, G.w_dim, tanh, notes)


# ----------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------
def _sync(t: Tensor) -> None:
    if t.device.type == "cuda":
        torch.cuda.synchronize(t.device)


def time_step(render: Callable[[Tensor], Tensor], ws: Tensor, repeats: int = 3) -> float:
    """Median wall-clock seconds of one inversion step: ``render(ws)``, MSE to zeros, gradient to ``ws``.

    ``ws`` (W+ ``[B, num_ws, w_dim]``) is detached and made a leaf that requires grad; the gradient is taken
    with ``torch.autograd.grad`` w.r.t. ``ws`` only (no parameter gradients are accumulated). One untimed
    warm-up step runs first; then ``repeats`` timed steps (CUDA synchronised around each).

    Raises:
        ValueError: ``repeats < 1``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be ≥ 1, got {repeats}")
    base = ws.detach()

    def step() -> Tensor:
        x = base.clone().requires_grad_(True)
        out = render(x)
        loss = F.mse_loss(out, torch.zeros_like(out))
        (grad,) = torch.autograd.grad(loss, x)
        return grad

    step()
    times = []
    for _ in range(repeats):
        _sync(base)
        t0 = time.perf_counter()
        step()
        _sync(base)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
