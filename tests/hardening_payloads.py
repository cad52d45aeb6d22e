"""Builders shared by the hardening tests and ``scripts/reliability_report.py``: real seed files of every
format ganinv reads, byte mutators for fuzzing, malicious pickles and oversized files.

Nothing here is dangerous on its own: the malicious pickles are *bytes* that would run a harmless
payload (create a marker file, set an environment variable) if someone unpickled them naively.
:func:`payloads_live` proves that with a naive load in a throw-away subprocess, so a
test that asserts "no marker" is known to test something.
"""

from __future__ import annotations

import io
import os
import random
import struct
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # nvidia_pkl / conftest live next to this file
    sys.path.insert(0, str(HERE))

#: The environment variable a payload sets (in the loading process) if it ever runs.
MARKER_ENV = "GANINV_PWNED"


# ------------------------------------------------------------------------------------------------
# tiny real models and the seed files of every format
# ------------------------------------------------------------------------------------------------
def tiny_stylegan2(seed: int = 0) -> Any:
    """An 8 px StyleGAN2 (real layer structure, a few thousand parameters) with a stored ``w_avg``."""
    from ganinv.generators.stylegan2 import StyleGAN2Generator

    torch.manual_seed(seed)
    G = StyleGAN2Generator(resolution=8, channels={4: 8, 8: 8}, z_dim=8, w_dim=8, n_mlp=1, img_channels=1)
    G.estimate_w_avg(200)
    return G.eval().requires_grad_(False)


def _png_bytes(mode: str = "L", size: int = 8, fmt: str = "PNG", **save: Any) -> bytes:
    from PIL import Image

    y, x = np.mgrid[0:size, 0:size]
    g = ((x * 29 + y * 13) % 256).astype(np.uint8)
    img = Image.fromarray(g, mode="L")
    if mode != "L":
        img = Image.merge("RGB", (img, img.point(lambda v: 255 - v), img.point(lambda v: v // 2))).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


def seed_files(folder: Path) -> dict[str, Path]:
    """One real, loadable file of every format: ``pt`` (rosinality zip), ``pt-legacy``, ``pkl`` (NVIDIA),
    ``folder`` (ganinv model folder), ``safetensors`` (its weights), ``config`` (its config.json), ``png``,
    ``jpeg``, ``gif``, ``npz`` (a W+ latent for :func:`tiny_stylegan2`), ``npy`` (the same), ``observation`` (a
    restoration observation .npz) and ``mask`` (an 8×8 inpainting mask / blur kernel .npy)."""
    from nvidia_pkl import write_nvidia_pkl

    from ganinv.generators.checkpoints import save_rosinality
    from ganinv.io import save_latent_npz
    from ganinv.modelfile import save_pretrained

    folder.mkdir(parents=True, exist_ok=True)
    G = tiny_stylegan2()
    files: dict[str, Path] = {}
    files["pt"] = save_rosinality(G, folder / "g.pt")
    legacy = folder / "g-legacy.pt"
    torch.save({"g_ema": G.state_dict(), "latent_avg": G.w_avg.clone()}, legacy, _use_new_zipfile_serialization=False)
    files["pt-legacy"] = legacy
    files["pkl"] = write_nvidia_pkl(G, folder / "g.pkl")
    files["folder"] = save_pretrained(G, folder / "model", name="tiny", kind="generator")
    files["safetensors"] = files["folder"] / "model.safetensors"
    files["config"] = files["folder"] / "config.json"
    for name, data in (("png", _png_bytes("L")), ("jpeg", _png_bytes("RGB", fmt="JPEG", quality=80)),
                       ("gif", _png_bytes("L", fmt="GIF"))):
        files[name] = folder / f"image.{name}"
        files[name].write_bytes(data)
    w = G.convert(G.sample_latent(1, "w", seed=3), "w", "w+")
    files["npz"] = save_latent_npz(folder / "latent.npz", "w", w)
    files["npy"] = folder / "latent.npy"
    np.save(files["npy"], w[0].numpy())
    from ganinv.io import save_npz

    obs = np.linspace(0, 1, 64, dtype=np.float32).reshape(1, 8, 8)
    files["observation"] = save_npz(folder / "observation.npz", {"y": obs[None], "task": np.array(
        '{"task": "denoise", "options": {"sigma": 0.1}}')})
    files["mask"] = folder / "mask.npy"
    np.save(files["mask"], (obs[0] > 0.3).astype(np.float32))
    return files


# ------------------------------------------------------------------------------------------------
# byte mutations (a small, deterministic AFL-style mutator)
# ------------------------------------------------------------------------------------------------
_INTERESTING = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff",
                b"\x00\x00\x00\x80", b"\xff\xff\xff\xff\xff\xff\xff\x7f", b"-1", b"1e999", b"NaN", b"9" * 20]


def mutate(data: bytes, rng: random.Random, rounds: int | None = None) -> bytes:
    """``data`` with 1–4 random mutations: bit flips, byte sets, 'interesting' integers, truncation, chunk
    deletion/duplication/insertion of random bytes."""
    buf = bytearray(data)
    for _ in range(rounds if rounds is not None else rng.randint(1, 4)):
        if not buf:
            buf.extend(rng.randbytes(rng.randint(1, 64)))
            continue
        op = rng.randrange(7)
        i = rng.randrange(len(buf))
        if op == 0:
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[i] = rng.randrange(256)
        elif op == 2:
            word = rng.choice(_INTERESTING)
            buf[i:i + len(word)] = word
        elif op == 3:
            del buf[rng.randrange(len(buf) + 1):]
        elif op == 4:
            del buf[i:i + rng.randint(1, 256)]
        elif op == 5:
            j = rng.randrange(len(buf))
            buf[i:i] = buf[j:j + rng.randint(1, 256)]
        else:
            buf[i:i] = rng.randbytes(rng.randint(1, 32))
    return bytes(buf)


# ------------------------------------------------------------------------------------------------
# malicious pickles
# ------------------------------------------------------------------------------------------------
def _marker_code(marker: Path) -> str:
    return f"import os; open({str(marker)!r}, 'w').close(); os.environ[{MARKER_ENV!r}] = '1'"


def _str0(text: str) -> bytes:
    """A protocol-0 STRING argument line (``S'...'\\n``)."""
    return b"S" + repr(text).encode() + b"\n"


def _binunicode(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


@dataclass(frozen=True)
class Payload:
    """A malicious pickle: ``build(marker)`` returns its bytes; ``refused`` must appear in our error; ``container``
    is ``"pickle"`` or ``"torch"`` (a ``torch.save`` file); ``effect`` says what a naive load would do."""

    name: str
    opcodes: str
    refused: str
    build: Callable[[Path], bytes]
    container: str = "pickle"
    effect: str = "runs a shell command"


def _args(arg: str, proto: int) -> bytes:
    """One string argument as a tuple, in the opcodes of ``proto``."""
    if proto == 0:
        return b"(" + _str0(arg) + b"t"
    if proto == 1:
        return b"(" + _binunicode(arg) + b"t"
    return _binunicode(arg) + b"\x85"


def _reduce(module: str, name: str, arg: str, proto: int) -> Callable[[Path], bytes]:
    """``module.name(arg)`` via GLOBAL+REDUCE (protocol ≤ 3) or STACK_GLOBAL+REDUCE (4, 5), hand-assembled."""
    def build(marker: Path) -> bytes:
        a = arg.format(marker=marker, code=_marker_code(marker))
        if proto < 4:
            head = b"\x80" + bytes([proto]) if proto >= 2 else b""
            return head + f"c{module}\n{name}\n".encode() + _args(a, proto) + b"R."
        frame = _binunicode(module) + _binunicode(name) + b"\x93" + _args(a, proto) + b"R."
        return b"\x80" + bytes([proto]) + b"\x95" + struct.pack("<Q", len(frame)) + frame
    return build


def _body(data: bytes) -> bytes:
    """A pickle without its PROTO header and STOP, to nest inside another."""
    return data[2:-1] if data[:1] == b"\x80" else data[:-1]


def _inst(marker: Path) -> bytes:  # INST (protocol 0): class from "module\nname\n", called with the marked args
    return b"(" + _str0(_marker_code(marker)) + b"ibuiltins\nexec\n."


def _obj(marker: Path) -> bytes:  # OBJ (protocol 1): callable and args from the stack
    return b"(cbuiltins\nexec\n" + _binunicode(_marker_code(marker)) + b"o."


def _getattr_chain(marker: Path) -> bytes:
    """``getattr(__import__('os'), 'system')('touch marker')`` through GLOBAL builtins.getattr / __import__."""
    return (b"\x80\x02cbuiltins\ngetattr\ncbuiltins\n__import__\n" + _binunicode("os") + b"\x85R"
            + _binunicode("system") + b"\x86R" + _binunicode(f"touch '{marker}'") + b"\x85R.")


def _persistent_then_reduce(marker: Path) -> bytes:
    """A persistent id (BINPERSID) before an ``os.system`` REDUCE: NVIDIA pickles have none, so it is refused
    before the payload's GLOBAL is even read."""
    evil = _body(_reduce("os", "system", "touch '{marker}'", 2)(marker))
    return b"\x80\x02" + _binunicode("pid") + b"Q" + evil + b"."


def _nvidia_record(state_items: bytes) -> bytes:
    """``{"G_ema": _reconstruct_persistent_obj({"type": "class", "class_name": …, "state": {…}})}``."""
    meta = (b"}(" + _binunicode("type") + _binunicode("class") + _binunicode("class_name")
            + _binunicode("training.networks.Generator") + _binunicode("state") + b"}(" + state_items + b"uu")
    return (b"\x80\x02}" + _binunicode("G_ema") + b"ctorch_utils.persistence\n_reconstruct_persistent_obj\n"
            + meta + b"\x85Rs.")


def _nvidia_persistent_with_payload(marker: Path) -> bytes:
    """An NVIDIA persistent record whose state holds an ``os.system`` REDUCE: the allowed reconstructor is
    read first, the payload's GLOBAL is refused."""
    return _nvidia_record(_binunicode("evil") + _body(_reduce("os", "system", "touch '{marker}'", 2)(marker)))


class _Reduces:
    """Pickles as ``fn(*args)`` (what a malicious object's ``__reduce__`` returns)."""

    def __init__(self, fn: Any, *args: Any) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.fn, self.args


def _torch_zip_payload(marker: Path) -> bytes:
    """A zip-format ``torch.save`` file of ``{"g_ema": {"w": <os.system REDUCE>}}``."""
    buf = io.BytesIO()
    torch.save({"g_ema": {"w": _Reduces(os.system, f"touch '{marker}'")}, "latent_avg": torch.zeros(8)}, buf)
    return buf.getvalue()


def _torch_legacy_payload(marker: Path) -> bytes:
    buf = io.BytesIO()
    torch.save({"g_ema": {"w": _Reduces(subprocess.Popen, ["touch", str(marker)])}}, buf,
               _use_new_zipfile_serialization=False)
    return buf.getvalue()


def _storage_bytes_payload(marker: Path) -> bytes:
    """NVIDIA-style tensor storage (``torch.storage._load_from_bytes(b)``) whose bytes are a ``torch.save`` of an
    ``eval`` payload: our storage reader loads them with ``weights_only=True`` and refuses the global."""
    inner = io.BytesIO()
    torch.save(_Reduces(eval, f"__import__('os').system(\"touch '{marker}'\")"), inner,
               _use_new_zipfile_serialization=False)
    data = inner.getvalue()
    return (b"\x80\x02}" + _binunicode("G_ema") + b"ctorch.storage\n_load_from_bytes\nB"
            + struct.pack("<I", len(data)) + data + b"\x85Rs.")


_SYS = "posix" if os.name == "posix" else "nt"

PAYLOADS: list[Payload] = [
    *[Payload(f"{_SYS}.system, protocol {p}", "GLOBAL+REDUCE" if p < 4 else "FRAME+STACK_GLOBAL+REDUCE",
              f"{_SYS}.system", _reduce(_SYS, "system", "touch '{marker}'", p)) for p in range(6)],
    *[Payload(f"builtins.eval, protocol {p}", "GLOBAL+REDUCE" if p < 4 else "FRAME+STACK_GLOBAL+REDUCE",
              "builtins.eval", _reduce("builtins", "eval", "exec({code!r})", p), effect="runs Python code")
      for p in (0, 2, 5)],
    Payload("builtins.exec, protocol 3", "GLOBAL+REDUCE", "builtins.exec", _reduce("builtins", "exec", "{code}", 3),
            effect="runs Python code"),
    Payload("__builtin__.eval (Python 2 name), protocol 2", "GLOBAL+REDUCE", "builtins.eval",
            _reduce("__builtin__", "eval", "exec({code!r})", 2), effect="runs Python code"),
    Payload("os.popen, protocol 2", "GLOBAL+REDUCE", "os.popen", _reduce("os", "popen", "touch '{marker}'", 2)),
    Payload("subprocess.getoutput, protocol 4", "FRAME+STACK_GLOBAL+REDUCE", "subprocess.getoutput",
            _reduce("subprocess", "getoutput", "touch '{marker}'", 4)),
    Payload("importlib.import_module('this'), protocol 2", "GLOBAL+REDUCE", "importlib.import_module",
            _reduce("importlib", "import_module", "this", 2), effect="imports a module"),
    Payload("io.open('/etc/passwd'), protocol 2", "GLOBAL+REDUCE", "io.open", _reduce("io", "open", "/etc/passwd", 2),
            effect="opens a file"),
    Payload("builtins.open('/etc/passwd'), protocol 0", "GLOBAL+REDUCE", "builtins.open",
            _reduce("builtins", "open", "/etc/passwd", 0), effect="opens a file"),
    Payload("INST builtins.exec, protocol 0", "INST", "builtins.exec", _inst, effect="runs Python code"),
    Payload("OBJ builtins.exec, protocol 1", "OBJ", "builtins.exec", _obj, effect="runs Python code"),
    Payload("getattr(__import__('os'), 'system')(…)", "GLOBAL+REDUCE chain", "builtins.getattr", _getattr_chain),
    Payload("persistent id, then os.system", "BINPERSID+GLOBAL+REDUCE", "persistent ids", _persistent_then_reduce),
    Payload("NVIDIA persistent record holding os.system", "allowed GLOBAL, nested GLOBAL+REDUCE", "os.system",
            _nvidia_persistent_with_payload),
    Payload("NVIDIA tensor storage bytes = torch.save(eval(…))", "torch.storage._load_from_bytes", "builtins.eval",
            _storage_bytes_payload),
    Payload("torch.save (zip) holding os.system", "zip + GLOBAL+REDUCE", f"{_SYS}.system", _torch_zip_payload,
            container="torch"),
    Payload("torch.save (legacy) holding subprocess.Popen", "legacy + GLOBAL+REDUCE", "subprocess.Popen",
            _torch_legacy_payload, container="torch"),
]

_NAIVE = """
import io, json, pickle, subprocess, sys, types
import torch
m = types.ModuleType('torch_utils'); p = types.ModuleType('torch_utils.persistence')
p._reconstruct_persistent_obj = lambda meta: meta
m.persistence = p; sys.modules.update({'torch_utils': m, 'torch_utils.persistence': p})
class U(pickle.Unpickler):
    def persistent_load(self, pid): return pid
for path, container in json.loads(sys.argv[1]):
    data = open(path, 'rb').read()
    try:
        r = torch.load(io.BytesIO(data), weights_only=False) if container == 'torch' else U(io.BytesIO(data)).load()
    except Exception as e:
        r = e
    for v in [r, *(r.values() if isinstance(r, dict) else [])]:
        if isinstance(v, subprocess.Popen): v.wait()
    print('RESULT', type(r).__name__, flush=True)
"""


def payloads_live(payloads: list[Payload], folder: Path) -> dict[str, bool]:
    """Positive control: load every payload naively (``pickle`` / ``torch.load(weights_only=False)``, the way
    NVIDIA's and rosinality's own code load them) in one subprocess; payload name → whether its effect happened
    (a marker file, a file opened, a module imported)."""
    import json
    import time

    folder.mkdir(parents=True, exist_ok=True)
    jobs, markers = [], []
    for i, payload in enumerate(payloads):
        marker = folder / f"LIVE-{i}"
        marker.unlink(missing_ok=True)
        data = folder / f"payload-{i}.bin"
        data.write_bytes(payload.build(marker))
        jobs.append((str(data), payload.container))
        markers.append(marker)
    out = subprocess.run([sys.executable, "-c", _NAIVE, json.dumps(jobs)], cwd=folder, capture_output=True,
                         text=True, timeout=300)
    results = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    time.sleep(0.5)  # os.popen's shell may still be running
    live = {}
    for payload, marker, result in zip(payloads, markers, results + [""] * len(payloads)):
        if payload.effect == "opens a file":
            live[payload.name] = result in ("TextIOWrapper", "BufferedReader")
        elif payload.effect == "imports a module":
            live[payload.name] = result == "module"
        else:
            live[payload.name] = marker.exists()
    return live


# ------------------------------------------------------------------------------------------------
# oversized files: decompression bombs and absurd declared sizes
# ------------------------------------------------------------------------------------------------
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declared(width: int, height: int, mode: int = 0) -> bytes:
    """A PNG whose header declares ``width × height`` (8-bit, colour type ``mode``) and holds one tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, mode, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + _png_chunk(b"IEND", b""))


def png_bomb(side: int = 10_000) -> bytes:
    """A real decompression bomb: a valid ``side²`` grey PNG of zeros (100 MPx → ~100 KB on disk)."""
    row = b"\x00" * (side + 1)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def gif_declared(width: int, height: int) -> bytes:
    """A GIF89a whose screen and image descriptor declare ``width × height`` (max 65535 each)."""
    head = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    image = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return head + image + b";"


def tiff_declared(width: int, height: int) -> bytes:
    """A little-endian TIFF whose IFD declares ``width × height`` 8-bit grey pixels, with 8 bytes of data."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8 + 2 + 12 * 9 + 4), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, 8)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\x00" * 4
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00" * 8


def npy_declared(shape: tuple[int, ...], dtype: str = "<f4", payload: bytes = b"\x00" * 64) -> bytes:
    """An ``.npy`` file whose header declares ``shape`` but which holds only ``payload``."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


def npz_declared(shape: tuple[int, ...], key: str = "w") -> bytes:
    """An ``.npz`` holding one member ``key.npy`` whose header declares ``shape`` (little data)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{key}.npy", npy_declared(shape))
    return buf.getvalue()


def npz_zip_bomb(n_bytes: int = 1 << 30, key: str = "w") -> bytes:
    """A real zip bomb: a valid float32 ``.npy`` of ``n_bytes`` zeros, deflated to ~1 MB per GB."""
    count = n_bytes // 4
    header = npy_declared((1, count))[:-64]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open(f"{key}.npy", "w", force_zip64=True) as fh:
            fh.write(header)
            chunk = b"\x00" * (1 << 22)
            left = count * 4
            while left > 0:
                fh.write(chunk[:min(left, len(chunk))])
                left -= len(chunk)
    return buf.getvalue()


def pickle_memo_bomb(slot: int = 4_000_000_000) -> bytes:
    """``None`` stored at memo slot ``slot`` (LONG_BINPUT): CPython's C unpickler grows its memo table to the slot
    (8 bytes a slot: 32 GB for 4·10⁹) before anything else happens."""
    return b"\x80\x02Nr" + struct.pack("<I", slot) + b"."


def pickle_declared_bytes(n: int = 2**60) -> bytes:
    """A BINBYTES8 whose length says ``n`` bytes follow (8 do)."""
    return b"\x80\x04\x8e" + struct.pack("<Q", n) + b"\x00" * 8 + b"."


def pickle_declared_frame(n: int = 2**40) -> bytes:
    """A protocol-4 FRAME that says ``n`` bytes follow."""
    return b"\x80\x04\x95" + struct.pack("<Q", n) + b"N."


OVERSIZED: dict[str, tuple[str, Callable[[], bytes]]] = {
    "pickle storing at memo slot 4·10⁹ (LONG_BINPUT: a 32 GB memo table)": ("pickle", pickle_memo_bomb),
    "pickle BINBYTES8 declaring 2⁶⁰ bytes": ("pickle", pickle_declared_bytes),
    "pickle FRAME declaring 2⁴⁰ bytes": ("pickle", pickle_declared_frame),
    "PNG declaring 65535×65535 px": ("image", lambda: png_declared(65535, 65535)),
    "PNG declaring 2³¹−1 × 1 px": ("image", lambda: png_declared(2**31 - 1, 1)),
    "PNG bomb 10000×10000 (100 MPx of zeros, ~100 KB)": ("image", lambda: png_bomb(10_000)),
    "GIF declaring 65535×65535 px": ("image", lambda: gif_declared(65535, 65535)),
    "TIFF declaring 100000×100000 px": ("image", lambda: tiff_declared(100_000, 100_000)),
    ".npy declaring (10¹², 512) float32": ("npy", lambda: npy_declared((10**12, 512))),
    ".npy declaring (2³⁰,) float32 (4 GB)": ("npy", lambda: npy_declared((2**30,))),
    ".npy declaring (1, 2²⁰) float32, holding 64 bytes": ("npy", lambda: npy_declared((1, 2**20))),
    ".npz member declaring (10⁹, 10⁹)": ("npz", lambda: npz_declared((10**9, 10**9))),
    ".npz member declaring (1, 2²⁰) float32, holding 64 bytes": ("npz", lambda: npz_declared((1, 2**20))),
    ".npz zip bomb (1 GiB of zeros, ~1 MB)": ("npz", lambda: npz_zip_bomb(1 << 30)),
}
