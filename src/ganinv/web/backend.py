"""What the web app does, without gradio: read uploads safely, invert, restore and edit.

Everything here takes and returns tensors, numpy images and plain values, so it is tested without
a browser; :mod:`ganinv.web.app` only lays the widgets out and wires them to a :class:`Workbench`.

Safety rules kept here:

* an upload is only ever read from the temporary file the web server wrote (its name is the
  server's, never the user's); the user's file name is used for messages alone;
* files over :attr:`Limits.max_upload_mb` and images over :attr:`Limits.max_pixels` (decompression
  bombs: a few KB of PNG that decode to gigapixels) are refused before any pixel is decoded;
* every user mistake is an :class:`~ganinv.errors.InputError` with one sentence that says what to do;
* files the app writes for download go to a fresh job folder under the app's own work folder.
"""

from __future__ import annotations

import json
import math
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ganinv.errors import GaninvError, InputError
from ganinv.generators.base import Generator

#: Shortest side, in screen pixels, that images are enlarged to (nearest neighbour, so pixels stay crisp).
DISPLAY_SIZE = 256
#: Direction families of the Edit tab.
DIRECTION_FAMILIES = ("pca", "sefa", "towards")
#: Restoration tasks whose observation is itself an image (a real degraded image can be uploaded).
IMAGE_OBSERVATIONS = ("inpaint", "sr", "deblur", "denoise", "colorize")

#: ``progress(fraction in [0, 1], message)``.
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server."""

    max_upload_mb: float = 10.0
    max_pixels: int = 4096 * 4096
    max_steps: int = 2000
    max_hypotheses: int = 8

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


@dataclass
class Code:
    """An inverted image as the Edit tab keeps it: latent ``[1, *shape]`` in ``space`` (CPU), optional
    noise maps ``[1, 1, H_i, W_i]``, and the source's display name."""

    latent: Tensor
    space: str
    noise: list[Tensor] | None = None
    name: str = "image"


@dataclass
class InvertOutcome:
    """One inversion for the page: images ``[H, W, 3]`` uint8, metrics, loss-curve PNG, files to download
    (the ``.npz`` latent in the field's format; PTI adds its ``.deltas.safetensors``)."""

    target: np.ndarray
    reconstruction: np.ndarray
    error_map: np.ndarray
    metrics: dict[str, Any]
    curve: Path | None
    files: list[Path]
    code: Code
    notes: list[str] = field(default_factory=list)


@dataclass
class RestoreOutcome:
    """One restoration for the page: observation preview, ranked hypotheses with captions, baseline."""

    observation: np.ndarray | None
    hypotheses: list[tuple[np.ndarray, str]]
    baseline: tuple[np.ndarray, str] | None
    metrics: dict[str, Any]
    observation_file: Path
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------------------
# Display helpers
# ----------------------------------------------------------------------------------------------------------

def to_display(image: Tensor, size: int = DISPLAY_SIZE) -> np.ndarray:
    """``[C, H, W]`` or ``[1, C, H, W]`` in [0, 1] (C = 1 or 3) → ``[H', W', 3]`` uint8, enlarged by the whole
    factor that brings the shorter side to at least ``size`` (nearest neighbour)."""
    if image.dim() == 4:
        image = image[0]
    image = image.detach().float().cpu().clamp(0, 1)
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    factor = max(1, math.ceil(size / max(1, min(image.shape[1:]))))
    if factor > 1:
        image = image.repeat_interleave(factor, 1).repeat_interleave(factor, 2)
    return (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def error_map(target: Tensor, recon: Tensor, size: int = DISPLAY_SIZE) -> np.ndarray:
    """:func:`ganinv.io.error_colors` of one target (fixed range [0, 1]) → display image."""
    from ganinv.io import error_colors

    return to_display(error_colors(target, recon)[0], size)


def _round(value: float, digits: int = 4) -> float | None:
    return round(float(value), digits) if math.isfinite(float(value)) else None


# ----------------------------------------------------------------------------------------------------------
# The workbench
# ----------------------------------------------------------------------------------------------------------

class Workbench:
    """One loaded generator and what the page can do with it.

    Args:
        G: the generator (frozen; shared by every request).
        name: its display name (bundled model name or ``file.py:NAME``).
        work_dir: folder for the files the app writes (one fresh ``job-*`` folder per request).
        limits: per-request limits.
    """

    def __init__(self, G: Generator, name: str, work_dir: str | Path, limits: Limits | None = None) -> None:
        self.G = G.eval().requires_grad_(False)
        self.name = name
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.limits = limits or Limits()
        self._directions: dict[tuple[str, int], Any] = {}
        self._directions_lock = threading.Lock()
        self._labelled: tuple[Tensor, Tensor] | None = None
        self._bundled_found: dict[str, bool] = {}
        self._detector: Any = None
        self._detector_lock = threading.Lock()

    # ----- what this generator offers ------------------------------------------------------------------
    @property
    def spaces(self) -> list[str]:
        """Latent spaces an image can be inverted into (``z``, ``w``, ``w+``)."""
        return [s for s in ("z", "w", "w+") if s in self.G.latent_spaces]

    def _bundled(self, kind: str) -> bool:
        """Whether a bundled network of ``kind`` (``"encoder"``, ``"hyper"``) was trained for this generator
        (looked up once)."""
        if kind not in self._bundled_found:
            from ganinv.cli.invert import method_network

            try:
                method_network(kind, None, self.G)
                self._bundled_found[kind] = True
            except GaninvError:
                self._bundled_found[kind] = False
        return self._bundled_found[kind]

    @property
    def has_encoder(self) -> bool:
        """Whether a bundled encoder was trained for this generator."""
        return self._bundled("encoder")

    @property
    def has_hyper(self) -> bool:
        """Whether a bundled hypernetwork was trained for this generator (e.g. ``mnist-stylegan2-hyper``)."""
        return self._bundled("hyper")

    @property
    def methods(self) -> list[str]:
        """Inversion methods that work with this generator."""
        out = ["optimize"]
        if self.has_encoder:
            out += ["encoder", "hybrid"]
        if "w" in self.G.latent_spaces:
            out.append("pti")
        if self.has_hyper:
            out.append("hyper")
        if self.G.feature_layers():
            out.append("multicode")
        return out

    @property
    def edit_methods(self) -> list[str]:
        """Methods whose codes can be edited with the shared generator (PTI and hyper tune a copy per image)."""
        return [m for m in self.methods if m in ("optimize", "encoder", "hybrid")]

    @property
    def families(self) -> list[str]:
        """Direction families that work here: PCA/SeFa need a W space, "towards digit" the digit classifier's
        1×32×32 images."""
        out = ["pca", "sefa"] if "w" in self.G.latent_spaces else []
        if tuple(self.G.image_shape) == (1, 32, 32):
            out.append("towards")
        return out

    @property
    def tasks(self) -> list[str]:
        """Restoration tasks for this generator (colorize needs an RGB model)."""
        from ganinv.physics import TASK_NAMES

        return [t for t in TASK_NAMES if t != "colorize" or self.G.image_shape[0] == 3]

    @property
    def num_ws(self) -> int | None:
        return getattr(self.G, "num_ws", None) if "w+" in self.G.latent_spaces else None

    def model_card(self) -> dict[str, Any]:
        """What is loaded: architecture, resolution, latent spaces, size, companions (JSON-able)."""
        from ganinv import zoo

        G = self.G
        spaces = {name: list(space.shape) for name, space in G.latent_spaces.items()}
        card: dict[str, Any] = {
            "name": self.name,
            "architecture": getattr(G, "arch", type(G).__name__),
            "image": f"{G.image_shape[0]}×{G.image_shape[1]}×{G.image_shape[2]} (C×H×W)",
            "latent spaces": spaces,
            "noise maps": len(G.noise_shapes),
            "parameters": G.num_parameters(),
            "methods": self.methods,
            "restoration tasks": self.tasks,
            "encoder": self.has_encoder,
            "edit directions": self.families,
        }
        if self.name in zoo.available():
            folder = zoo.model_dir(self.name)
            card["files"] = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}
            quality = zoo.describe(self.name).get("meta", {}).get("quality")
            if quality:
                card["sample quality"] = (f"confidence {quality['confidence']:.3f}, Fréchet distance "
                                          f"{quality['fd_ratio']:.2f}× the train/held-out floor "
                                          f"(shipping floor ≤ 5×: {'met' if quality['passes'] else 'not met'})")
        return card

    # ----- inputs --------------------------------------------------------------------------------------
    def new_job(self) -> Path:
        """A fresh folder for one request's downloadable files."""
        return Path(tempfile.mkdtemp(prefix="job-", dir=self.work_dir))

    def read_image(self, path: str | Path | None, shown: str = "the upload") -> tuple[Tensor, list[str]]:
        """The uploaded file at ``path`` (written by the server) as a target ``[1, C, H, W]`` in [0, 1] at the
        model's size, plus notes on what was converted; ``shown`` names the file in messages."""
        from ganinv.io import load_target

        path = self.check_upload(path, shown)
        C, H, _ = self.G.image_shape
        try:
            image, notes = load_target(path, C, H)
        except InputError as exc:
            raise InputError(str(exc).replace(str(path), shown)) from None
        return image.unsqueeze(0), notes

    def check_upload(self, path: str | Path | None, shown: str = "the upload") -> Path:
        """The upload at ``path`` as a :class:`Path`, once its file size and the pixel count its header claims are
        within :attr:`limits` (no pixel is decoded here); ``shown`` names the file in messages."""
        from PIL import Image

        if path is None:
            raise InputError("no image yet: upload one or pick an example first")
        path = Path(path)
        try:
            size = path.stat().st_size
        except OSError:
            raise InputError(f"{shown}: the upload is gone (the page may have been idle too long); upload it again"
                             ) from None
        if size > self.limits.max_upload_bytes:
            raise InputError(f"{shown} is {size / 2**20:.1f} MB; the limit is {self.limits.max_upload_mb:g} MB")
        too_big = (f"{shown} is too large to decode safely (the limit is {self.limits.max_pixels:,} pixels); "
                   "downscale it first")
        try:
            with Image.open(path) as im:
                w, h = im.size  # the header only: no pixel is decoded yet
        except Image.DecompressionBombError:
            raise InputError(too_big) from None
        except Exception:  # noqa: BLE001 - load_target below gives the precise message
            w = h = 0
        if w * h > self.limits.max_pixels:
            raise InputError(f"{too_big.removesuffix('; downscale it first')}: it claims {w}×{h} pixels; "
                             "downscale it first")
        return path

    def _check_steps(self, steps: int) -> int:
        steps = int(steps)
        if not 1 <= steps <= self.limits.max_steps:
            raise InputError(f"steps must be between 1 and {self.limits.max_steps}, got {steps}")
        return steps

    # ----- invert --------------------------------------------------------------------------------------
    def invert(self, target: Tensor, *, method: str = "optimize", space: str | None = None, steps: int = 300,
               seed: int = 0, progress: Progress | None = None, name: str = "image",
               prior: float | None = None) -> InvertOutcome:
        """Invert one target ``[1, C, H, W]`` in [0, 1] and prepare everything the Invert tab shows."""
        from ganinv.inverters import invert

        if method not in self.methods:
            raise InputError(f"method {method!r} is not available for {self.name}; choose one of "
                             f"{', '.join(self.methods)}")
        options: dict[str, Any] = {}
        feed_forward = method in ("encoder", "hyper")  # passes of a network: nothing random, no steps to count
        if not feed_forward:
            options.update(seed=int(seed), steps=self._check_steps(steps))
        if method == "optimize":
            space = space or self.G.default_space
            if space not in self.spaces:
                raise InputError(f"space {space!r} does not exist here; choose one of {', '.join(self.spaces)}")
            options["space"] = space
        if prior is not None and method in ("optimize", "hybrid") and "w" in self.G.latent_spaces:
            options["prior"] = prior
        total = options.get("steps", 1) * (2 if method == "pti" else 1)
        done = [0]

        def callback(step: int, state: Any) -> None:
            done[0] += 1
            if progress is not None:
                progress(min(1.0, done[0] / max(1, total)), f"{method}: step {done[0]} of ~{total}")

        if progress is not None:
            progress(0.0, f"{method}: starting")
        r = invert(self.G, target.to(self.G.device), method=method,
                   **({} if feed_forward else {"callback": callback}), **options)
        job = self.new_job()
        files = [Path(p) for p in r.save(job, ["latent"], num_ws=self.num_ws) if Path(p).suffix != ".png"]
        curve = None
        history = {k: v for k, v in r.history.items() if v}
        if history:
            from ganinv.io import plot_loss_curves

            try:
                curve = plot_loss_curves(history, job / "loss.png", title=f"{method} · {self.name}")
            except InputError:
                curve = None
        recon = r.image[:1].detach().cpu()
        # what a person compares: fidelity first (the total loss also holds regularisers), then the cost
        shown = {"psnr": "PSNR (dB)", "ssim": "SSIM", "data_fit": "MSE", "lpips": "LPIPS", "steps": "steps"}
        metrics: dict[str, Any] = {label: _round(r.metrics[k][0], 6 if k == "data_fit" else 4)
                                   for k, label in shown.items() if k in r.metrics and r.metrics[k].numel()}
        metrics.update({"method": r.method, "space": r.space, "seconds": round(r.seconds, 2)})
        noise = [n[:1].detach().cpu() for n in r.noise] if r.noise is not None else None
        code = Code(r.latent[:1].detach().cpu(), r.space, noise, name)
        return InvertOutcome(to_display(target), to_display(recon), error_map(target, recon), metrics, curve,
                             files, code, [n.removeprefix("target 0: ") for n in r.notes])

    # ----- restore -------------------------------------------------------------------------------------
    def restore(self, image: Tensor | None, *, task: str, options: dict[str, Any], simulate: bool = True,
                observation_path: str | Path | None = None, shown: str = "the upload", hypotheses: int = 3,
                method: str = "optimize", steps: int = 300, seed: int = 0,
                progress: Progress | None = None) -> RestoreOutcome:
        """Restore one observation with the generator as prior.

        With ``simulate``, ``image`` (a clean target ``[1, C, H, W]``) is degraded by the task first; otherwise
        the uploaded file at ``observation_path`` is the observation itself, at the observation's size
        (image-like tasks only: :data:`IMAGE_OBSERVATIONS`).
        """
        from ganinv.cli.restore import classical_baseline, read_observation_image
        from ganinv.physics import make_task
        from ganinv.restore import restore

        if task not in self.tasks:
            raise InputError(f"unknown task {task!r}; choose one of {', '.join(self.tasks)}")
        if method not in ("optimize", "multicode") or method not in self.methods:
            raise InputError(f"restoration runs with optimize or multicode; {method!r} is not available here")
        hypotheses = int(hypotheses)
        if not 1 <= hypotheses <= self.limits.max_hypotheses:
            raise InputError(f"hypotheses must be between 1 and {self.limits.max_hypotheses}, got {hypotheses}")
        steps = self._check_steps(steps)
        t = make_task(task, tuple(self.G.image_shape), **options)
        notes: list[str] = []
        if simulate:
            if image is None:
                raise InputError("no image yet: upload a clean image (or pick an example) to degrade")
            y = t.simulate(image, seed=int(seed))
        else:
            if task not in IMAGE_OBSERVATIONS:
                raise InputError(f"a {task} observation is not an image: switch on 'simulate degradation'")
            if observation_path is None:
                raise InputError("no observation yet: upload the degraded image")
            try:
                y = read_observation_image(Path(observation_path), t)
            except InputError as exc:
                raise InputError(str(exc).replace(str(observation_path), shown).replace(
                    "add --simulate", "switch on 'simulate degradation'")) from None
        total = steps * hypotheses

        def callback(run: int, step: int, state: Any) -> None:
            if progress is not None:
                done = run * steps + step + 1
                progress(min(1.0, done / total), f"hypothesis {run + 1} of {hypotheses}: step {step + 1}")

        if progress is not None:
            progress(0.0, "restoring")
        res = restore(self.G, y, t, method=method, hypotheses=hypotheses, seed=int(seed), callback=callback,
                      steps=steps)
        preview = t.preview(y.cpu())
        clean = image if simulate else None
        hyps = []
        for k in range(hypotheses):
            x = res.images[0, k]
            caption = f"#{k + 1} · data fit {float(res.data_fit[0, k]):.2e}"
            if clean is not None:
                from ganinv.metrics import psnr

                caption += f" · PSNR {float(psnr(x[None], clean.cpu())):.2f} dB"
            hyps.append((to_display(x), caption))
        baseline = None
        try:
            base, label = classical_baseline(t, y.cpu())
        except Exception:  # noqa: BLE001 - the baseline is a comparison only; never fail the request on it
            base, label = None, ""
            notes.append("the classical baseline could not run on this observation")
        if base is not None:
            caption = label
            if clean is not None:
                from ganinv.metrics import psnr

                caption += f" · PSNR {float(psnr(base[:1].clamp(0, 1), clean.cpu())):.2f} dB"
            baseline = (to_display(base[:1].clamp(0, 1)), caption)
        metrics: dict[str, Any] = {"task": t.describe(), "method": method, "hypotheses": hypotheses,
                                   "best data fit": _round(res.data_fit[0, 0], 8),
                                   "diversity (RMSE)": _round(res.diversity[0]), "seconds": round(res.seconds, 2)}
        if clean is not None:
            from ganinv.metrics import psnr, ssim

            metrics["best PSNR"] = _round(psnr(res.best[:1], clean.cpu())[0], 2)
            metrics["best SSIM"] = _round(ssim(res.best[:1], clean.cpu())[0], 4)
        job = self.new_job()
        from ganinv.io import save_npz

        obs_file = save_npz(job / "observation.npz", {"y": y.cpu().numpy(), "task": t.to_json()})
        return RestoreOutcome(to_display(preview[0]) if preview is not None else None, hyps, baseline, metrics,
                              Path(obs_file), notes)

    # ----- edit ----------------------------------------------------------------------------------------
    def direction(self, family: str, k: int) -> Any:
        """Editing direction ``k`` of ``family``: ``pca`` (GANSpace), ``sefa`` or ``towards`` (InterFaceGAN
        boundary "towards digit k", trained on the bundled classifier's labels). Computed once, then cached."""
        from ganinv.editing.directions import (
            Direction,
            classifier_labels,
            direction_sigma,
            ganspace,
            interfacegan,
            sefa,
        )

        if family not in DIRECTION_FAMILIES:
            raise InputError(f"unknown direction family {family!r}; choose one of {', '.join(DIRECTION_FAMILIES)}")
        k = int(k)
        key = (family, k)
        with self._directions_lock:
            if key in self._directions:
                return self._directions[key]
            if family == "towards":
                if tuple(self.G.image_shape) != (1, 32, 32):
                    raise InputError("'towards digit' directions use the bundled digit classifier: "
                                     "this model does not make 32×32 digits")
                if not 0 <= k <= 9:
                    raise InputError(f"digits are 0…9, got {k}")
                if self._labelled is None:  # one labelled sample serves all ten boundaries
                    from ganinv import zoo

                    classifier = zoo.load_classifier().to(self.G.device)
                    latents, _, predicted = classifier_labels(self.G, classifier, 0, samples=2000,
                                                              min_confidence=0.9)
                    self._labelled = (latents, predicted)
                latents, predicted = self._labelled
                b = interfacegan(self.G, latents, predicted == k, info={"target_class": k})
                d = Direction(b.vector, b.space, direction_sigma(self.G, b.vector), f"towards-{k}")
            else:
                dim = self.G.space("w" if "w" in self.G.latent_spaces else "z").shape[0]
                if not 0 <= k < dim:
                    raise InputError(f"component {k} does not exist: this generator has 0…{dim - 1}")
                if family == "sefa" and "w" not in self.G.latent_spaces:
                    raise InputError("SeFa factorises style modulations: this generator has no w space")
                comps = ganspace(self.G, k=k + 1) if family == "pca" else sefa(self.G, k=k + 1)
                for j in range(len(comps)):
                    self._directions[(family, j)] = comps.direction(j)
                d = comps.direction(k)
            self._directions[key] = d
            return d

    def warm_up(self, families: tuple[str, ...] = DIRECTION_FAMILIES) -> threading.Thread:
        """Compute the Edit tab's directions in a background thread (the first "towards digit" boundary takes
        tens of seconds on a CPU; later ones a second or two). Errors are ignored here: a request for the
        direction raises them again with its message."""

        def work() -> None:
            for family in [f for f in families if f in self.families]:
                for k in range(10 if family == "towards" else 4):
                    try:
                        self.direction(family, k)
                    except GaninvError:
                        break

        thread = threading.Thread(target=work, name="ganinv-directions", daemon=True)
        thread.start()
        return thread

    def layers(self, first: int, last: int) -> range | None:
        """``w+`` rows ``first…last`` (inclusive) for w+ generators, None (every layer) otherwise."""
        if self.num_ws is None:
            return None
        first, last = int(first), int(last)
        if not 0 <= first <= last < self.num_ws:
            raise InputError(f"layers must satisfy 0 ≤ first ≤ last ≤ {self.num_ws - 1}, got {first}…{last}")
        return range(first, last + 1)

    def _render(self, latent: Tensor, space: str, noise: list[Tensor] | None) -> Tensor:
        with torch.no_grad():
            nz = [n.to(self.G.device) for n in noise] if noise is not None else None
            return self.G.to_display(self.G.synthesize(latent.to(self.G.device), space, nz)).cpu()

    def edited_code(self, code: Code | None, family: str, k: int, strength: float, first: int = 0,
                    last: int | None = None) -> Code:
        """``code`` moved by ``strength`` (in σ of the generator's codes along direction ``k`` of ``family``) on the
        ``w+`` rows ``first…last`` (every row when ``last`` is None; all of the code for z/w-only generators)."""
        from ganinv.editing.ops import apply_direction

        if code is None:
            raise InputError("invert an image first (the Edit tab needs its code)")
        strength = float(strength)
        if not math.isfinite(strength):
            raise InputError("the strength must be a finite number")
        d = self.direction(family, k)
        layers = None if self.num_ws is None else self.layers(first, self.num_ws - 1 if last is None else last)
        edited, space = apply_direction(code.latent, d.step(), [strength], space=code.space, layers=layers,
                                        num_ws=self.num_ws)
        return Code(edited[0], space, code.noise, code.name)

    def edit(self, code: Code | None, family: str, k: int, strength: float, first: int = 0,
             last: int | None = None) -> np.ndarray:
        """:meth:`edited_code` → display image."""
        return self.code_render(self.edited_code(code, family, k, strength, first, last))

    def interpolate(self, a: Code | None, b: Code | None, t: float) -> np.ndarray:
        """The code ``(1 − t)·a + t·b`` (in the shared space of both) → display image; noise maps from ``a``."""
        from ganinv.editing.codes import to_space
        from ganinv.editing.ops import lerp

        a, b = self._pair(a, b)
        space = _common_space(a.space, b.space)
        la, lb = to_space(a.latent, a.space, space, self.G), to_space(b.latent, b.space, space, self.G)
        t = float(t)
        if not 0.0 <= t <= 1.0:
            raise InputError(f"t must be in [0, 1], got {t}")
        return to_display(self._render(lerp(la, lb, t), space, a.noise))

    def mix(self, a: Code | None, b: Code | None, first: int) -> np.ndarray:
        """Style mixing: ``a`` with its ``w+`` rows ``first…`` taken from ``b`` → display image."""
        from ganinv.editing.codes import to_space
        from ganinv.editing.ops import mix

        a, b = self._pair(a, b)
        if self.num_ws is None:
            raise InputError("style mixing needs a generator with w+ layers; this one has only z")
        la = to_space(a.latent, a.space, "w+", self.G)
        lb = to_space(b.latent, b.space, "w+", self.G)
        layers = self.layers(first, self.num_ws - 1)
        return to_display(self._render(mix(la, lb, list(layers or [])), "w+", a.noise))

    @staticmethod
    def _pair(a: Code | None, b: Code | None) -> tuple[Code, Code]:
        if a is None or b is None:
            raise InputError("invert both images first (A and B)")
        return a, b

    def code_render(self, code: Code) -> np.ndarray:
        """The code's own rendering (strength 0) → display image."""
        return to_display(self._render(code.latent, code.space, code.noise))

    def render_code(self, code: Code) -> Tensor:
        """The code's rendering at the model's size: ``[1, C, H, W]`` in [0, 1] (CPU)."""
        return self._render(code.latent, code.space, code.noise)

    # ----- photos (the Photo tab; the work is in ganinv.web.photo) --------------------------------------
    def face_detector(self) -> Any:
        """The MTCNN face detector, loaded once (missing weights: one :class:`~ganinv.errors.GaninvError`)."""
        with self._detector_lock:
            if self._detector is None:
                from ganinv.photo import get_detector

                self._detector = get_detector("mtcnn")
            return self._detector

    def read_photo(self, path: str | Path | None, shown: str = "the upload") -> Any:
        """:func:`ganinv.web.photo.read_photo`: the upload at full size as a ``PhotoJob``."""
        from ganinv.web import photo

        return photo.read_photo(self, path, shown)

    def detect_faces(self, job: Any, framing: str = "face") -> list[tuple[Tensor, Any]]:
        """:func:`ganinv.web.photo.detect_faces`: ``[(aligned face [1, C, N, N], Alignment)]``, largest first."""
        from ganinv.web import photo

        return photo.detect_faces(self, job, framing)

    def invert_face(self, job: Any, index: int | None, **options: Any) -> InvertOutcome:
        """:func:`ganinv.web.photo.invert_face`: face ``index`` of ``job`` through :meth:`invert`."""
        from ganinv.web import photo

        return photo.invert_face(self, job, index, **options)

    def edit_and_paste(self, job: Any, index: int | None, code: Code | None, family: str, k: int, strength: float,
                       first: int = 0, last: int | None = None, *, color_match: bool = False) -> Any:
        """:func:`ganinv.web.photo.edit_and_paste`: the edited face pasted into the full photo (PIL RGB)."""
        from ganinv.web import photo

        return photo.edit_and_paste(self, job, index, code, family, k, strength, first, last,
                                    color_match=color_match)

    def save_photo(self, image: Any) -> Path:
        """:func:`ganinv.web.photo.save_photo`: a PNG in a fresh job folder, for download."""
        from ganinv.web import photo

        return photo.save_photo(self, image)


def _common_space(a: str, b: str) -> str:
    order = ["z", "w", "w+"]
    return max(a, b, key=order.index)


def describe_metrics(metrics: dict[str, Any]) -> str:
    """Metrics as a small Markdown table."""
    rows = "\n".join(f"| {k} | {v if v is not None else '–'} |" for k, v in metrics.items())
    return "| metric | value |\n|---|---|\n" + rows


def card_markdown(card: dict[str, Any]) -> str:
    """:meth:`Workbench.model_card` as Markdown."""
    from ganinv.cli.common import human_size

    lines = [f"### {card['name']}", "", "| property | value |", "|---|---|"]
    for key, value in card.items():
        if key in ("name", "files", "latent spaces"):
            continue
        if isinstance(value, list):
            value = ", ".join(map(str, value))
        elif isinstance(value, dict):
            value = json.dumps(value)
        elif key == "parameters":
            value = f"{value:,}"
        lines.append(f"| {key} | {value} |")
    lines += ["", "**Latent spaces**", "", "| space | shape |", "|---|---|"]
    lines += [f"| `{s}` | {list(shape)} |" for s, shape in card["latent spaces"].items()]
    if "files" in card:
        lines += ["", "**Files**", "", "| file | size |", "|---|---|"]
        lines += [f"| `{n}` | {human_size(b)} |" for n, b in card["files"].items()]
    return "\n".join(lines)


__all__ = ["Code", "DIRECTION_FAMILIES", "DISPLAY_SIZE", "IMAGE_OBSERVATIONS", "InvertOutcome", "Limits",
           "RestoreOutcome", "Workbench", "card_markdown", "describe_metrics", "error_map", "to_display"]
