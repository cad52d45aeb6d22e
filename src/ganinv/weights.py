"""Pretrained weight files that ganinv fetches once: a small registry and a careful downloader.

Some components need weights that are too large to ship in the wheel — today the ImageNet backbones of LPIPS
(torchvision's ``vgg16-397923af.pth`` and ``alexnet-owt-7be5be79.pth``). Each such file is one
:class:`WeightFile` in :data:`REGISTRY`, and :func:`ensure` returns its path, downloading it on first use:

* a file already in its cache folder is returned as it is (no request is made);
* offline — ``ensure(..., offline=True)``, the environment variable ``GANINV_OFFLINE=1``, or the process-wide
  flag that ``ganinv weights --offline`` sets with :func:`set_offline` — nothing is fetched and
  :class:`~ganinv.errors.MissingWeightsError` says which file is needed, where to put it and where to get it;
* otherwise the file is streamed with :mod:`urllib` (timeouts, redirects followed) into a temporary file in the
  cache folder, hashed (SHA-256) while it arrives, with a progress bar (bytes, speed, ETA) on stderr, and renamed
  into place atomically only once the checksum matches. A checksum mismatch, a dropped connection (fewer bytes
  than the server's Content-Length, a socket error or a timeout), an HTTP error or an unreachable host removes
  the temporary file — the cache never holds half a file — and raises one :class:`WeightsDownloadError`
  naming the URL, what went wrong and how to fetch the file by hand.

Checksums: every entry holds a SHA-256 in hex and the downloaded file's digest must match it. The two LPIPS
entries hold the full 64-digit digests of torchvision's files (their names embed the first 8 digits, ``397923af``
and ``7be5be79``, which torch.hub's own ``check_hash`` compares; the full values agree with several independent
published manifests). An entry may also hold just such a prefix (at least 8 digits), for a file whose full
digest is not known: then the check is that the downloaded file's SHA-256 *starts with* it.

Mirrors: ``GANINV_WEIGHTS_URL`` (or ``ensure(..., base_url=...)``) replaces the folder part of every URL, so
``GANINV_WEIGHTS_URL=https://mirror.example/models`` fetches ``https://mirror.example/models/vgg16-397923af.pth``.

Cache folders: entries with ``cache="torch"`` live in the torch hub cache (``torch.hub.get_dir()/checkpoints``,
i.e. ``$TORCH_HOME/hub/checkpoints``), where torchvision looks too; entries with ``cache="ganinv"`` live in
``$GANINV_CACHE/weights`` (default ``$XDG_CACHE_HOME/ganinv/weights``, i.e. ``~/.cache/ganinv/weights``) — the
place for the photo pipeline's face detector and identity weights, each one more :func:`register` call.

Files that cannot be fetched unattended (no stable URL, e.g. the ArcFace IR-SE-50 weights behind the identity
metric, which sit on Google Drive) are :class:`GivenFile` entries in :data:`GIVEN` instead: the user puts them in
ganinv's cache folder under one of their names or points an environment variable at them; :meth:`GivenFile.find`
looks, and ``ganinv weights`` lists the ones found.

This module imports neither torch nor rich at import time (the CLI lists the registry without them).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from ganinv.errors import InputError, MissingWeightsError

__all__ = ["GIVEN", "REGISTRY", "GivenFile", "WeightFile", "WeightsDownloadError", "cache_dir", "ensure", "get",
           "is_cached", "is_offline", "missing_message", "register", "set_offline"]

OFFLINE_ENV = "GANINV_OFFLINE"
"""Environment variable that forbids downloads when set to 1/true/yes/on."""
URL_ENV = "GANINV_WEIGHTS_URL"
"""Environment variable holding a base URL (a mirror) that replaces the folder part of every entry's URL."""
CACHE_ENV = "GANINV_CACHE"
"""Environment variable pointing at ganinv's own cache folder (weights go in its ``weights/``)."""

TIMEOUT_S = 30.0
"""Seconds to wait for the connection and for each read before the download counts as dropped."""
CHUNK = 1 << 20
"""Bytes read (and hashed) per step."""

CacheKind = Literal["torch", "ganinv"]


class WeightsDownloadError(MissingWeightsError):
    """Downloading a registered weight file failed (network, HTTP error, truncated or corrupt file).

    A :class:`~ganinv.errors.MissingWeightsError` (hence a :class:`~ganinv.errors.GaninvError`): the weights are
    still not on disk, and the message says how to fetch them by hand.
    """


@dataclass(frozen=True)
class WeightFile:
    """One pretrained weight file ganinv can fetch.

    Attributes:
        name: registry key (``ganinv weights --download NAME``).
        file_name: the file's name in its cache folder (and the last part of its URL).
        url: where it is downloaded from (its folder part can be overridden, see the module notes).
        sha256: the file's SHA-256 in lowercase hex: all 64 digits, or a prefix of at least 8 that the digest of
            the downloaded file must start with.
        used_by: what needs it, for people (``"LPIPS (vgg)"``).
        size: the file's size in bytes where known (shown in listings and used by the progress bar when the
            server sends no Content-Length; the check is the checksum, not this).
        cache: ``"torch"`` (the torch hub cache, where torchvision looks) or ``"ganinv"`` (ganinv's own cache).
        what: how messages name the file (``"the torchvision backbone weights"``).
        hint: a sentence that messages end with, e.g. what works without the file.
    """

    name: str
    file_name: str
    url: str
    sha256: str
    used_by: str
    size: int | None = None
    cache: CacheKind = "torch"
    what: str = "the weights"
    hint: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9a-f]{8,64}", self.sha256):
            raise ValueError(f"{self.name}: sha256 must be 8 to 64 lowercase hex digits, got {self.sha256!r}")
        if "/" in self.file_name or self.file_name in ("", ".", ".."):
            raise ValueError(f"{self.name}: file_name must be a plain file name, got {self.file_name!r}")

    @property
    def path(self) -> Path:
        """Where the file is (or will be) cached."""
        return cache_dir(self.cache) / self.file_name

    def source_url(self, base_url: str | None = None) -> str:
        """The URL to fetch from: :attr:`url`, or ``base_url`` (else ``$GANINV_WEIGHTS_URL``) + ``/`` + file name."""
        base = base_url if base_url is not None else os.environ.get(URL_ENV, "").strip()
        if not base:
            return self.url
        return base.rstrip("/") + "/" + urllib.parse.quote(self.file_name)

    def matches(self, digest: str) -> bool:
        """Whether a file whose SHA-256 is ``digest`` (hex) is this file (full or prefix comparison)."""
        return digest.lower().startswith(self.sha256)


REGISTRY: dict[str, WeightFile] = {}
"""Registered weight files by name (add with :func:`register`)."""


def register(entry: WeightFile, *, replace: bool = False) -> WeightFile:
    """Add ``entry`` to :data:`REGISTRY` (a name already taken raises ``ValueError`` unless ``replace``)."""
    if entry.name in REGISTRY and not replace and REGISTRY[entry.name] != entry:
        raise ValueError(f"a weight file named {entry.name!r} is already registered")
    REGISTRY[entry.name] = entry
    return entry


_LPIPS_HINT = "Losses without lpips (e.g. --loss mse=1,ssim=0.5) work offline."
register(WeightFile(
    name="lpips-vgg", file_name="vgg16-397923af.pth", url="https://download.pytorch.org/models/vgg16-397923af.pth",
    sha256="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0", used_by="LPIPS (vgg)",
    size=553_433_881, what="the torchvision backbone weights", hint=_LPIPS_HINT))
register(WeightFile(
    name="lpips-alex", file_name="alexnet-owt-7be5be79.pth",
    url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    sha256="7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02", used_by="LPIPS (alex)",
    size=244_408_911, what="the torchvision backbone weights", hint=_LPIPS_HINT))


@dataclass(frozen=True)
class GivenFile:
    """A weight file the user gives (ganinv never downloads it): found through ``env`` or in ganinv's cache.

    Attributes:
        name: key in :data:`GIVEN`.
        file_names: names looked for in ``cache_dir("ganinv")``, in order.
        env: environment variable that may hold the file's path.
        used_by: what needs it, for people.
        source: where people get it.
    """

    name: str
    file_names: tuple[str, ...]
    env: str
    used_by: str
    source: str

    def find(self) -> tuple[Path, str] | None:
        """``(path, how it was found)``: the environment variable's path (whether or not it exists — the caller
        checks) or the first cached file; None when neither."""
        value = os.environ.get(self.env, "").strip()
        if value:
            return Path(value).expanduser(), f"${self.env}"
        for name in self.file_names:
            path = cache_dir("ganinv") / name
            if path.is_file():
                return path, "the ganinv weights cache"
        return None


GIVEN: dict[str, GivenFile] = {}
"""User-given weight files by name."""
GIVEN["arcface"] = GivenFile(
    name="arcface", file_names=("model_ir_se50.pth", "CurricularFace_Backbone.pth"), env="GANINV_ARCFACE",
    used_by="identity similarity (ID metric, id loss)",
    source="ArcFace IR-SE-50 from TreB1eN/InsightFace_Pytorch, as pSp links it; or CurricularFace's IR-101")


def get(name_or_entry: str | WeightFile) -> WeightFile:
    """The registered entry called ``name_or_entry`` (an entry is returned as it is); unknown names raise
    :class:`~ganinv.errors.InputError` listing the known ones."""
    if isinstance(name_or_entry, WeightFile):
        return name_or_entry
    try:
        return REGISTRY[name_or_entry]
    except KeyError:
        raise InputError(f"unknown weight file {name_or_entry!r}; registered: {', '.join(REGISTRY)} "
                         "(see `ganinv weights`)") from None


# ---------------------------------------------------------------- where files live, offline or not

def _torch_hub_dir() -> Path:
    """``torch.hub.get_dir()``, computed by the same rule without importing torch when it is not loaded yet."""
    if "torch" in sys.modules:
        import torch

        return Path(torch.hub.get_dir())
    cache = os.environ.get("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    return Path(os.path.expanduser(os.environ.get("TORCH_HOME", os.path.join(cache, "torch")))) / "hub"


def cache_dir(kind: CacheKind = "torch") -> Path:
    """The folder that holds the weight files of cache kind ``kind`` (see the module notes)."""
    if kind == "torch":
        return _torch_hub_dir() / "checkpoints"
    if kind == "ganinv":
        root = os.environ.get(CACHE_ENV) or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "ganinv")
        return Path(os.path.expanduser(root)) / "weights"
    raise ValueError(f"unknown cache kind {kind!r}")


def is_cached(name_or_entry: str | WeightFile) -> bool:
    """Whether the file is in its cache folder (existence only; never touches the network)."""
    return get(name_or_entry).path.is_file()


_offline_flag = False


def set_offline(value: bool = True) -> None:
    """Forbid (or allow again) downloads for the rest of the process (what ``--offline`` does)."""
    global _offline_flag
    _offline_flag = bool(value)


def is_offline(offline: bool | None = None) -> bool:
    """Whether downloads are forbidden: ``offline`` when given, else ``GANINV_OFFLINE`` or :func:`set_offline`."""
    if offline is not None:
        return bool(offline)
    env = os.environ.get(OFFLINE_ENV, "").strip().lower()
    return env in ("1", "true", "yes", "on") or _offline_flag


def _place_it(entry: WeightFile, url: str) -> str:
    """The manual fallback: where to get the file and where to put it."""
    where = (" (or point TORCH_HOME at a folder whose hub/checkpoints/ holds it)" if entry.cache == "torch"
             else f" (or point {CACHE_ENV} at a folder whose weights/ holds it)")
    return f"Download {url} and put it at {entry.path}{where}."


def missing_message(name_or_entry: str | WeightFile, *, base_url: str | None = None) -> str:
    """One line: ``entry`` is not cached and will not be downloaded here; how to put it in place by hand."""
    entry = get(name_or_entry)
    folder = "torch hub cache" if entry.cache == "torch" else "ganinv weights cache"
    text = (f"{entry.used_by} needs {entry.what} {entry.file_name}, which are not in the {folder} and cannot be "
            f"downloaded here. {_place_it(entry, entry.source_url(base_url))}")
    return f"{text} {entry.hint}" if entry.hint else text


# ---------------------------------------------------------------- downloading

def _human(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n_bytes < 1024:
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} GB"


class _Progress:
    """A rich progress bar on stderr (bytes, speed, ETA), or nothing when ``enabled`` is False."""

    def __init__(self, enabled: bool, label: str, total: int | None) -> None:
        self._bar = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                   TransferSpeedColumn)

        self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                             TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                             transient=False)
        self._task = self._bar.add_task(label, total=total)
        self._bar.start()

    def advance(self, n_bytes: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n_bytes)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _note(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Length")
    try:
        return int(value) if value is not None and int(value) >= 0 else None
    except ValueError:
        return None


def _fetch_into(entry: WeightFile, url: str, tmp: IO[bytes], progress: bool, timeout: float) -> str:
    """Stream ``url`` into ``tmp``; return the SHA-256 hex digest. Raises :class:`WeightsDownloadError`."""
    fallback = _place_it(entry, url)
    request = urllib.request.Request(url, headers={"User-Agent": "ganinv-weights"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s) URLs from the registry
    except urllib.error.HTTPError as exc:
        raise WeightsDownloadError(f"cannot download {url}: the server answered HTTP {exc.code} {exc.reason}. "
                                   f"{fallback}") from None
    except urllib.error.URLError as exc:
        raise WeightsDownloadError(f"cannot download {url}: the server cannot be reached ({exc.reason}); check the "
                                   f"network connection or proxy, or use a mirror ({URL_ENV}=BASE_URL). "
                                   f"{fallback}") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise WeightsDownloadError(f"cannot download {url}: {_describe(exc)}. {fallback}") from None
    hasher = hashlib.sha256()
    received = 0
    with response:
        total = _content_length(response)
        bar = _Progress(progress, entry.file_name, total if total is not None else entry.size)
        try:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise WeightsDownloadError(
                        f"download of {url} broke off after {_human(received)}"
                        f"{f' of {_human(total)}' if total else ''} ({_describe(exc)}); nothing was kept, try "
                        f"again. {fallback}") from None
                if not chunk:
                    break
                try:
                    tmp.write(chunk)
                except OSError as exc:
                    raise WeightsDownloadError(f"cannot write the download of {url} into {entry.path.parent} "
                                               f"({exc.strerror or exc}); free some space or point the cache "
                                               f"elsewhere. {fallback}") from None
                hasher.update(chunk)
                received += len(chunk)
                bar.advance(len(chunk))
        finally:
            bar.close()
    if total is not None and received < total:
        raise WeightsDownloadError(f"download of {url} broke off after {_human(received)} of {_human(total)} (the "
                                   f"connection closed early); nothing was kept, try again. {fallback}")
    return hasher.hexdigest()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"no data for {TIMEOUT_S:.0f} s (timed out)"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def ensure(name_or_entry: str | WeightFile, *, offline: bool | None = None, progress: bool = True,
           base_url: str | None = None, timeout: float = TIMEOUT_S) -> Path:
    """The path of a registered weight file, downloading it first when it is not cached (see the module notes).

    Args:
        name_or_entry: a :data:`REGISTRY` name or a :class:`WeightFile`.
        offline: True forbids downloading, False allows it; None (default) follows ``GANINV_OFFLINE`` and
            :func:`set_offline`.
        progress: show a progress bar and a line naming the source on stderr while downloading.
        base_url: mirror folder replacing the URL's (default ``$GANINV_WEIGHTS_URL``, else the entry's URL).
        timeout: seconds to wait for the connection and each read.

    Raises:
        MissingWeightsError: not cached and offline (the message says where to put the file by hand).
        WeightsDownloadError: the download failed; nothing is left in the cache folder.
        InputError: unknown name.
    """
    entry = get(name_or_entry)
    path = entry.path
    if path.is_file():
        return path
    if is_offline(offline):
        raise MissingWeightsError(missing_message(entry, base_url=base_url))
    url = entry.source_url(base_url)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{entry.file_name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise WeightsDownloadError(f"cannot write to {folder} ({exc.strerror or exc}); make it writable or point "
                                   f"{'TORCH_HOME' if entry.cache == 'torch' else CACHE_ENV} elsewhere. "
                                   f"{_place_it(entry, url)}") from None
    tmp_path = Path(tmp_name)
    try:
        size = f" ({_human(entry.size)})" if entry.size else ""
        _note(progress, f"downloading {entry.file_name}{size} for {entry.used_by} from {url}")
        with os.fdopen(fd, "wb") as tmp:
            digest = _fetch_into(entry, url, tmp, progress, timeout)
            tmp.flush()
            os.fsync(tmp.fileno())
        if not entry.matches(digest):
            kind = "full" if len(entry.sha256) == 64 else "first digits of the"
            raise WeightsDownloadError(
                f"download of {url} is corrupt: its SHA-256 is {digest}, expected the {kind} digest {entry.sha256}; "
                f"nothing was kept (a mirror or proxy may serve a different file). {_place_it(entry, url)}")
        from ganinv.filemode import match_ordinary_mode

        match_ordinary_mode(tmp_path, path)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    _note(progress, f"saved {path}")
    return path
