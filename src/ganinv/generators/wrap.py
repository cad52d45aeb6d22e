"""Bring your own generator: wrap any ``nn.Module`` or callable as a ganinv :class:`Generator`.

Two entry points:

* :func:`wrap` — in Python, around a module or plain callable that maps a latent
  ``[B, latent_dim]`` to an image, either flat ``[B, C*H*W]`` (an MLP emitting 784 values)
  or ``[B, C, H, W]`` (``[B, H, W]`` is accepted when ``C == 1``)::

      G = wrap(my_mlp, latent_dim=64, image_shape=(1, 28, 28), output_range=(-1, 1))
      images = G.synthesize(G.sample_latent(8, seed=0), "z")     # [8, 1, 28, 28], nominal [0, 1]

* :func:`load_generator_file` — behind the CLI option
  ``--generator path/to/file.py:NAME [--weights ckpt] [--latent-dim N] [--image-shape C,H,W]
  [--output-range LO,HI]``. It imports the user's own Python file (running the user's own code,
  which is what they asked for), builds ``NAME`` and loads the weights *without* executing code
  from the checkpoint (``torch.load(weights_only=True)`` or safetensors), strictly.

The wrapped generator has a single latent space ``"z"`` of shape ``(latent_dim,)``, sampled as
a standard normal. Its native output is rescaled from ``output_range`` to ``[0, 1]``.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import numbers
import re
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ganinv.errors import CheckpointError, InputError
from ganinv.generators.base import Generator, LatentSpace

__all__ = ["WrappedGenerator", "wrap", "load_generator_file", "load_weights", "parse_image_shape", "parse_range"]

#: Keys under which common training scripts nest the generator's state dict, in lookup order
#: (rosinality checkpoints hold both ``g`` and ``g_ema``; the EMA copy is the one to invert).
STATE_DICT_KEYS: tuple[str, ...] = ("g_ema", "generator", "state_dict", "model")


# ----- argument validation -------------------------------------------------------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_latent_dim(latent_dim: Any) -> int:
    if not _is_int(latent_dim) or latent_dim <= 0:
        raise InputError(f"latent_dim must be a positive integer, got {latent_dim!r}")
    return int(latent_dim)


def _check_image_shape(image_shape: Any) -> tuple[int, int, int]:
    ok = (isinstance(image_shape, Sequence) and not isinstance(image_shape, str) and len(image_shape) == 3
          and all(_is_int(v) and v > 0 for v in image_shape))
    if not ok:
        raise InputError(f"image_shape must be three positive integers (C, H, W), e.g. (1, 28, 28); "
                         f"got {image_shape!r}")
    c, h, w = (int(v) for v in image_shape)
    return c, h, w


def _check_output_range(output_range: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in output_range)
    except (TypeError, ValueError):
        raise InputError(f"output_range must be two numbers (LO, HI), e.g. (-1, 1); got {output_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or not lo < hi:
        raise InputError(f"output_range must be two finite numbers with LO < HI, e.g. (-1, 1); got {output_range!r}")
    return lo, hi


def _check_input_shape(input_shape: Any, latent_dim: int) -> tuple[int, ...] | None:
    if input_shape is None:
        return None
    ok = (isinstance(input_shape, Sequence) and not isinstance(input_shape, str) and len(input_shape) >= 1
          and all(_is_int(v) and v > 0 for v in input_shape))
    if not ok or math.prod(int(v) for v in input_shape) != latent_dim:
        raise InputError(f"input_shape must be positive integers whose product is latent_dim={latent_dim}, "
                         f"e.g. ({latent_dim}, 1, 1); got {input_shape!r}")
    return tuple(int(v) for v in input_shape)


def _describe(fn: Any) -> str:
    """A short human name for a module or callable."""
    if isinstance(fn, nn.Module):
        return type(fn).__name__
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


# ----- the generator -------------------------------------------------------------------------
class WrappedGenerator(Generator):
    """A :class:`Generator` around any module or callable ``latent [B, latent_dim] → image``.

    Build it with :func:`wrap` (validates and probes the callable) rather than directly.

    Args:
        fn: an ``nn.Module`` (registered as the submodule ``net``, so ``.to(device)`` moves it,
            put in ``eval()`` and frozen with ``requires_grad_(False)``) or a plain callable
            (stored as is; a callable closing over tensors must be moved by its owner).
        latent_dim: size of the latent vector ``z``.
        image_shape: ``(C, H, W)`` of one output image; any size (non-square and
            non-power-of-two allowed).
        output_range: the callable's native ``(LO, HI)`` range, mapped to ``[0, 1]``.
        name: where the callable came from, stored as ``config()["source"]``.
        input_shape: optional per-sample shape the callable wants its latent in, e.g.
            ``(latent_dim, 1, 1)`` for DCGAN-style networks; ``z`` is reshaped to
            ``[B, *input_shape]`` before each call.

    The callable may return the image flat ``[B, C*H*W]``, as ``[B, C, H, W]``, or as
    ``[B, H, W]`` when ``C == 1``; a tuple/list return uses its first element (e.g.
    rosinality's ``(image, latents)``). Anything else raises :class:`InputError`.
    """

    arch = "wrapped"

    def __init__(self, fn: Callable[[Tensor], Any], latent_dim: int, image_shape: tuple[int, int, int],
                 output_range: tuple[float, float] = (-1.0, 1.0), name: str | None = None,
                 input_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        if not callable(fn):
            raise InputError(f"wrap() needs an nn.Module or a callable, got {type(fn).__name__}")
        self.latent_dim = _check_latent_dim(latent_dim)
        self.image_shape = _check_image_shape(image_shape)
        self.output_range = _check_output_range(output_range)
        self.input_shape = _check_input_shape(input_shape, self.latent_dim)
        c, h, w = self.image_shape
        self.channels = c
        self.resolution = h if h == w else max(h, w)
        self.source = name if name is not None else _describe(fn)
        if isinstance(fn, nn.Module):
            fn.eval().requires_grad_(False)
            self.net: nn.Module | None = fn
            self._fn: Callable[[Tensor], Any] | None = None
        else:
            self.net = None
            self._fn = fn

    @property
    def module(self) -> Callable[[Tensor], Any]:
        """The wrapped module or callable."""
        return self.net if self.net is not None else self._fn  # type: ignore[return-value]

    def _latent_spaces(self) -> dict[str, LatentSpace]:
        return {"z": LatentSpace("z", (self.latent_dim,), f"input latent of {self.source}, standard normal")}

    def config(self) -> dict[str, Any]:
        """``{"arch": "wrapped", "latent_dim", "image_shape", "output_range", "source"}`` (JSON-ready lists);
        ``"input_shape"`` is added when one was given."""
        cfg: dict[str, Any] = {"arch": self.arch, "latent_dim": self.latent_dim, "image_shape": list(self.image_shape),
                               "output_range": list(self.output_range), "source": self.source}
        if self.input_shape is not None:
            cfg["input_shape"] = list(self.input_shape)
        return cfg

    def _call(self, z: Tensor) -> Tensor:
        """Run the callable on ``z [B, latent_dim]``; return its output reshaped to ``[B, C, H, W]`` (native range)."""
        x = z if self.input_shape is None else z.reshape(z.shape[0], *self.input_shape)
        out = self.module(x)
        return self._to_image(out, z.shape[0])

    def _to_image(self, out: Any, batch: int) -> Tensor:
        c, h, w = self.image_shape
        expected = f"[{batch}, {c * h * w}] or [{batch}, {c}, {h}, {w}]"
        if c == 1:
            expected += f" or [{batch}, {h}, {w}]"
        if isinstance(out, (tuple, list)) and out:
            out = out[0]
        if not isinstance(out, Tensor):
            raise InputError(f"{self.source} must return a tensor of shape {expected}, got {type(out).__name__}")
        if not out.is_floating_point():
            raise InputError(f"{self.source} must return a floating-point image tensor, got dtype {out.dtype}")
        shape = tuple(out.shape)
        if shape == (batch, c * h * w) or shape == (batch, c, h, w) or (c == 1 and shape == (batch, h, w)):
            return out.reshape(batch, c, h, w)
        hint = ""
        if out.dim() >= 1 and shape[0] == batch and out[0].numel() != c * h * w:
            hint = f" ({out[0].numel()} values per image instead of {c}×{h}×{w} = {c * h * w}; check image_shape)"
        elif out.dim() >= 1 and shape[0] != batch:
            hint = f" (batch size {shape[0]} instead of {batch})"
        raise InputError(f"{self.source} returned a tensor of shape {list(shape)} for a batch of {batch} latents; "
                         f"expected {expected} for image_shape ({c}, {h}, {w}){hint}")

    def _native(self, latent: Tensor, space: str, noise: list[Tensor] | None) -> Tensor:
        if space != "z":
            raise InputError(f"wrapped generator has only the latent space 'z', got {space!r}")
        return self._call(latent)

    def forward(self, z: Tensor) -> Tensor:
        """Call the wrapped network: z ``[B, latent_dim]`` → native image ``[B, C, H, W]`` in ``output_range``."""
        self.space("z").check(z)
        return self._call(z)

    def _accepts(self, x: Tensor) -> bool:
        try:
            self.module(x)
        except Exception:
            return False
        return True

    def probe(self, batch: int = 2) -> None:
        """Call the network once on ``batch`` zero latents (no grad) to check its output shape early.

        Raises:
            InputError: the call fails or its output does not fit ``image_shape``.
        """
        dtype = torch.float32
        for p in (self.net.parameters() if self.net is not None else ()):
            if p.is_floating_point():
                dtype = p.dtype
                break
        z = torch.zeros(batch, self.latent_dim, device=self.device, dtype=dtype)
        with torch.no_grad():
            try:
                x = z if self.input_shape is None else z.reshape(batch, *self.input_shape)
                out = self.module(x)
            except Exception as exc:  # the user's own code failed: say where and why
                hint = ""
                if self.input_shape is None and self._accepts(z.view(batch, self.latent_dim, 1, 1)):
                    hint = (f"; it does accept [B, {self.latent_dim}, 1, 1] latents (DCGAN style): pass "
                            f"input_shape=({self.latent_dim}, 1, 1) to wrap(), or set that as an input_shape "
                            f"attribute on the module")
                raise InputError(f"calling {self.source} on a latent batch of shape "
                                 f"{[batch, *(self.input_shape or (self.latent_dim,))]} failed with "
                                 f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
                                 f" — check latent_dim={self.latent_dim}{hint}") from exc
            self._to_image(out, batch)


def wrap(module_or_callable: Callable[[Tensor], Any], *, latent_dim: int, image_shape: tuple[int, int, int],
         output_range: tuple[float, float] = (-1.0, 1.0), name: str | None = None,
         input_shape: tuple[int, ...] | None = None) -> WrappedGenerator:
    """Wrap a module or callable ``z [B, latent_dim] → image`` as a frozen :class:`Generator`.

    Args:
        module_or_callable: ``nn.Module`` (registered, ``eval()``, ``requires_grad_(False)``) or callable.
        latent_dim: latent size (> 0). The generator's only latent space is ``"z"`` of shape ``(latent_dim,)``.
        image_shape: ``(C, H, W)`` of one image; the output may be ``[B, C*H*W]``, ``[B, C, H, W]``,
            or ``[B, H, W]`` when ``C == 1``.
        output_range: native ``(LO, HI)`` of the output (``(-1, 1)`` for tanh, ``(0, 1)`` for sigmoid).
        name: a label for messages and ``config()["source"]``; defaults to the class/function name.
        input_shape: optional per-sample shape to reshape ``z`` to before the call, e.g.
            ``(latent_dim, 1, 1)``.

    Returns:
        A :class:`WrappedGenerator` whose :meth:`~Generator.synthesize` gives ``[B, C, H, W]`` in
        nominal ``[0, 1]`` (unclamped, differentiable w.r.t. the latent).

    Raises:
        InputError: invalid arguments, or the one probe call (a batch of 2 zero latents) fails or
        returns the wrong shape — saying expected vs got.
    """
    G = WrappedGenerator(module_or_callable, latent_dim, image_shape, output_range, name, input_shape)
    G.probe()
    return G


# ----- parsing CLI values --------------------------------------------------------------------
def parse_image_shape(text: str) -> tuple[int, int, int]:
    """Parse ``"C,H,W"`` (also ``"CxHxW"``) into ``(C, H, W)``, e.g. ``"1,28,28" → (1, 28, 28)``."""
    parts = [p for p in re.split(r"[,x×\s]+", str(text).strip()) if p]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or any(v <= 0 for v in values):
        raise InputError(f"--image-shape must be three positive integers C,H,W, e.g. 1,28,28; got {text!r}")
    return values  # type: ignore[return-value]


def parse_range(text: str) -> tuple[float, float]:
    """Parse ``"LO,HI"`` into floats with ``LO < HI``, e.g. ``"-1,1" → (-1.0, 1.0)``."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        if len(parts) != 2:
            raise ValueError
        lo, hi = float(parts[0]), float(parts[1])
    except ValueError:
        raise InputError(f"--output-range must be two numbers LO,HI, e.g. -1,1 or 0,1; got {text!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or not lo < hi:
        raise InputError(f"--output-range needs finite LO < HI, e.g. -1,1 or 0,1; got {text!r}")
    return lo, hi


# ----- loading a user's file -----------------------------------------------------------------
def _split_spec(spec: str) -> tuple[Path, str]:
    path_text, sep, name = str(spec).rpartition(":")
    if not sep or not path_text or not name.isidentifier():
        raise InputError(f"--generator must be PATH.py:NAME, e.g. models/my_gan.py:Generator; got {spec!r} "
                         f"(missing :NAME)")
    return Path(path_text).expanduser(), name


def _import_file(path: Path) -> Any:
    """Import ``path`` as a fresh module with a unique name (runs the user's code)."""
    if not path.is_file():
        raise InputError(f"generator file not found: {path}")
    if path.suffix != ".py":
        raise InputError(f"generator file must be a Python file ending in .py, got {path}")
    mod_name = f"ganinv_user_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # so dataclasses/pickle inside the file can find it
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # let the file import its sibling modules
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(mod_name, None)
        where = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) and exc.lineno else ""
        raise InputError(f"importing {path} failed{where}: {type(exc).__name__}: {exc}") from exc
    finally:
        try:
            sys.path.remove(folder)
        except ValueError:
            pass
    return module


def _candidates(module: Any) -> list[str]:
    """Names in a user module usable as NAME: nn.Module classes/instances and functions defined there."""
    names = []
    for key, obj in vars(module).items():
        if key.startswith("_"):
            continue
        if isinstance(obj, nn.Module):
            names.append(key)
        elif isinstance(obj, type) and issubclass(obj, nn.Module) and obj.__module__ == module.__name__:
            names.append(key)
        elif inspect.isfunction(obj) and obj.__module__ == module.__name__:
            names.append(key)
    return names


def _build(obj: Any, name: str, path: Path) -> nn.Module:
    """Turn NAME's object (class, instance or factory) into a module."""
    where = f"{name} in {path}"
    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, type):
        if not issubclass(obj, nn.Module):
            raise InputError(f"{where} is a class but not an nn.Module subclass; --generator needs an nn.Module "
                             f"class, instance, or a factory function returning one")
        try:
            return obj()
        except Exception as exc:
            raise InputError(f"constructing {name}() from {path} failed with {type(exc).__name__}: {exc} "
                             f"(the class must be constructible without arguments; otherwise export an instance "
                             f"or a factory function)") from exc
    if callable(obj):
        try:
            required = [p.name for p in inspect.signature(obj).parameters.values()
                        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        except (TypeError, ValueError):
            required = []
        if required:
            raise InputError(f"{where} is a function taking ({', '.join(required)}), not an nn.Module; --generator "
                             f"needs an nn.Module class, instance, or a factory function with no arguments that "
                             f"returns one (in Python, use ganinv.generators.wrap.wrap() for plain callables)")
        try:
            built = obj()
        except Exception as exc:
            raise InputError(f"calling the factory {name}() from {path} failed with "
                             f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(built, nn.Module):
            raise InputError(f"the factory {name}() in {path} returned {type(built).__name__}, not an nn.Module")
        return built
    raise InputError(f"{where} is a {type(obj).__name__}, not an nn.Module class, instance or factory function")


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())


def _unwrap_state(obj: Any, source: str) -> dict[str, Tensor]:
    """Find the state dict in a checkpoint: bare, or nested under one of :data:`STATE_DICT_KEYS`."""
    for _ in range(3):  # e.g. {"state_dict": {"generator": {...}}}
        if _is_state_dict(obj):
            return dict(obj)
        if not isinstance(obj, Mapping):
            break
        inner = next((obj[k] for k in STATE_DICT_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    found = (f"found a dict with keys {', '.join(map(repr, list(obj)[:12]))}" if isinstance(obj, Mapping)
             else f"found a {type(obj).__name__}")
    raise CheckpointError(f"{source} does not hold a state dict: expected a dict of tensors, bare or under one of "
                          f"{', '.join(map(repr, STATE_DICT_KEYS))}; {found}")


def _torch_load_message(path: Path, exc: Exception) -> str:
    """One clear sentence for a failed ``torch.load(weights_only=True)``."""
    from ganinv.generators.checkpoints import _refused_global_from

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    # torch says "Unsupported global: GLOBAL x.y" or, for modules it blocks outright (os, posix, subprocess, …),
    # "Trying to load unsupported GLOBAL posix.system whose module posix is blocked"; Python 2 names
    # (commands.Popen) are shown as Python 3's (subprocess.Popen)
    code = _refused_global_from(exc)
    if code:
        return (f"{path} is a pickle that needs the Python object {code} to load (e.g. a whole model saved "
                f"with torch.save(model)); ganinv refuses to run code from checkpoints. Save model.state_dict() "
                f"instead, or convert to .safetensors")
    detail = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n\n|$)", text, re.S)
    reason = " ".join((detail.group(1) if detail else (text.strip().splitlines() or [""])[0]).split())
    return (f"{path} could not be read as a PyTorch checkpoint with weights_only=True (it may be corrupt or not a "
            f"checkpoint): {type(exc).__name__}" + (f": {reason}" if reason else ""))


def load_weights(module: nn.Module, weights: str | Path) -> None:
    """Load a state dict from ``weights`` into ``module``, strictly, without executing code.

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(map_location="cpu", weights_only=True)``. The state dict may be bare or nested
    under ``"g_ema"``, ``"generator"``, ``"state_dict"`` or ``"model"``; a ``"module."`` prefix
    (from ``DataParallel``) is stripped when the model's own keys lack it.

    Raises:
        CheckpointError: missing/unreadable/unsafe file, no state dict inside, or key/shape mismatch
        (listing missing and unexpected keys).
    """
    from ganinv.modelfile import load_state_strict, read_safetensors

    path = Path(weights).expanduser()
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        state: Any = read_safetensors(path)
    else:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(_torch_load_message(path, exc)) from None
    state = _unwrap_state(state, str(path))
    own = module.state_dict()
    if all(k.startswith("module.") for k in state) and not any(k.startswith("module.") for k in own):
        state = {k[len("module."):]: v for k, v in state.items()}
    load_state_strict(module, state, str(path))


def _attr(module: nn.Module, *names: str) -> Any:
    for n in names:
        value = getattr(module, n, None)
        if value is not None:
            return value
    return None


def load_generator_file(spec: str, *, weights: str | None = None, latent_dim: int | None = None,
                        image_shape: tuple[int, int, int] | None = None,
                        output_range: tuple[float, float] | None = None,
                        input_shape: tuple[int, ...] | None = None) -> WrappedGenerator:
    """Build a generator from ``path/to/file.py:NAME`` (the CLI's ``--generator``).

    ``NAME`` may be an ``nn.Module`` subclass (instantiated with no arguments), an ``nn.Module``
    instance, or a factory function with no arguments returning a module. The file is imported
    under a unique module name, so this runs the user's own code.

    Args:
        spec: ``"path/to/file.py:NAME"``.
        weights: optional checkpoint, loaded strictly by :func:`load_weights`.
        latent_dim: defaults to the module's ``latent_dim`` or ``z_dim`` attribute.
        image_shape: ``(C, H, W)``; defaults to the module's ``image_shape`` attribute.
        output_range: defaults to the module's ``output_range`` attribute, else ``(-1, 1)``.
        input_shape: defaults to the module's ``input_shape`` attribute (see :func:`wrap`), else none.

    Returns:
        A frozen :class:`WrappedGenerator` with ``config()["source"] == spec``.

    Raises:
        InputError: bad spec, missing file, unknown NAME (candidates listed), NAME of the wrong kind,
            failing construction, or a missing latent size / image shape.
        CheckpointError: weights missing, corrupt, unsafe or not matching the module.
    """
    path, name = _split_spec(spec)
    user_module = _import_file(path)
    if not hasattr(user_module, name):
        cands = _candidates(user_module)
        listed = ", ".join(cands) if cands else "none (no nn.Module class, instance or function defined there)"
        raise InputError(f"{path} has no {name!r}; candidates: {listed}")
    module = _build(getattr(user_module, name), name, path)
    if weights is not None:
        load_weights(module, weights)

    latent_dim = latent_dim if latent_dim is not None else _attr(module, "latent_dim", "z_dim")
    image_shape = image_shape if image_shape is not None else _attr(module, "image_shape")
    output_range = output_range if output_range is not None else _attr(module, "output_range")
    input_shape = input_shape if input_shape is not None else _attr(module, "input_shape")
    missing = [opt for opt, value in (("--latent-dim N (or a latent_dim / z_dim attribute on the module)", latent_dim),
                                      ("--image-shape C,H,W (or an image_shape attribute on the module)", image_shape))
               if value is None]
    if missing:
        raise InputError(f"{name} from {path} does not declare its latent size / image shape; pass "
                         + " and ".join(missing))
    return wrap(module, latent_dim=latent_dim, image_shape=image_shape,
                output_range=output_range if output_range is not None else (-1.0, 1.0), name=spec,
                input_shape=input_shape)
