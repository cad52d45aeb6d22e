"""Fuzz ganinv's file loaders for longer than the test suite does.

    PYTHONPATH=src python scripts/fuzz_loaders.py --target nvidia-pkl --seconds 600      # one target
    PYTHONPATH=src python scripts/fuzz_loaders.py --seconds 60                           # every target, 60 s each
    PYTHONPATH=src python scripts/fuzz_loaders.py --target png --engine atheris -- -max_len=65536

The targets are those of ``tests/fuzz_targets.py`` (rosinality/legacy .pt, NVIDIA .pkl, model folder
safetensors/config.json, PNG/JPEG/GIF, .npz/.npy latents, restoration observations, masks/kernels), seeded
with real files from ``tests/hardening_payloads.seed_files``. A loader must return or raise a
``ganinv.errors.GaninvError``; anything else is a finding: the input is written to ``--crashes`` and the
run exits 1.

Engines: ``atheris`` (coverage-guided libFuzzer, used when ``import atheris`` works; it instruments
ganinv's modules and runs one target per process) or ``random`` (a deterministic AFL-style mutation loop
over the seed file, no coverage feedback; the fallback when atheris is not installed). The process runs under
an address-space limit (``--memory-gb``), and an input that raises peak memory by more than 512 MB is a
finding too (that is how the pickle memo-table bomb was found).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]


def _setup(work: Path) -> tuple[dict[str, Path], object]:
    from hardening_payloads import seed_files, tiny_stylegan2

    return seed_files(work / "seeds"), tiny_stylegan2()


#: Peak-memory growth (MB) by one input that counts as a finding (an allocation out of proportion to the file).
RSS_GROWTH_MB = 512
_peak = [0.0]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _one(name: str, data: bytes, seeds: dict[str, Path], G: object, work: Path, crashes: Path) -> str | None:
    """Run target ``name`` on ``data``; returns a finding (and keeps the input) or None. Findings: an exception
    that is not a GaninvError, an input that raises the peak memory by more than :data:`RSS_GROWTH_MB`, or a
    memory error (the process runs under an address-space limit, so a runaway allocation fails instead of
    taking the machine down; a buffer that fails to allocate but would never have been touched is not one)."""
    from fuzz_targets import TARGETS, run_target

    from ganinv.errors import GaninvError

    target = TARGETS[name]
    path = target.prepare(seeds, data, work / f"input-{name}")
    finding = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run_target(name, path, G)
    except GaninvError:
        pass  # (a MemoryError under the address-space limit is reported this way too: the peak-memory check
        # below tells a lazily allocated, never-touched buffer from a real blow-up)
    except Exception as exc:  # noqa: BLE001 - a finding
        finding = f"{name}: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
    rss = _rss_mb()
    if finding is None and _peak[0] and rss - _peak[0] > RSS_GROWTH_MB:
        finding = f"{name}: peak memory grew by {rss - _peak[0]:.0f} MB on a {len(data):,}-byte input"
    _peak[0] = max(_peak[0], rss)
    if finding is None:
        return None
    crashes.mkdir(parents=True, exist_ok=True)
    keep = crashes / f"{name}-{abs(hash(data)) % 10**10}{target.suffix or '.bin'}"
    keep.write_bytes(data)
    return f"{finding} (input: {keep})"


def run_random(names: list[str], seconds: float, seed: int, crashes: Path, work: Path) -> int:
    from fuzz_targets import TARGETS
    from hardening_payloads import mutate

    seeds, G = _setup(work)
    found = 0
    for name in names:
        rng = random.Random(f"{seed}-{name}")
        base = TARGETS[name].seed_bytes(seeds)
        corpus = [base]
        n, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < seconds:
            parent = rng.choice(corpus)
            data = mutate(parent, rng) if rng.random() < 0.97 else rng.randbytes(rng.randint(0, 2048))
            crash = _one(name, data, seeds, G, work, crashes)
            n += 1
            if crash:
                found += 1
                print(crash, flush=True)
            elif len(corpus) < 64 and rng.random() < 0.05:
                corpus.append(data)  # stack mutations now and then (no coverage signal to guide it)
        print(f"{name}: {n} inputs in {time.monotonic() - t0:.0f} s, {found} findings so far", flush=True)
    return found


def run_atheris(name: str, seconds: float, crashes: Path, work: Path, extra: list[str]) -> int:
    import atheris

    with atheris.instrument_imports(include=["ganinv"]):
        import ganinv.editing.codes  # noqa: F401
        import ganinv.generators.checkpoints  # noqa: F401
        import ganinv.io  # noqa: F401
        import ganinv.modelfile  # noqa: F401
        import ganinv.physics.tasks  # noqa: F401
    from fuzz_targets import TARGETS

    seeds, G = _setup(work)
    crashes.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus"
    corpus.mkdir(exist_ok=True)
    (corpus / "seed").write_bytes(TARGETS[name].seed_bytes(seeds))
    found = [0]

    def test_one(data: bytes) -> None:
        crash = _one(name, data, seeds, G, work, crashes)
        if crash:
            found[0] += 1
            print(crash, flush=True)
            raise RuntimeError(crash)  # let libFuzzer record and stop

    argv = [sys.argv[0], f"-max_total_time={int(seconds)}", "-rss_limit_mb=8192", f"-artifact_prefix={crashes}/",
            *extra, str(corpus)]
    atheris.Setup(argv, test_one)
    try:
        atheris.Fuzz()
    except SystemExit:
        pass
    return found[0]


def main() -> int:
    from fuzz_targets import TARGETS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", action="append", choices=sorted(TARGETS), help="target(s); default: all")
    parser.add_argument("--seconds", type=float, default=60.0, help="time per target")
    parser.add_argument("--engine", choices=["auto", "atheris", "random"], default="auto")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random engine")
    parser.add_argument("--crashes", type=Path, default=Path("fuzz-crashes"), help="where findings are written")
    parser.add_argument("--memory-gb", type=float, default=8.0,
                        help="address-space limit of the fuzzing process (a runaway allocation fails instead of "
                             "exhausting the machine)")
    parser.add_argument("extra", nargs="*", help="libFuzzer flags after --")
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_AS, (int(args.memory_gb * 2**30), resource.getrlimit(resource.RLIMIT_AS)[1]))
    names = args.target or sorted(TARGETS)
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401
            engine = "atheris"
        except ImportError:
            engine = "random"
            print("atheris is not installed: using the plain random-mutation loop (no coverage guidance)")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    work = Path(tempfile.mkdtemp(prefix="ganinv-fuzz-"))
    try:
        if engine == "random":
            found = run_random(names, args.seconds, args.seed, args.crashes, work)
        elif len(names) == 1:
            found = run_atheris(names[0], args.seconds, args.crashes, work, args.extra)
        else:  # libFuzzer runs one target per process
            import subprocess

            found = 0
            for name in names:
                cmd = [sys.executable, __file__, "--engine", "atheris", "--target", name, "--seconds",
                       str(args.seconds), "--crashes", str(args.crashes), "--memory-gb", str(args.memory_gb),
                       *(["--", *args.extra] if args.extra else [])]
                found += subprocess.run(cmd).returncode != 0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{engine}: {found} finding(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
