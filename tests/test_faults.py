"""Faults: SIGKILL during ``train-gan`` / ``train-encoder`` (tiny runs in a child process) → the rerun resumes
from the last checkpoint and ends with exactly the weights of an uninterrupted run; a write that fails (disk
full, read-only folder: simulated by patching ``os.replace`` / ``open``, since tests run as root) → one clear
error and no half-written file; the CLI into an unwritable folder → exit 1 and one line. SIGKILL during
``invert-dataset`` is tested in tests/test_dataset_runner.py."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ganinv.cli.app import app
from ganinv.modelfile import atomic_write, save_pretrained
from fault_driver import final_weights

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "tests" / "fault_driver.py"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
       "OMP_NUM_THREADS": "1"}
runner = CliRunner()


def _run(kind: str, out: Path, iterations: int, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DRIVER), kind, str(out), str(iterations)], env=env or ENV,
                          capture_output=True, text=True, timeout=600)


def _kill_after_first_checkpoint(kind: str, out: Path, iterations: int) -> int:
    """Start a slowed run, SIGKILL it right after its first checkpoint line; returns the iteration it reached."""
    proc = subprocess.Popen([sys.executable, str(DRIVER), kind, str(out), str(iterations), "0.3"], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 300
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.startswith("checkpoint "):
                os.kill(proc.pid, signal.SIGKILL)
                break
            assert time.monotonic() < deadline
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    return int(torch.load(out / "checkpoint.pt", weights_only=True)["iteration"])


ITERATIONS = 8
_STRAIGHT: dict[str, Path] = {}


def _straight(kind: str, factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    """The final weights of an uninterrupted run (run once per kind)."""
    if kind not in _STRAIGHT:
        out = factory.mktemp(f"straight-{kind}")
        done = _run(kind, out, ITERATIONS)
        assert done.returncode == 0, done.stderr[-2000:]
        _STRAIGHT[kind] = out
    return final_weights(kind, _STRAIGHT[kind])


@pytest.mark.parametrize("kind", ["gan", "encoder"])
def test_sigkill_mid_training_then_resume_equals_the_uninterrupted_run(kind: str, tmp_path: Path,
                                                                       tmp_path_factory) -> None:
    iterations = ITERATIONS
    reached = _kill_after_first_checkpoint(kind, tmp_path / "killed", iterations)
    assert 2 <= reached < iterations  # interrupted part-way, with a readable checkpoint
    resumed = _run(kind, tmp_path / "killed", iterations)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"start {reached}" in resumed.stdout  # it resumed rather than restarting
    a, b = _straight(kind, tmp_path_factory), final_weights(kind, tmp_path / "killed")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("kind", ["gan", "encoder"])
def test_killed_between_writing_and_renaming_a_checkpoint(kind: str, tmp_path: Path, tmp_path_factory) -> None:
    """The worst moment: the new checkpoint is written under its temporary name, not yet renamed. The old
    checkpoint stays whole; the rerun removes the leftover and resumes from the old one."""
    out = tmp_path / "run"
    died = _run(kind, out, ITERATIONS, env={**ENV, "GANINV_KILL_AT_CHECKPOINT": "2"})
    assert died.returncode == -signal.SIGKILL
    assert len(list(out.glob(".checkpoint.pt.*.tmp"))) == 1
    assert torch.load(out / "checkpoint.pt", weights_only=True)["iteration"] == 2
    resumed = _run(kind, out, ITERATIONS)
    assert resumed.returncode == 0 and "start 2" in resumed.stdout, resumed.stderr[-2000:]
    assert not list(out.rglob(".*.tmp"))
    a, b = _straight(kind, tmp_path_factory), final_weights(kind, out)
    assert all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------------------------------------
# write failures
# ----------------------------------------------------------------------------------------------------------
def _fail_replace(monkeypatch: pytest.MonkeyPatch, code: int = errno.ENOSPC, after: int = 0) -> list[str]:
    """Make the ``after``-th and later ``os.replace`` calls fail with ``code``; returns the targets tried."""
    real, tried = os.replace, []

    def replace(src, dst, *args, **kwargs):
        tried.append(str(dst))
        if len(tried) > after:
            raise OSError(code, os.strerror(code), str(dst))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    return tried


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 256 KB tmpfs (root in a container may mount one; skipped where it cannot): a disk that fills up
    (ENOSPC) and that can be remounted read-only (EROFS, which stops root too)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(disk: Path, leave: int = 2048) -> None:
    """Fill ``disk`` up to ``leave`` bytes."""
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    (disk / "filler").write_bytes(b"\0" * max(0, free - leave))


def _leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _writers(G):
    from ganinv.generators.checkpoints import save_rosinality
    from ganinv.io import save_image, save_latent_npz

    return {
        "save_pretrained": lambda d: save_pretrained(G, d / "model", name="m", kind="generator"),
        "save_latent_npz": lambda d: save_latent_npz(d / "w.npz", "w", torch.ones(1, 4)),
        "save_image": lambda d: save_image(torch.rand(1, 8, 8), d / "x.png"),
        "save_rosinality": lambda d: save_rosinality(G, d / "g.pt"),
        "atomic_write text": lambda d: atomic_write(d / "t.json", lambda tmp: Path(tmp).write_text("{}")),
    }


def _snapshot(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_atomic_writers_failing_rename_leave_the_old_file_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     tiny_sg2) -> None:
    """Every writer with ``os.replace`` failing (EROFS): an OSError; no temporary left; old files unchanged."""
    old = tmp_path / "old"
    for write in _writers(tiny_sg2).values():
        write(old)
    before = _snapshot(old)
    for name, write in _writers(tiny_sg2).items():
        for folder in (old, tmp_path / f"new-{name.replace(' ', '-')}"):
            with monkeypatch.context() as m:
                _fail_replace(m, errno.EROFS)
                with pytest.raises(OSError) as exc:
                    write(folder)
            assert exc.value.errno == errno.EROFS, name
    assert not list(tmp_path.rglob("*.tmp"))
    assert _snapshot(old) == before
    for new in tmp_path.glob("new-*"):
        assert _leftovers(new) == [], new


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_atomic_writers_on_a_full_or_read_only_disk(small_disk: Path, tiny_sg2, fault: str) -> None:
    """The same on a real disk: a tmpfs filled to the last 2 KB (ENOSPC mid-write) or remounted read-only."""
    old = small_disk / "old"
    for write in _writers(tiny_sg2).values():
        write(old)
    before = _snapshot(old)
    if fault == "full":
        _fill(small_disk)
    else:
        assert subprocess.run(["mount", "-o", "remount,ro", str(small_disk)]).returncode == 0
    for name, write in _writers(tiny_sg2).items():
        for folder in (old, small_disk / f"new-{name.replace(' ', '-')}"):
            with pytest.raises(OSError) as exc:
                write(folder)
            assert exc.value.errno in (errno.ENOSPC, errno.EROFS), (name, exc.value)
    assert not list(small_disk.rglob("*.tmp"))
    assert _snapshot(old) == before
    for new in small_disk.glob("new-*"):
        assert _leftovers(new) == [], new


def test_dataset_run_with_a_failing_disk_then_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    tiny_sg2) -> None:
    """``invert-dataset`` with a disk that fills up after the first batch: one clear error (exit 1), only whole
    files left; the rerun on a healthy disk completes and equals an uninterrupted run."""
    from ganinv.dataset import DatasetJob, load_latents, read_manifest, run_dataset
    from ganinv.io import save_image

    src = tmp_path / "src"
    for i in range(6):
        save_image(tiny_sg2.sample(1, seed=40 + i)[0].clamp(0, 1), src / f"d{i}.png")
    save_pretrained(tiny_sg2, tmp_path / "model", name="tiny", kind="generator")
    out = tmp_path / "out"
    args = ["invert-dataset", str(src), "--model", str(tmp_path / "model"), "--steps", "6", "--out", str(out),
            "--batch-size", "2", "--device", "cpu"]
    with monkeypatch.context() as m:
        tried = _fail_replace(m, errno.ENOSPC, after=4)  # run.json, then batch 0 (shard, part) … then the disk fills
        result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "No space left on device" in result.output and "Traceback" not in result.output
    assert len(tried) > 4
    assert not list(out.rglob("*.tmp"))
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert read_manifest(out).num_rows == 6
    straight = tmp_path / "straight"
    run_dataset([src], straight, tiny_sg2, DatasetJob(options={"steps": 6}), batch_size=2)
    a, b = load_latents(straight), load_latents(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cli_into_an_unwritable_folder_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         tiny_sg2) -> None:
    from ganinv.io import save_image

    save_pretrained(tiny_sg2, tmp_path / "model", name="tiny", kind="generator")
    save_image(tiny_sg2.sample(1, seed=1)[0].clamp(0, 1), tmp_path / "in" / "a.png")
    model = ["--model", str(tmp_path / "model")]
    # a folder even root cannot write (sysfs), and a read-only disk (simulated: os.replace → EROFS)
    unwritable = Path("/sys/ganinv-test-out")
    cases = [
        (["sample", *model, "--out", str(unwritable / "grid.png")], None),
        (["invert", str(tmp_path / "in"), *model, "--steps", "2", "--out", str(unwritable)], None),
        (["sample", *model, "--out", str(tmp_path / "ro" / "grid.png")], errno.EROFS),
        (["invert", str(tmp_path / "in"), *model, "--steps", "2", "--out", str(tmp_path / "ro2"),
          "--no-classifier"], errno.EROFS),
    ]
    for args, code in cases:
        if code is None and os.access("/sys", os.W_OK) and not Path("/sys/class").is_dir():
            continue  # no sysfs here
        with monkeypatch.context() as m:
            if code is not None:
                _fail_replace(m, code)
            result = runner.invoke(app, args)
        assert result.exit_code == 1, (args, result.output)
        lines = [ln for ln in result.output.strip().splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and "Traceback" not in result.output, result.output
        assert any(w in lines[0] for w in ("not writable", "Read-only file system", "Operation not permitted",
                                           "Permission denied")), lines[0]
    assert not list(tmp_path.rglob("*.tmp"))
    assert not (tmp_path / "ro" / "grid.png").exists() and not list((tmp_path / "ro2").glob("*.npz"))


def test_cli_into_a_read_only_disk(small_disk: Path, tmp_path: Path, tiny_sg2) -> None:
    from ganinv.io import save_image

    save_pretrained(tiny_sg2, tmp_path / "model", name="tiny", kind="generator")
    save_image(tiny_sg2.sample(1, seed=1)[0].clamp(0, 1), tmp_path / "in" / "a.png")
    (small_disk / "out").mkdir()
    assert subprocess.run(["mount", "-o", "remount,ro", str(small_disk)]).returncode == 0
    model = ["--model", str(tmp_path / "model")]
    for args in (["sample", *model, "--out", str(small_disk / "out" / "grid.png")],
                 ["invert", str(tmp_path / "in"), *model, "--steps", "2", "--out", str(small_disk / "out")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        lines = [ln for ln in result.output.strip().splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and "Read-only file system" in lines[0], result.output
    assert _leftovers(small_disk) == []
