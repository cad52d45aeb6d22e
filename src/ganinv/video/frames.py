"""Video frames in and out with PyAV (``av``: FFmpeg's libraries in a wheel, imported only when needed).

Frames are uint8 arrays ``[H, W, 3]`` (RGB, 0..255) while they travel through this module; images that cross into
the models are float tensors ``[C, H, W]`` in [0, 1] (:func:`to_tensor`, :func:`to_uint8`).

* :func:`open_source` opens a video file, or a folder of frame images (played at ``fps``), as a
  :class:`FrameSource`; :meth:`FrameSource.frames` decodes the frames a :class:`Selection` keeps
  (``every``-th frame between ``start`` and ``end`` seconds, at most ``max_frames``), one at a time.
* :class:`VideoWriter` encodes frames to a file, atomically (a temporary name, renamed on :meth:`VideoWriter.close`):
  H.264 in MP4 when the installed PyAV has an H.264 encoder, else MPEG-4 part 2 in MP4, else VP9/FFV1 in Matroska,
  else Motion-JPEG in AVI (:func:`pick_encoder`).
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from ganinv.errors import InputError

if TYPE_CHECKING:
    from torch import Tensor

INSTALL_HINT = "python -m pip install av"
#: Encoders tried in order: ``(file suffix, codec, pixel format)``.
ENCODERS = (
    (".mp4", "libx264", "yuv420p"),
    (".mp4", "h264", "yuv420p"),
    (".mp4", "libopenh264", "yuv420p"),
    (".mp4", "mpeg4", "yuv420p"),
    (".mkv", "libvpx-vp9", "yuv420p"),
    (".mkv", "ffv1", "yuv444p"),
    (".avi", "mjpeg", "yuvj420p"),
)
#: Frame rate of a folder of frames when none is given.
DEFAULT_FOLDER_FPS = 25.0


def require_av() -> ModuleType:
    """The ``av`` module, or an :class:`InputError` saying how to install it."""
    try:
        import av
    except ImportError:
        raise InputError(f"reading and writing video needs PyAV, which is not installed: {INSTALL_HINT}") from None
    return av


def _why(exc: BaseException) -> str:
    """FFmpeg's reason without the path it repeats (``Invalid data found when processing input``)."""
    return str(getattr(exc, "strerror", None) or str(exc).strip() or type(exc).__name__)


def _av_errors(av: ModuleType) -> tuple[type[BaseException], ...]:
    return (getattr(av, "FFmpegError", OSError), OSError, ValueError, UnicodeDecodeError, IndexError)


@dataclass(frozen=True)
class Selection:
    """Which frames of a source become targets: every ``every``-th frame whose time lies in [``start``, ``end``)
    seconds (``end`` None: to the last frame), at most ``max_frames`` of them (None: all)."""

    every: int = 1
    max_frames: int | None = None
    start: float = 0.0
    end: float | None = None

    def check(self) -> Selection:
        """This selection, or an :class:`InputError` naming the bad option."""
        if self.every < 1:
            raise InputError(f"--every must be ≥ 1, got {self.every}")
        if self.max_frames is not None and self.max_frames < 1:
            raise InputError(f"--max-frames must be ≥ 1, got {self.max_frames}")
        if not (math.isfinite(self.start) and self.start >= 0):
            raise InputError(f"--start must be a number of seconds ≥ 0, got {self.start}")
        if self.end is not None and not (math.isfinite(self.end) and self.end > self.start):
            raise InputError(f"--end must be a number of seconds after --start ({self.start:g}), got {self.end}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FrameRef:
    """One selected frame: ``position`` among the selected frames (0, 1, …), ``index`` among all the source's
    frames (decode order), ``time`` in seconds."""

    position: int
    index: int
    time: float


@dataclass(frozen=True)
class SourceInfo:
    """What a source is: ``kind`` ``"video"`` or ``"frames"`` (a folder), the absolute ``path``, the frame size
    ``width`` × ``height`` in pixels, the frame rate (``fps``, and exactly as a fraction text ``rate``), the number
    of frames the container declares (``declared_frames``; 0 when unknown), and an identity (``size_bytes``,
    ``digest``: SHA-256 of the file's first and last MiB, or of the folder's file names and sizes).

    ``rotation`` (0, 90, 180 or 270) is the counter-clockwise quarter-turn the file's display matrix asks for
    (phones store portrait video landscape, with ffprobe's "rotation of -90.00 degrees" = 270 here): frames are
    read turned as a player shows them, and ``width`` × ``height`` is that shown size."""

    kind: str
    path: str
    width: int
    height: int
    fps: float
    rate: str
    declared_frames: int
    size_bytes: int
    digest: str
    rotation: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def fraction(self) -> Fraction:
        return Fraction(self.rate)


def _file_digest(path: Path) -> tuple[int, str]:
    size = path.stat().st_size
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        h.update(fh.read(1 << 20))
        if size > 2 << 20:
            fh.seek(size - (1 << 20))
            h.update(fh.read())
    return size, h.hexdigest()[:16]


def _selected(refs: Iterator[tuple[int, float, Any]], selection: Selection) -> Iterator[tuple[FrameRef, Any]]:
    """``(index, time, payload)`` in decode order → the selected ones as ``(FrameRef, payload)``."""
    kept = seen = 0
    for index, time, payload in refs:
        if time < selection.start - 1e-6:
            continue
        if selection.end is not None and time >= selection.end - 1e-6:
            break
        if seen % selection.every == 0:
            yield FrameRef(kept, index, time), payload
            kept += 1
            if selection.max_frames is not None and kept >= selection.max_frames:
                break
        seen += 1


class FrameSource:
    """A video file or a folder of frames; :meth:`frames` decodes the selected frames one by one."""

    def __init__(self, info: SourceInfo, files: list[Path] | None = None) -> None:
        self.info = info
        self._files = files

    def frames(self, selection: Selection) -> Generator[tuple[FrameRef, np.ndarray], None, None]:
        """``(FrameRef, frame [H, W, 3] uint8)`` for every selected frame, in order. A file that cannot be decoded
        part-way raises an :class:`InputError` naming the frame."""
        if self._files is not None:
            yield from self._folder_frames(selection)
            return
        av = require_av()
        errors = _av_errors(av)
        path = self.info.path
        try:
            container = av.open(path)
        except errors as exc:
            raise InputError(f"{path} cannot be read as a video ({_why(exc)})") from None
        fps = self.info.fps

        def decoded() -> Iterator[tuple[int, float, Any]]:
            """``(index, seconds since the first frame, frame)``: containers may start their clock above 0."""
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            t0: float | None = None
            for i, frame in enumerate(container.decode(stream)):
                t = float(frame.time) if frame.time is not None else i / fps
                t0 = t if t0 is None else t0
                yield i, t - t0, frame

        index = -1
        try:
            for ref, frame in _selected(decoded(), selection):
                index = ref.index
                arr = frame.to_ndarray(format="rgb24")
                if self.info.rotation:
                    arr = np.rot90(arr, k=self.info.rotation // 90)
                yield ref, np.ascontiguousarray(arr)
        except errors as exc:
            raise InputError(f"{path}: decoding failed after frame {index} ({_why(exc)}); the file may be "
                             "damaged") from None
        finally:
            container.close()

    def _folder_frames(self, selection: Selection) -> Iterator[tuple[FrameRef, np.ndarray]]:
        from ganinv.io import load_photo

        assert self._files is not None
        fps = self.info.fps
        size = (self.info.width, self.info.height)
        for ref, path in _selected(((i, i / fps, p) for i, p in enumerate(self._files)), selection):
            photo, _ = load_photo(path)
            if photo.size != size:
                raise InputError(f"{path} is {photo.size[0]}×{photo.size[1]} px, but the folder's first frame is "
                                 f"{size[0]}×{size[1]} px: every frame of a video must have one size")
            yield ref, np.asarray(photo, dtype=np.uint8).copy()

    def count(self, selection: Selection) -> int | None:
        """How many frames ``selection`` keeps, when the source says how many it has without decoding (else None)."""
        n = len(self._files) if self._files is not None else self.info.declared_frames
        if not n:
            return None
        fps = self.info.fps
        first = max(0, math.ceil(selection.start * fps - 1e-6))
        last = n if selection.end is None else min(n, math.ceil(selection.end * fps - 1e-6))
        kept = max(0, math.ceil((last - first) / selection.every))
        return kept if selection.max_frames is None else min(kept, selection.max_frames)


def open_source(path: Path, fps: float | None = None) -> FrameSource:
    """Open a video file or a folder of frame images (natural order, played at ``fps``, default 25).

    Raises :class:`InputError`: a missing path, a file that is not a video (or has no video stream), an empty
    folder; ``fps`` given for a video file (which has its own)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such video file or folder; check the path")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise InputError(f"--fps must be a positive number, got {fps}")
    if path.is_dir():
        return _open_folder(path, fps or DEFAULT_FOLDER_FPS)
    if fps is not None:
        raise InputError("--fps applies to a folder of frames; a video file has its own frame rate")
    av = require_av()
    errors = _av_errors(av)
    try:
        container = av.open(str(path))
    except errors as exc:
        raise InputError(f"{path} is not a video PyAV can read ({_why(exc)})") from None
    try:
        if not container.streams.video:
            raise InputError(f"{path} has no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        width, height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
        declared = int(stream.frames or 0)
        rotation = _display_rotation(container, stream, errors)
    except errors as exc:
        raise InputError(f"{path} is not a video PyAV can read ({_why(exc)})") from None
    finally:
        container.close()
    if not width or not height:
        raise InputError(f"{path} has a video stream without a frame size; it may be damaged")
    rate = Fraction(rate) if rate else Fraction(25)
    if rate <= 0:
        rate = Fraction(25)
    if rotation in (90, 270):
        width, height = height, width
    size, digest = _file_digest(path)
    info = SourceInfo("video", str(path.resolve()), width, height, float(rate), str(rate), declared, size, digest,
                      rotation)
    return FrameSource(info)


def _display_rotation(container: Any, stream: Any, errors: tuple[type[BaseException], ...]) -> int:
    """The display matrix's rotation of ``stream`` as a counter-clockwise quarter-turn (0, 90, 180, 270), read from
    its first frame (PyAV exposes the matrix on frames); 0 without one, or when nothing decodes (reported later).
    Angles between quarter-turns (no phone writes them) are rounded to the nearest."""
    try:
        frame = next(iter(container.decode(stream)), None)
    except errors:  # PyAV's decoding errors: a damaged first frame is reported, with its index, when frames are read
        return 0
    angle = float(getattr(frame, "rotation", 0) or 0) if frame is not None else 0.0
    if not math.isfinite(angle):
        return 0
    return int(round(angle / 90.0)) % 4 * 90


def _open_folder(path: Path, fps: float) -> FrameSource:
    from ganinv.io import collect_images, load_photo

    files, _ = collect_images([path])
    if not files:
        raise InputError(f"{path} is a folder without frame images (PNG, JPEG, …)")
    photo, _ = load_photo(files[0])
    h = hashlib.sha256()
    total = 0
    for f in files:
        st = f.stat()
        total += st.st_size
        h.update(f"{f.name}:{st.st_size};".encode())
    rate = Fraction(fps).limit_denominator(1001)
    info = SourceInfo("frames", str(path.resolve()), photo.size[0], photo.size[1], float(rate), str(rate),
                      len(files), total, h.hexdigest()[:16])
    return FrameSource(info, files)


# ----- conversions ----------------------------------------------------------------------------------------

def to_tensor(frame: Any, channels: int) -> Tensor:
    """A uint8 image ``[H, W, 3]`` (array or PIL RGB) → float tensor ``[channels, H, W]`` in [0, 1]
    (1 channel: ITU-R 601-2 luma, as ganinv reads grey images)."""
    import torch

    arr = np.asarray(frame, dtype=np.float32) / 255.0
    if arr.ndim == 2:
        arr = arr[:, :, None].repeat(3, axis=2)
    if channels == 1:
        arr = (arr[:, :, :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).clamp_(0.0, 1.0)


def to_uint8(image: Tensor) -> np.ndarray:
    """A float tensor ``[C, H, W]`` in [0, 1] (C = 1 or 3) → uint8 RGB array ``[H, W, 3]``."""
    import torch

    t = image.detach().cpu().float().clamp(0, 1)
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    return np.ascontiguousarray((t[:3] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())


# ----- writing --------------------------------------------------------------------------------------------

def available_encoders() -> list[tuple[str, str, str]]:
    """The :data:`ENCODERS` the installed PyAV has, in order of preference."""
    av = require_av()
    found = []
    for suffix, codec, pix in ENCODERS:
        try:
            av.codec.Codec(codec, "w")
        except Exception:  # noqa: BLE001 - PyAV raises its own UnknownCodecError (or a ValueError in old versions)
            continue
        found.append((suffix, codec, pix))
    return found


def pick_encoder() -> tuple[str, str, str]:
    """``(suffix, codec, pixel format)`` of the best encoder available (see the module notes)."""
    found = available_encoders()
    if not found:
        raise InputError("the installed PyAV has none of the video encoders ganinv can use ("
                         + ", ".join(c for _, c, _ in ENCODERS) + f"); reinstall it: {INSTALL_HINT}")
    return found[0]


class VideoWriter:
    """Encode frames (``[H, W, 3]`` uint8) to ``stem`` + the chosen encoder's suffix, atomically.

    Use as a context manager, or call :meth:`close` (keeps the file) / :meth:`abort` (removes it). Frames of odd
    width or height are padded by one edge pixel for the 4:2:0 encoders (recorded in :attr:`padded`).
    ``path`` is the final file name.
    """

    def __init__(self, stem: Path, fps: Fraction, width: int, height: int) -> None:
        self.av = require_av()
        suffix, codec, pix = pick_encoder()
        self.path = Path(str(stem) + suffix)
        self.codec, self.width, self.height = codec, width, height
        self.padded = pix.endswith("420p") and (width % 2 or height % 2)
        self.frames = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=suffix, dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        rate = Fraction(fps).limit_denominator(1_001_000) if fps > 0 else Fraction(25)
        try:
            self._container = self.av.open(str(self._tmp), mode="w")
            self._stream = self._container.add_stream(codec, rate=rate)
            self._stream.width = width + (width % 2 if self.padded else 0)
            self._stream.height = height + (height % 2 if self.padded else 0)
            self._stream.pix_fmt = pix
            if codec == "libx264":
                self._stream.options = {"crf": "17", "preset": "medium"}
            elif codec in ("mpeg4", "mjpeg"):
                self._stream.options = {"qscale": "2"}
                self._stream.codec_context.qscale = 2  # type: ignore[attr-defined]
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        self._open = True

    def write(self, frame: np.ndarray) -> None:
        """Append one frame ``[height, width, 3]`` uint8."""
        arr = np.asarray(frame, dtype=np.uint8)
        if arr.shape != (self.height, self.width, 3):
            raise InputError(f"frame of shape {arr.shape} for a {self.width}×{self.height} video")
        if self.padded:
            arr = np.pad(arr, ((0, self.height % 2), (0, self.width % 2), (0, 0)), mode="edge")
        vf = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> Path:
        """Flush, close and move the file into place; returns its path."""
        if not self._open:
            return self.path
        self._open = False
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            os.replace(self._tmp, self.path)
        finally:
            self._tmp.unlink(missing_ok=True)
        return self.path

    def abort(self) -> None:
        """Stop and remove the unfinished file (an existing file at :attr:`path` is left as it was)."""
        if not self._open:
            return
        self._open = False
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - closing a half-written container may fail; the file goes anyway
            pass
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def decode_all(path: Path) -> list[np.ndarray]:
    """Every frame of a video file as ``[H, W, 3]`` uint8 arrays (for checks and small videos)."""
    src = open_source(Path(path))
    return [frame for _, frame in src.frames(Selection())]


__all__ = ["DEFAULT_FOLDER_FPS", "ENCODERS", "FrameRef", "FrameSource", "Selection", "SourceInfo", "VideoWriter",
           "available_encoders", "decode_all", "open_source", "pick_encoder", "require_av", "to_tensor", "to_uint8"]
