"""Weight files fetched once (``ganinv.weights``, ``ganinv weights``): downloads from a local HTTP server only.

A threaded ``http.server`` on 127.0.0.1 (port 0) serves a small file in several ways — intact, redirected,
truncated (a Content-Length larger than the body), stalled, missing (404) — and counts the requests, so each case
can check both what ``ensure`` did and that it asked the network nothing when it should not. The caches point at
``tmp_path``; the suite is offline by default (conftest sets ``GANINV_OFFLINE=1``), so the download tests lift it.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ganinv import weights
from ganinv.cli.app import app
from ganinv.errors import GaninvError, InputError, MissingWeightsError
from ganinv.filemode import current_umask
from ganinv.weights import WeightFile, WeightsDownloadError

BODY = bytes(range(256)) * 1200  # 300 KiB: several read chunks are not needed, but more than one TCP segment
DIGEST = hashlib.sha256(BODY).hexdigest()


@dataclass
class Server:
    """The local server's base URL, the paths it was asked for, and a switch that releases stalled requests."""

    base: str
    requests: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - silence the default stderr log
        """Keep the test output clean."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        """Serve ``/m/good.bin`` and its variants (see the module notes)."""
        state = self.server.state  # type: ignore[attr-defined]
        state.requests.append(self.path)
        name = self.path.rsplit("/", 1)[-1]
        if name == "redirect.bin":
            self.send_response(302)
            self.send_header("Location", "/m/good.bin")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif name in ("good.bin", "other.bin", "short.bin", "stall.bin"):
            body = BODY[::-1] if name == "other.bin" else BODY
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body) + (1000 if name == "short.bin" else 0)))
            self.end_headers()
            if name == "stall.bin":
                self.wfile.write(body[:1000])
                self.wfile.flush()
                state.release.wait(5)
                return
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True
        else:
            self.send_error(404, "Not Found")


@pytest.fixture
def server() -> Iterator[Server]:
    """A threaded HTTP server on 127.0.0.1 with a free port, stopped after the test."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    state = Server(base=f"http://127.0.0.1:{httpd.server_address[1]}/m")
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def caches(monkeypatch, tmp_path) -> Path:
    """Torch hub and ganinv caches under ``tmp_path`` (never the real ones); downloads allowed; no mirror."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("GANINV_CACHE", str(tmp_path / "ganinv_cache"))
    monkeypatch.delenv("GANINV_OFFLINE", raising=False)
    monkeypatch.delenv("GANINV_WEIGHTS_URL", raising=False)
    monkeypatch.setattr(weights, "_offline_flag", False)
    return tmp_path / "torch_home" / "hub" / "checkpoints"


def entry(server: Server, file_name: str = "good.bin", sha256: str = DIGEST, **kw: object) -> WeightFile:
    """A registry entry for a file on the local server."""
    return WeightFile(name=kw.pop("name", f"test-{file_name}"), file_name=file_name,  # type: ignore[arg-type]
                      url=f"{server.base}/{file_name}", sha256=sha256, used_by="a test", **kw)  # type: ignore[arg-type]


def test_download_checks_the_digest_and_renames_into_place(server, caches, capsys):
    e = entry(server)
    path = weights.ensure(e)  # progress on, stderr is not a terminal here
    assert path == caches / "good.bin" and path.read_bytes() == BODY
    assert sorted(p.name for p in caches.iterdir()) == ["good.bin"]  # no temporary file left
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~current_umask()  # not mkstemp's 0600
    assert "downloading good.bin" in capsys.readouterr().err
    assert server.requests == ["/m/good.bin"]
    assert weights.ensure(e) == path and server.requests == ["/m/good.bin"]  # cached: no second request
    assert weights.ensure(e, offline=True) == path  # cached files are used offline too


def test_prefix_digests_redirects_and_ganinv_cache(server, caches, tmp_path):
    e = entry(server, "redirect.bin", sha256=DIGEST[:8], cache="ganinv")
    path = weights.ensure(e, progress=False)
    assert path == tmp_path / "ganinv_cache" / "weights" / "redirect.bin" and path.read_bytes() == BODY
    assert server.requests == ["/m/redirect.bin", "/m/good.bin"]


def test_mirror_base_url_replaces_the_folder(server, caches, monkeypatch):
    e = WeightFile(name="t", file_name="good.bin", url="http://127.0.0.1:9/nowhere/good.bin", sha256=DIGEST,
                   used_by="a test")
    monkeypatch.setenv("GANINV_WEIGHTS_URL", server.base + "/")
    assert weights.ensure(e, progress=False).read_bytes() == BODY
    assert server.requests == ["/m/good.bin"]


def test_checksum_mismatch_keeps_nothing(server, caches):
    with pytest.raises(WeightsDownloadError) as info:
        weights.ensure(entry(server, "other.bin"), progress=False)
    message = str(info.value)
    assert f"{server.base}/other.bin" in message and "SHA-256" in message and DIGEST in message
    assert "put it at" in message and "\n" not in message
    assert list(caches.iterdir()) == []


def test_dropped_connection_keeps_nothing(server, caches):
    with pytest.raises(WeightsDownloadError, match="broke off") as info:
        weights.ensure(entry(server, "short.bin"), progress=True)
    assert f"{server.base}/short.bin" in str(info.value) and "Download" in str(info.value)
    assert list(caches.iterdir()) == []


def test_stalled_connection_times_out_and_keeps_nothing(server, caches):
    with pytest.raises(WeightsDownloadError, match="timed out"):
        weights.ensure(entry(server, "stall.bin"), progress=False, timeout=0.3)
    assert list(caches.iterdir()) == []


def test_http_404_is_one_clear_error(server, caches):
    with pytest.raises(WeightsDownloadError, match="HTTP 404") as info:
        weights.ensure(entry(server, "missing.bin"), progress=False)
    assert isinstance(info.value, MissingWeightsError) and isinstance(info.value, GaninvError)
    assert f"{server.base}/missing.bin" in str(info.value) and str(caches / "missing.bin") in str(info.value)
    assert list(caches.iterdir()) == []


def test_unreachable_host_says_so(caches):
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    e = WeightFile(name="t", file_name="good.bin", url=f"http://127.0.0.1:{port}/good.bin", sha256=DIGEST,
                   used_by="a test")
    with pytest.raises(WeightsDownloadError, match="cannot be reached") as info:
        weights.ensure(e, progress=False)
    assert "put it at" in str(info.value)
    assert list(caches.iterdir()) == []


@pytest.mark.parametrize("how", ["argument", "env", "flag"])
def test_offline_refuses_without_a_request(server, caches, monkeypatch, how):
    e = entry(server)
    kwargs: dict[str, bool] = {}
    if how == "argument":
        kwargs["offline"] = True
    elif how == "env":
        monkeypatch.setenv("GANINV_OFFLINE", "1")
    else:
        weights.set_offline(True)
    with pytest.raises(MissingWeightsError) as info:
        weights.ensure(e, **kwargs)
    assert not isinstance(info.value, WeightsDownloadError)
    message = str(info.value)
    assert "cannot be downloaded here" in message and e.url in message and str(caches / "good.bin") in message
    assert server.requests == [] and not caches.exists()
    assert weights.ensure(e, offline=False, progress=False).is_file()  # the argument wins over env and flag


def test_registry_holds_torchvisions_lpips_backbones():
    from torchvision.models import AlexNet_Weights, VGG16_Weights

    from ganinv.losses.perceptual import BACKBONES, WEIGHT_ENTRIES

    assert weights.get("lpips-vgg").url == VGG16_Weights.IMAGENET1K_V1.url
    assert weights.get("lpips-alex").url == AlexNet_Weights.IMAGENET1K_V1.url
    for net, name in WEIGHT_ENTRIES.items():
        e = weights.get(name)
        assert len(e.sha256) == 64 and e.url.endswith("/" + e.file_name)  # full digests
        assert e.sha256[:8] in e.file_name  # torchvision's names embed the digest's first 8 digits
        assert BACKBONES[net] == (e.file_name, e.url)
    with pytest.raises(InputError, match="lpips-vgg"):
        weights.get("nope")
    with pytest.raises(ValueError):
        WeightFile(name="x", file_name="x.bin", url="http://x/x.bin", sha256="XYZ", used_by="x")


def test_lpips_fetches_through_ensure_and_prefers_the_cache(caches, monkeypatch):
    from ganinv.losses import perceptual

    calls: list[tuple[object, object]] = []

    class Stop(Exception):
        pass

    def fake_ensure(name: object, *, offline: object = None, **kw: object) -> Path:
        calls.append((name, offline))
        raise Stop

    monkeypatch.setattr(weights, "ensure", fake_ensure)
    with pytest.raises(Stop):
        perceptual.LPIPSLoss("alex")
    assert calls == [("lpips-alex", None)]
    # "available" stays "cached": callers that merely prefer LPIPS never start a download
    assert not perceptual.lpips_available("vgg")
    assert perceptual.lpips_available("vgg", download=True)
    weights.set_offline(True)
    assert not perceptual.lpips_available("vgg", download=True)


def test_cli_lists_entries(server, caches, monkeypatch):
    monkeypatch.setitem(weights.REGISTRY, "test-good", entry(server, name="test-good"))
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["weights"])
    assert result.exit_code == 0, result.output
    for name in ("lpips-vgg", "lpips-alex", "test-good", "LPIPS (alex)", "vgg16-397923af.pth"):
        assert name in result.output
    assert server.requests == []
    result = CliRunner().invoke(app, ["weights", "--download", "test-good"])
    assert result.exit_code == 0, result.output
    assert (caches / "good.bin").read_bytes() == BODY and "saved to" in result.output
    result = CliRunner().invoke(app, ["weights", "--offline", "--download", "test-good"])
    assert result.exit_code == 0 and "already cached" in result.output and len(server.requests) == 1


def test_cli_failed_fetch_is_one_error_line(server, caches, monkeypatch):
    monkeypatch.setitem(weights.REGISTRY, "test-missing", entry(server, "missing.bin", name="test-missing"))
    result = CliRunner().invoke(app, ["weights", "--download", "test-missing"])
    assert result.exit_code == 1
    assert result.output.count("error:") == 1 and "Traceback" not in result.output
    assert "HTTP 404" in result.output and not caches.joinpath("missing.bin").exists()
    result = CliRunner().invoke(app, ["weights", "--download", "no-such-file"])
    assert result.exit_code == 1 and "error:" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["weights", "--offline", "--download", "all"])
    assert result.exit_code == 1 and "cannot be downloaded here" in result.output
    assert server.requests == ["/m/missing.bin"]
    weights.set_offline(False)


def test_suite_is_offline_by_default():
    assert os.environ.get("GANINV_OFFLINE") == "1" and weights.is_offline()
