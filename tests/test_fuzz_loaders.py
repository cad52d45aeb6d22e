"""Fuzzing every loader of files from strangers: random bytes and mutations of real files of each format
(rosinality .pt, legacy .pt, NVIDIA .pkl, ganinv model folder: config.json + model.safetensors, PNG/JPEG/GIF,
.npz/.npy latents) must either load or raise one of ganinv's errors — never anything else.

Deterministic (``derandomize=True``, no example database) and bounded (``max_examples``): about 30–40 s in all
on one thread. ``scripts/fuzz_loaders.py`` runs the same targets for longer (atheris when installed).
"""

from __future__ import annotations

import json
import random
import shutil
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ganinv.errors import GaninvError
from hardening_payloads import mutate, seed_files, tiny_stylegan2
from fuzz_targets import TARGETS, run_target

FUZZ = settings(max_examples=60, derandomize=True, database=None, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return seed_files(tmp_path_factory.mktemp("seeds"))


@pytest.fixture(scope="module")
def G():  # the generator the latent seeds belong to
    return tiny_stylegan2()


def _check(target: str, path: Path, G) -> None:
    """Run ``target`` on ``path``: success or a GaninvError pass; any other exception fails with its bytes kept."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run_target(target, path, G)
    except GaninvError as exc:
        assert str(exc).strip(), f"{target}: empty error message"
    except Exception as exc:  # noqa: BLE001 - the point of the test
        keep = Path("/tmp") / f"ganinv-fuzz-crash-{target}{''.join(path.suffixes) or '.bin'}"
        if path.is_dir():
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(path, keep)
        else:
            shutil.copyfile(path, keep)
        pytest.fail(f"{target} leaked {type(exc).__name__}: {exc} (input kept at {keep})")


def test_every_target_accepts_its_seed_file(seeds, G) -> None:
    """The seeds are real, loadable files (otherwise mutating them tests little)."""
    for name, target in TARGETS.items():
        run_target(name, target.prepare(seeds, None, Path(seeds["pt"]).parent / f"ok-{name}"), G)


@pytest.mark.parametrize("target", sorted(TARGETS))
@FUZZ
@given(seed=st.integers(0, 2**32 - 1))
def test_mutated_seed_files(seeds, G, tmp_path_factory, target: str, seed: int) -> None:
    rng = random.Random(seed)
    t = TARGETS[target]
    work = tmp_path_factory.mktemp(f"mut-{target}", numbered=True)
    data = mutate(t.seed_bytes(seeds), rng)
    _check(target, t.prepare(seeds, data, work / "input"), G)


@pytest.mark.parametrize("target", sorted(TARGETS))
@settings(FUZZ, max_examples=25)
@given(data=st.binary(max_size=4096))
def test_random_bytes(seeds, G, tmp_path_factory, target: str, data: bytes) -> None:
    work = tmp_path_factory.mktemp(f"rnd-{target}", numbered=True)
    _check(target, TARGETS[target].prepare(seeds, data, work / "input"), G)


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8)
_CONFIG_KEYS = ["arch", "resolution", "channels", "z_dim", "w_dim", "n_mlp", "img_channels", "lr_mlp", "blur_kernel",
                "output_activation", "width", "latent_shape"]


@settings(FUZZ, max_examples=150)
@given(changes=st.dictionaries(st.sampled_from(_CONFIG_KEYS), _JSON_VALUES | st.integers(0, 2**40), min_size=1,
                               max_size=3),
       top=st.sampled_from(["keep", "name", "kind", "format", "drop-config"]))
def test_structured_config_json(seeds, G, tmp_path_factory, changes: dict, top: str) -> None:
    """config.json with valid JSON but strange values (huge/negative sizes, NaN, wrong types, nesting): the
    architecture is checked against the weights before anything is allocated."""
    work = tmp_path_factory.mktemp("cfg", numbered=True)
    folder = work / "model"
    shutil.copytree(seeds["folder"], folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["config"].update(changes)
    if top == "drop-config":
        del cfg["config"]
    elif top != "keep":
        cfg[top] = changes.get("arch", 7)
    (folder / "config.json").write_text(json.dumps(cfg, allow_nan=True))
    for target in ("folder", "folder-inspect"):
        _check(target, folder, G)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_truncation_point(seeds, G, tmp_path, target: str) -> None:
    """The seed file cut at ~120 points from 0 bytes to all but one (a download that stopped): this is how a
    truncated GIF was found to leak Pillow's IndexError."""
    t = TARGETS[target]
    data = t.seed_bytes(seeds)
    step = max(1, len(data) // 120)
    for cut in [*range(0, len(data), step), len(data) - 1]:
        _check(target, t.prepare(seeds, data[:cut], tmp_path / "input"), G)


def test_regressions_found_by_fuzzing(seeds, G, tmp_path) -> None:
    """Inputs that leaked foreign exceptions or exhausted memory before the loaders were fixed."""
    from ganinv.errors import CheckpointError, InputError
    from ganinv.generators.checkpoints import load_generator
    from ganinv.io import load_npy

    npy = tmp_path / "header.npy"  # a header NumPy's literal parser chokes on (tokenize.TokenError)
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (3,\n"
    npy.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\x00" * 12)
    with pytest.raises(InputError, match="damaged header"):
        load_npy(npy)
    gif = tmp_path / "cut.gif"  # Pillow's GIF reader: IndexError on a cut frame
    gif.write_bytes(seeds["gif"].read_bytes()[:-3])
    _check("gif", gif, G)
    memo = tmp_path / "memo.pkl"  # 9 bytes that made CPython's unpickler allocate 32 GB
    memo.write_bytes(b"\x80\x02Nr" + (4_000_000_000).to_bytes(4, "little") + b".")
    with pytest.raises(CheckpointError, match="memo slot 4,000,000,000"):
        load_generator(str(memo))
    folder = tmp_path / "model"
    shutil.copytree(seeds["folder"], folder)
    cfg = json.loads((folder / "config.json").read_text())
    for key, value, words in (("n_mlp", 10**9, "implausibly large"), ("blur_kernel", None, "invalid arguments"),
                              ("channels", {"4": 8, "8": 2**15}, "does not match")):
        (folder / "config.json").write_text(json.dumps({**cfg, "config": {**cfg["config"], key: value}}))
        with pytest.raises(CheckpointError, match=words):
            load_generator(str(folder))


def test_a_large_image_under_the_pixel_limit_is_read_in_bounded_memory(tmp_path) -> None:
    """A 36 MPx GIF of a few dozen KB (the fuzzer found a 497-byte one declaring 44 MPx) is allowed (under the
    89.5 MPx limit) but is box-reduced before the float conversion: peak memory grew by ~860 MB before."""
    import subprocess
    import sys

    from PIL import Image

    path = tmp_path / "big.gif"
    Image.new("L", (6000, 6000), color=77).save(path)
    code = ("import resource, sys; from ganinv.io import load_target; r0 = resource.getrusage(0).ru_maxrss; "
            "t, notes = load_target(sys.argv[1], 3, 16); print((resource.getrusage(0).ru_maxrss - r0) / 1024, "
            "float(t.min()), float(t.max()), notes)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    grew, lo, hi = (float(v) for v in out.stdout.split()[:3])
    assert grew < 250, out.stdout
    assert abs(lo - 77 / 255) < 1e-6 and abs(hi - 77 / 255) < 1e-6 and "resized 6000×6000 → 16×16" in out.stdout
