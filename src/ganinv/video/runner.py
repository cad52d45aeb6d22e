"""The resumable video runner behind ``ganinv invert-video`` and ``ganinv edit-video``.

A video folder ``DIR`` holds:

* ``manifest.json`` — the source (its identity: size and a digest), the frame selection, the framing, the model
  (name and weight fingerprint) and the inversion options: everything that decides a frame's result. A run on an
  existing ``DIR`` must match it (else one :class:`InputError` lists the differences) and then skips the frames
  already done.
* ``track.json`` — the selected frames (``position``, source ``index``, ``time``) and, with ``--align face``, the
  detected five landmarks per frame (pixels; null where no face was found) and the smoothed ones used to align.
  Detection is saved every :data:`SAVE_EVERY` frames, so an interrupted scan resumes too.
* ``frames/<index>.npz`` per frame, written as soon as its chunk is inverted (atomically): the code (``w``
  ``[1, num_ws, w_dim]`` or ``z`` ``[1, z_dim]``, readable by ``ganinv edit``), ``space``, ``frame_alignment_json``
  (:meth:`ganinv.photo.Alignment.to_json`; not ``alignment_json``, which would make ``ganinv edit`` look for a photo),
  ``frame_index``, ``frame_time``, ``psnr`` and ``loss``; ``aligned/<index>.png``: the aligned target (written
  first, so a finished ``.npz`` always has its target).
* after the last frame: ``codes.npz`` (the codes ``[T, *shape]`` after ``--smooth``, ``frame_index`` ``[T]``,
  ``frame_time`` ``[T]``, ``space``), ``reconstruction.mp4`` (the aligned reconstructions at the source's frame
  rate ÷ ``every``), with paste-back ``reconstruction.pasted.mp4`` (the reconstructions pasted into the original
  frames), and
  ``summary.json`` (PSNR per frame, the files, the timings).

Frames are inverted in chunks of ``batch_frames`` consecutive frames, one engine call per chunk; with
``warm_start`` each chunk starts from the code of the frame just before it (temporal coherence, and fewer steps
to converge).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ganinv.errors import GaninvError, InputError
from ganinv.video.frames import FrameRef, FrameSource, Selection, VideoWriter, to_tensor, to_uint8

if TYPE_CHECKING:
    from rich.console import Console
    from torch import Tensor

    from ganinv.cli.invert import PasteSettings
    from ganinv.generators.base import Generator
    from ganinv.photo import Alignment

FORMAT = "ganinv.video/1"
TRACK_FORMAT = "ganinv.video-track/1"
MANIFEST = "manifest.json"
TRACK = "track.json"
FRAMES = "frames"
ALIGNED = "aligned"
#: Key of a frame's alignment record in its ``.npz``.
ALIGNMENT_KEY = "frame_alignment_json"
#: Detection results are saved after this many newly scanned frames.
SAVE_EVERY = 16
#: Frames rendered per pass when writing the videos.
RENDER_BATCH = 16
ALIGN_MODES = ("face", "center", "none")
#: The manifest entries a resumed run must match, with the option that sets each (for the error message).
_MATCHED = {"source.kind": "VIDEO", "source.size_bytes": "VIDEO", "source.digest": "VIDEO",
            "selection.every": "--every", "selection.max_frames": "--max-frames", "selection.start": "--start",
            "selection.end": "--end", "framing.align": "--align", "framing.landmark_sigma": "--landmark-sigma",
            "model.class": "--class", "model.fingerprint": "--model", "inversion.batch_frames": "--batch-frames",
            "inversion.warm_start": "--no-warm-start", "inversion.options": "the inversion options"}


@dataclass(frozen=True)
class VideoSettings:
    """What decides each frame's result.

    Attributes:
        selection: the frames to invert.
        align: ``face`` (FFHQ alignment from MTCNN landmarks smoothed over time), ``center`` (largest centred
            square) or ``none`` (the whole frame resized).
        landmark_sigma: Gaussian smoothing of the landmarks over time, in frames (0: off).
        batch_frames: consecutive frames per engine call.
        warm_start: start each chunk from the previous frame's code.
        options: engine options (:class:`~ganinv.inverters.optimize.OptimizeSettings` fields, JSON values).
    """

    selection: Selection
    align: str = "face"
    landmark_sigma: float = 2.0
    batch_frames: int = 8
    warm_start: bool = True
    options: dict[str, Any] = field(default_factory=dict)

    def check(self) -> VideoSettings:
        self.selection.check()
        if self.align not in ALIGN_MODES:
            raise InputError(f"--align must be one of {', '.join(ALIGN_MODES)}, got {self.align!r}")
        if not (math.isfinite(self.landmark_sigma) and self.landmark_sigma >= 0):
            raise InputError(f"--landmark-sigma must be a number of frames ≥ 0, got {self.landmark_sigma}")
        if self.batch_frames < 1:
            raise InputError(f"--batch-frames must be ≥ 1, got {self.batch_frames}")
        return self


@dataclass
class Track:
    """The selected frames and, for face alignment, their landmarks ``[T, 5, 2]`` (``raw``: NaN rows where no
    face was found; ``smoothed``: gaps filled and smoothed over time)."""

    refs: list[FrameRef]
    raw: np.ndarray | None = None
    smoothed: np.ndarray | None = None

    @property
    def detected(self) -> int:
        if self.raw is None:
            return len(self.refs)
        return int(np.isfinite(self.raw.reshape(len(self.refs), -1)).all(axis=1).sum())


def frame_name(index: int) -> str:
    """File stem of the source's frame ``index``: six digits (more when needed)."""
    return f"{index:06d}"


def _num(value: Any, digits: int = 4) -> float | None:
    if value is None:
        return None
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    from ganinv.modelfile import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2, default=str) + "\n"))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} cannot be read ({exc}); remove it or choose another --out") from None
    if not isinstance(data, dict):
        raise InputError(f"{path} is not a ganinv video record; remove it or choose another --out")
    return data


def _progress(console: Console | None) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                    console=console, transient=False)


# ----------------------------------------------------------------------------------------------------------
# The manifest
# ----------------------------------------------------------------------------------------------------------

def build_manifest(source: FrameSource, settings: VideoSettings, G: Generator, model_name: str,
                   model_arg: str | None, fingerprint: str) -> dict[str, Any]:
    """The manifest of an inversion of ``source`` with ``settings`` on ``G`` (see the module notes).
    ``model_arg``: the ``--model`` value that loads ``G`` again (an absolute path for a file), or None. A
    class-bound ``G`` (``--class``) records its class (the label, or a probability vector), which
    ``edit-video`` binds again."""
    from ganinv.generators.conditional import ClassBoundGenerator

    space = settings.options.get("space") or G.default_space
    label = G.config()["class"] if isinstance(G, ClassBoundGenerator) else None
    return json.loads(json.dumps({
        "format": FORMAT,
        "source": source.info.to_dict(),
        "selection": settings.selection.to_dict(),
        "framing": {"align": settings.align, "landmark_sigma": settings.landmark_sigma,
                    "detector": "mtcnn" if settings.align == "face" else None},
        "model": {"name": model_name, "model_arg": model_arg, "fingerprint": fingerprint, "arch": G.arch,
                  "resolution": G.resolution, "channels": G.channels, "space": space, "class": label},
        "inversion": {"method": "optimize", "batch_frames": settings.batch_frames,
                      "warm_start": settings.warm_start, "options": settings.options},
    }, default=str))


def _get(d: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        d = d.get(part, {}) if isinstance(d, dict) else {}
    return d if d != {} else None


def check_manifest(out_dir: Path, manifest: dict[str, Any]) -> bool:
    """Compare ``manifest`` with the one in ``out_dir`` (True: resuming) or write it there (False: a new run).

    A folder with another run's manifest raises one :class:`InputError` naming every difference; a folder that
    holds frames but no manifest (not made by ganinv) is refused too. Nothing is written before the checks pass."""
    path = out_dir / MANIFEST
    if path.is_file():
        old = _read_json(path)
        if old.get("format") != FORMAT:
            raise InputError(f"{path} is not a ganinv video manifest; choose another --out")
        diffs = []
        # frames are read turned by the display rotation since the manifest recorded it; a run made before
        # (no entry) read them as stored, so the frames of the two runs would not line up
        turned = [_get(m, "source.rotation") for m in (old, manifest)]
        if (turned[0] or 0) != (turned[1] or 0):
            there = (f"{turned[0]}°" if turned[0] is not None
                     else "none (made by a ganinv that did not read display rotations)")
            diffs.append(f"the frames' orientation differs (display rotation {there} there, {turned[1] or 0}° here)")
        for key, flag in _MATCHED.items():
            a, b = _get(old, key), _get(manifest, key)
            if a != b:
                if key.startswith("source."):
                    diffs.append(f"the source video differs ({old['source'].get('path')} there)")
                elif key == "model.fingerprint":
                    if _get(old, "model.class") != _get(manifest, "model.class"):
                        continue  # the class is part of the bound model's fingerprint: said once, as --class
                    diffs.append(f"the model differs ({_get(old, 'model.name')} there, {_get(manifest, 'model.name')}"
                                 " here, or other weights)")
                else:
                    diffs.append(f"{flag}: {json.dumps(a)} there, {json.dumps(b)} here")
        diffs = list(dict.fromkeys(diffs))
        if diffs:
            raise InputError(f"{out_dir} holds a video inversion made with other settings: {'; '.join(diffs)}. "
                             "Resume with the same command, or choose another --out")
        return True
    if (out_dir / FRAMES).is_dir() and any((out_dir / FRAMES).iterdir()):
        raise InputError(f"{out_dir}/{FRAMES} exists but {out_dir} has no {MANIFEST}; choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(path, manifest)
    return False


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a video folder, or an :class:`InputError` when ``folder`` is not one."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise InputError(f"{folder} is not a ganinv video folder (it has no {MANIFEST}); give a video file or the "
                         "--out folder of `ganinv invert-video`")
    data = _read_json(path)
    if data.get("format") != FORMAT:
        raise InputError(f"{path} is not a ganinv video manifest")
    return data


# ----------------------------------------------------------------------------------------------------------
# Pass 1: the frames and their landmarks
# ----------------------------------------------------------------------------------------------------------

def _track_record(track_refs: list[FrameRef], raw: list[Any], complete: bool,
                  smoothed: np.ndarray | None = None) -> dict[str, Any]:
    from ganinv.video.smooth import as_lists

    smooth_rows = as_lists(smoothed) if smoothed is not None else [None] * len(track_refs)
    return {"format": TRACK_FORMAT, "complete": complete,
            "frames": [{"position": r.position, "index": r.index, "time": round(r.time, 6), "landmarks": lm,
                        **({"smoothed": s} if smoothed is not None else {})}
                       for r, lm, s in zip(track_refs, raw, smooth_rows, strict=True)]}


def scan(source: FrameSource, settings: VideoSettings, out_dir: Path, size: int, *, detector: Any = None,
         console: Console | None = None) -> Track:
    """Pass 1: list the selected frames and, with face alignment, detect and follow the face in each and smooth
    its landmarks over time. Resumes from (and keeps updating) ``out_dir/track.json``.

    Raises :class:`InputError`: no frame selected; no face in any frame; a face too small for ``size`` px."""
    from ganinv.video.smooth import as_lists, choose_face, from_lists

    path = out_dir / TRACK
    face = settings.align == "face"
    cached: dict[int, Any] = {}
    if path.is_file():
        old = _read_json(path)
        if old.get("format") == TRACK_FORMAT and isinstance(old.get("frames"), list):
            if old.get("complete"):
                done = [FrameRef(int(f["position"]), int(f["index"]), float(f["time"])) for f in old["frames"]]
                if not done:
                    raise InputError("the selection keeps no frame of the video; check --start/--end")
                return _finish_track(done, from_lists([f["landmarks"] for f in old["frames"]]) if face else None,
                                     settings, size)
            cached = {int(f["index"]): f["landmarks"] for f in old["frames"]}
    if face and detector is None:
        from ganinv.photo import get_detector

        detector = get_detector("mtcnn")
    refs: list[FrameRef] = []
    raw: list[Any] = []
    last: np.ndarray | None = None
    fresh = 0
    total = source.count(settings.selection)
    what = "detecting faces" if face else "reading frames"
    with _progress(console) as progress:
        task = progress.add_task(what, total=total, info="")
        for ref, frame in source.frames(settings.selection):
            lm = None
            if face:
                if ref.index in cached:
                    lm = cached[ref.index]
                else:
                    from ganinv.photo import detect_faces

                    pick = choose_face(detect_faces(frame, detector), last)
                    lm = None if pick is None else as_lists(np.asarray(pick.landmarks, dtype=np.float64)[None, :5])[0]
                    fresh += 1
                if lm is not None:
                    last = np.asarray(lm, dtype=np.float64)
            refs.append(ref)
            raw.append(lm)
            progress.update(task, advance=1, info=f"frame {ref.index}" + (
                f" · {sum(r is not None for r in raw)} with a face" if face else ""))
            if face and fresh >= SAVE_EVERY:
                _write_json(path, _track_record(refs, raw, False))
                fresh = 0
    if not refs:
        raise InputError("the selection keeps no frame of the video; check --start/--end (the video is "
                         f"{source.info.declared_frames or '?'} frames at {source.info.fps:.3g} fps)")
    track = _finish_track(refs, from_lists(raw) if face else None, settings, size)
    _write_json(path, _track_record(refs, raw, True, track.smoothed))
    if face and track.raw is not None:
        missing = len(refs) - track.detected
        if missing and console is not None:
            console.print(f"[yellow]note:[/] no face found in {missing} of {len(refs)} frames; their alignment is "
                          "interpolated from the neighbouring frames")
    return track


def _finish_track(refs: list[FrameRef], raw: np.ndarray | None, settings: VideoSettings, size: int) -> Track:
    from ganinv.photo import FaceTooSmallError, ffhq_quad
    from ganinv.video.smooth import smooth_landmarks

    if raw is None:
        return Track(refs)
    smoothed = smooth_landmarks(raw, settings.landmark_sigma)
    for ref, lm in zip(refs, smoothed, strict=True):
        quad = ffhq_quad(lm)
        side = float(np.hypot(*(quad[3] - quad[0])))
        if side * 4 < size:
            raise FaceTooSmallError(
                f"the face in frame {ref.index} ({ref.time:.2f} s) is too small: its FFHQ square is {side:.0f} px "
                f"across, but the model's images are {size} px (more than 4× upscaling); use a larger video or a "
                "lower-resolution model")
    return Track(refs, raw, smoothed)


# ----------------------------------------------------------------------------------------------------------
# Pass 2: inversion, chunk by chunk
# ----------------------------------------------------------------------------------------------------------

def frame_alignment(frame: np.ndarray, align: str, size: int,
                    landmarks: np.ndarray | None = None) -> tuple[Any, Alignment]:
    """Frame one video frame ``[H, W, 3]`` uint8 for a ``size`` px model: ``(aligned PIL RGB image, Alignment)``.
    ``landmarks`` ``[5, 2]`` (pixels) for ``align="face"``."""
    from ganinv.photo import align_center, align_face, align_none

    if align == "face":
        assert landmarks is not None
        return align_face(frame, landmarks, size, max_upscale=None)
    if align == "center":
        return align_center(frame, size, "crop")
    return align_none(frame, size)


def _target(aligned: Any, channels: int) -> Tensor:
    """The aligned image as the engine's target ``[C, N, N]`` in [0, 1], on the 8-bit grid (what its PNG holds)."""
    t = to_tensor(aligned, channels)
    return (t * 255).round() / 255


def _code_from_npz(arrays: dict[str, np.ndarray], space: str) -> np.ndarray:
    """The exact code ``[1, *shape]`` of ``space`` from a frame's arrays (a W code was written broadcast)."""
    if space == "z":
        return arrays["z"]
    w = arrays["w"]
    return w[:, 0] if space == "w" else w


def _read_frame(path: Path) -> dict[str, np.ndarray] | None:
    """A finished frame's arrays, or None when the file is absent or unreadable (the frame is then redone)."""
    if not path.is_file():
        return None
    from ganinv.io import load_npz

    try:
        arrays = load_npz(path)
    except GaninvError:
        return None
    return arrays if "space" in arrays and ("w" in arrays or "z" in arrays) else None


def invert_frames(G: Generator, source: FrameSource, track: Track, settings: VideoSettings, out_dir: Path, *,
                  console: Console | None = None) -> dict[str, Any]:
    """Pass 2: invert every selected frame not yet in ``out_dir/frames/``, ``batch_frames`` at a time, writing each
    chunk's ``.npz`` and aligned ``.png`` files as soon as it is done. Returns ``{"done_before", "inverted",
    "seconds"}``."""
    import torch

    from ganinv import inverters
    from ganinv.io import save_image, save_npz

    frames_dir, aligned_dir = out_dir / FRAMES, out_dir / ALIGNED
    frames_dir.mkdir(parents=True, exist_ok=True)
    aligned_dir.mkdir(parents=True, exist_ok=True)
    options = dict(settings.options)
    space = options.get("space") or G.default_space
    num_ws = getattr(G, "num_ws", None)
    done = {r.position for r in track.refs if _read_frame(frames_dir / f"{frame_name(r.index)}.npz") is not None}
    todo = len(track.refs) - len(done)
    stats = {"done_before": len(done), "inverted": 0, "seconds": 0.0}
    if not todo:
        return stats
    by_position = {r.position: r for r in track.refs}
    size, channels = G.resolution, G.channels

    pending: list[tuple[FrameRef, Tensor, Alignment]] = []
    with _progress(console) as progress:
        task = progress.add_task(f"inverting {todo} frame{'s' if todo != 1 else ''}", total=len(track.refs),
                                 completed=len(done), info="")

        def flush() -> None:
            if not pending:
                return
            first = pending[0][0].position
            y = torch.stack([t for _, t, _ in pending]).to(G.device)
            opts = dict(options)
            if settings.warm_start and first > 0:
                prev = _read_frame(frames_dir / f"{frame_name(by_position[first - 1].index)}.npz")
                if prev is not None and str(prev["space"][()]) == space:
                    opts["init"] = torch.from_numpy(np.ascontiguousarray(_code_from_npz(prev, space),
                                                                         dtype=np.float32))
            label = f"frames {pending[0][0].index}–{pending[-1][0].index}"

            def callback(step: int, state: Any) -> None:
                phase = "" if state.phase == "latent" else f"{state.phase} "
                progress.update(task, info=f"{label} · {phase}step {step + 1}/{state.total_steps} · "
                                           f"loss {float(state.loss.mean()):.3g}")

            t0 = time.perf_counter()
            result = inverters.invert(G, y, callback=callback, **opts)
            stats["seconds"] += time.perf_counter() - t0
            psnr = result.metrics.get("psnr")
            loss = result.metrics.get("loss")
            for i, (ref, target, alignment) in enumerate(pending):
                stem = frame_name(ref.index)
                save_image(target, aligned_dir / f"{stem}.png")
                arrays = {**result.npz_arrays(i, num_ws), "space": np.array(result.space),
                          ALIGNMENT_KEY: np.array(alignment.to_json()), "frame_index": np.array(ref.index),
                          "frame_time": np.array(ref.time),
                          "psnr": np.array(float(psnr[i]) if psnr is not None else np.nan),
                          "loss": np.array(float(loss[i]) if loss is not None else np.nan)}
                save_npz(frames_dir / f"{stem}.npz", arrays)
                stats["inverted"] += 1
                progress.update(task, advance=1)
            pending.clear()

        chunk = -1
        for ref, frame in source.frames(settings.selection):
            if ref.position >= len(track.refs):
                break
            if ref.position in done:
                continue
            if ref.position // settings.batch_frames != chunk:
                flush()
                chunk = ref.position // settings.batch_frames
            lm = track.smoothed[ref.position] if track.smoothed is not None else None
            aligned, alignment = frame_alignment(frame, settings.align, size, lm)
            pending.append((ref, _target(aligned, channels), alignment))
        flush()
    return stats


# ----------------------------------------------------------------------------------------------------------
# Pass 3: codes → videos
# ----------------------------------------------------------------------------------------------------------

@dataclass
class Codes:
    """Every selected frame's code, in order: ``latent`` ``[T, *shape]`` in ``space``, per-layer ``noise`` maps
    ``[T, 1, H_i, W_i]`` (None: the generator's stored ones), the frames' ``refs`` and ``alignments``, and the
    inversion's own ``psnr`` / ``loss`` per frame."""

    latent: Tensor
    space: str
    noise: list[Tensor] | None
    refs: list[FrameRef]
    alignments: list[Alignment]
    psnr: list[float | None]
    loss: list[float | None]


def load_frame_codes(out_dir: Path, track: Track) -> Codes:
    """Read every frame's ``.npz`` of a finished inversion (a missing one is an :class:`InputError`)."""
    import torch

    from ganinv.photo import Alignment

    latents, noises, aligns, psnr, loss = [], [], [], [], []
    space = None
    for ref in track.refs:
        path = out_dir / FRAMES / f"{frame_name(ref.index)}.npz"
        arrays = _read_frame(path)
        if arrays is None:
            raise InputError(f"{path} is missing: the inversion of {out_dir} is not finished; run `ganinv "
                             "invert-video` with the same options again to finish it")
        s = str(arrays["space"][()])
        if space is not None and s != space:
            raise InputError(f"{path} holds a {s} code, but the other frames hold {space} codes")
        space = s
        latents.append(torch.from_numpy(np.ascontiguousarray(_code_from_npz(arrays, s), dtype=np.float32)))
        keys = sorted((k for k in arrays if k.startswith("noise_")), key=lambda k: int(k.split("_")[1]))
        noises.append([torch.from_numpy(np.asarray(arrays[k], dtype=np.float32)) for k in keys])
        aligns.append(Alignment.from_json(str(arrays[ALIGNMENT_KEY][()])))
        psnr.append(_num(arrays["psnr"][()]))
        loss.append(_num(arrays["loss"][()], 6))
    assert space is not None
    noise = None
    if noises and noises[0]:
        if any(len(n) != len(noises[0]) for n in noises):
            raise InputError(f"the frames of {out_dir} do not all hold the same noise maps")
        noise = [torch.cat([n[i] for n in noises]) for i in range(len(noises[0]))]
    return Codes(torch.cat(latents), space, noise, list(track.refs), aligns, psnr, loss)


def _aligned_target(out_dir: Path, ref: FrameRef, channels: int) -> Tensor | None:
    path = out_dir / ALIGNED / f"{frame_name(ref.index)}.png"
    if not path.is_file():
        return None
    from ganinv.io import load_photo

    return to_tensor(load_photo(path)[0], channels)


def write_videos(G: Generator, latent: Tensor, space: str, noise: list[Tensor] | None, codes: Codes,
                 out_dir: Path, stem: str, fps: Any, *, source: FrameSource | None = None,
                 selection: Selection | None = None, paste: PasteSettings | None = None,
                 targets_dir: Path | None = None, console: Console | None = None,
                 description: str = "rendering") -> dict[str, Any]:
    """Render ``latent`` ``[T, *shape]`` frame by frame into ``out_dir/<stem>.mp4`` (aligned frames) and, with
    ``paste`` (and the ``source`` to read the original frames from), ``out_dir/<stem>.pasted.mp4``.

    ``targets_dir``: a video folder whose ``aligned/`` targets give each rendered frame's PSNR (dB).
    Returns ``{"video", "pasted", "psnr": [T], "codec", "frames"}``."""
    from ganinv.editing import render

    T = latent.shape[0]
    size = G.resolution
    writer = VideoWriter(out_dir / stem, fps, size, size)
    pasted: VideoWriter | None = None
    frames_iter = None
    if paste is not None:
        assert source is not None and selection is not None
        w, h = codes.alignments[0].original_size
        pasted = VideoWriter(out_dir / f"{stem}.pasted", fps, w, h)
        frames_iter = source.frames(selection)
    psnr: list[float | None] = []
    try:
        with _progress(console) as progress:
            task = progress.add_task(description, total=T, info="")
            for start in range(0, T, RENDER_BATCH):
                stop = min(T, start + RENDER_BATCH)
                nz = [n[start:stop] for n in noise] if noise is not None else None
                images = render(G, latent[start:stop], space, nz)
                for k in range(stop - start):
                    t = start + k
                    ref = codes.refs[t]
                    img = images[k]
                    writer.write(to_uint8(img))
                    value = None
                    if targets_dir is not None:
                        target = _aligned_target(targets_dir, ref, G.channels)
                        if target is not None:
                            from ganinv import metrics as M

                            value = _num(M.psnr(img[None].clamp(0, 1), target[None])[0])
                    psnr.append(value)
                    if pasted is not None and frames_iter is not None and paste is not None:
                        _paste_one(pasted, frames_iter, ref, img, codes.alignments[t], paste)
                    progress.update(task, advance=1, info=f"frame {ref.index}")
        out = {"video": writer.close().name, "codec": writer.codec, "frames": writer.frames, "psnr": psnr,
               "padded": bool(writer.padded)}
        if pasted is not None:
            out["pasted"] = pasted.close().name
            out["pasted_padded"] = bool(pasted.padded)
        return out
    finally:
        writer.abort()
        if pasted is not None:
            pasted.abort()
        if frames_iter is not None:
            frames_iter.close()  # closes the source's container


def _paste_one(writer: VideoWriter, frames_iter: Any, ref: FrameRef, image: Tensor, alignment: Alignment,
               paste: PasteSettings) -> None:
    from PIL import Image

    from ganinv.photo import paste_many

    for got, frame in frames_iter:
        if got.position == ref.position:
            break
    else:
        raise InputError(f"the source video ended before frame {ref.index}; it changed since the inversion")
    if tuple(alignment.original_size) != (frame.shape[1], frame.shape[0]):
        raise InputError(f"frame {ref.index} of the source is {frame.shape[1]}×{frame.shape[0]} px, but it was "
                         f"aligned at {alignment.original_size[0]}×{alignment.original_size[1]} px")
    photo = Image.fromarray(frame, "RGB")
    out = paste_many(photo, [(image.clamp(0, 1), alignment, paste.mask)], color_match=paste.color_match)
    writer.write(np.asarray(out, dtype=np.uint8))


def finish(G: Generator, source: FrameSource, track: Track, settings: VideoSettings, out_dir: Path, *,
           smooth: float = 0.0, paste: PasteSettings | None = None, manifest: dict[str, Any],
           stats: dict[str, Any], console: Console | None = None) -> dict[str, Any]:
    """Pass 3: the codes of every frame (smoothed over time by ``smooth`` frames) → ``codes.npz``, the
    reconstruction video (and the pasted one), ``summary.json``. Returns the summary."""
    from ganinv.io import save_npz
    from ganinv.video.smooth import smooth_latents

    codes = load_frame_codes(out_dir, track)
    latent = smooth_latents(codes.latent, smooth)
    arrays: dict[str, Any] = {("z" if codes.space == "z" else "w"): latent.numpy(), "space": np.array(codes.space),
                              "frame_index": np.array([r.index for r in codes.refs]),
                              "frame_time": np.array([r.time for r in codes.refs]),
                              "smooth": np.array(float(smooth))}
    if codes.noise is not None:
        arrays.update({f"noise_{i}": n.numpy() for i, n in enumerate(codes.noise)})
    save_npz(out_dir / "codes.npz", arrays)
    fps = source.info.fraction / settings.selection.every
    t0 = time.perf_counter()
    written = write_videos(G, latent, codes.space, codes.noise, codes, out_dir, "reconstruction", fps,
                           source=source, selection=settings.selection, paste=paste, targets_dir=out_dir,
                           console=console, description="writing the reconstruction")
    render_seconds = time.perf_counter() - t0
    detected = None
    if track.raw is not None:
        detected = np.isfinite(track.raw.reshape(len(track.refs), -1)).all(axis=1).tolist()
    records = []
    for t, ref in enumerate(codes.refs):
        records.append({"position": ref.position, "frame": ref.index, "time": round(ref.time, 6),
                        "psnr": written["psnr"][t], "psnr_inversion": codes.psnr[t], "loss": codes.loss[t],
                        "latent": f"{FRAMES}/{frame_name(ref.index)}.npz",
                        "aligned": f"{ALIGNED}/{frame_name(ref.index)}.png",
                        **({"face_detected": bool(detected[t])} if detected is not None else {}),
                        "alignment": json.loads(codes.alignments[t].to_json())})
    values = [r["psnr"] for r in records if r["psnr"] is not None]
    summary = {
        "format": FORMAT, "complete": True, "model": manifest["model"], "source": manifest["source"],
        "selection": manifest["selection"], "framing": manifest["framing"], "inversion": manifest["inversion"],
        "space": codes.space, "smooth": smooth, "num_frames": len(records),
        "fps": float(fps), "rate": str(fps), "codec": written["codec"],
        "frames_with_face": track.detected if track.raw is not None else None,
        "mean": {"psnr": _num(sum(values) / len(values)) if values else None,
                 "psnr_inversion": _num(np.mean([p for p in codes.psnr if p is not None]))
                 if any(p is not None for p in codes.psnr) else None},
        "this_run": {"frames_done_before": stats["done_before"], "frames_inverted": stats["inverted"],
                     "inversion_seconds": _num(stats["seconds"], 3), "render_seconds": _num(render_seconds, 3)},
        "files": {"codes": "codes.npz", "reconstruction": written["video"],
                  **({"pasted": written["pasted"]} if "pasted" in written else {}),
                  "track": TRACK, "manifest": MANIFEST, "frames": f"{FRAMES}/", "aligned": f"{ALIGNED}/"},
        **({"paste": {"mask": paste.mask_path, "color_match": paste.color_match}} if paste is not None else {}),
        **({"notes": ["the pasted video is padded by one edge pixel to an even size (4:2:0 video)"]}
           if written.get("pasted_padded") else {}),
        "records": records,
    }
    _write_json(out_dir / "summary.json", summary)
    return summary


def load_track(out_dir: Path, settings: VideoSettings, size: int) -> Track:
    """The finished scan of a video folder (an :class:`InputError` when it is missing or unfinished)."""
    path = out_dir / TRACK
    data = _read_json(path) if path.is_file() else {}
    if not data.get("complete"):
        raise InputError(f"{out_dir} has no finished frame scan ({TRACK}); run `ganinv invert-video` with the same "
                         "options again to finish it")
    from ganinv.video.smooth import from_lists

    refs = [FrameRef(int(f["position"]), int(f["index"]), float(f["time"])) for f in data["frames"]]
    raw = from_lists([f["landmarks"] for f in data["frames"]]) if settings.align == "face" else None
    return _finish_track(refs, raw, settings, size)


def settings_from_manifest(manifest: dict[str, Any]) -> VideoSettings:
    """The :class:`VideoSettings` a manifest records."""
    sel = manifest.get("selection", {})
    framing = manifest.get("framing", {})
    inv = manifest.get("inversion", {})
    try:
        return VideoSettings(Selection(int(sel.get("every", 1)), sel.get("max_frames"), float(sel.get("start", 0.0)),
                                       sel.get("end")),
                             str(framing.get("align", "face")), float(framing.get("landmark_sigma", 0.0)),
                             int(inv.get("batch_frames", 1)), bool(inv.get("warm_start", True)),
                             dict(inv.get("options", {})))
    except (TypeError, ValueError) as exc:
        raise InputError(f"the video manifest is malformed ({exc})") from None


__all__ = [
    "FORMAT",
    "MANIFEST",
    "Codes",
    "Track",
    "VideoSettings",
    "build_manifest",
    "check_manifest",
    "finish",
    "frame_alignment",
    "frame_name",
    "invert_frames",
    "load_frame_codes",
    "load_track",
    "read_manifest",
    "scan",
    "settings_from_manifest",
    "write_videos",
]
