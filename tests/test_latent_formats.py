"""The field's latent and direction files (ganinv.latentfiles, editing.directions): each written the way its tool
writes it (real key names and layouts), read back and checked against the model; malicious pickles run nothing;
every ``--latent-format`` writer round-trips through the reader; e4e direction ``.pt`` files edit codes."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import make_tiny_stylegan2
from ganinv.cli.app import app
from ganinv.errors import InputError
from ganinv.latentfiles import LATENT_FORMATS, LatentBatch, read_latent, read_latents, write_latents
from ganinv.modelfile import save_pretrained

runner = CliRunner()


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    text = result.output.strip()
    assert text.startswith("error:") and text.count("error:") == 1, result.output
    assert "Traceback" not in text
    return " ".join(text.split())


class Payload:
    """Pickles as ``open(marker, "w")``: loading it naively creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture
def wp(tiny_sg2) -> torch.Tensor:
    """Three W+ codes ``[3, num_ws = 6, 16]`` of the tiny model."""
    return tiny_sg2.convert(tiny_sg2.sample_latent(3, "w", seed=3), "w", "w+") + 0.01 * torch.randn(3, 6, 16)


@pytest.fixture
def model_dir(tiny_sg2, tmp_path):
    return save_pretrained(tiny_sg2, tmp_path / "tiny", name="tiny", kind="generator")


# ----------------------------------------------------------------------------------------------------------
# Readers: each format as its tool writes it
# ----------------------------------------------------------------------------------------------------------

def test_nvidia_projected_w_npz(tiny_sg2, wp, tmp_path):
    path = tmp_path / "projected_w.npz"
    np.savez(path, w=wp[:1].numpy())  # projector.py: np.savez(..., w=projected_w.unsqueeze(0).cpu().numpy())
    (code,) = read_latents(path, tiny_sg2)
    assert code.name == "projected_w" and code.code.space == "w+"
    torch.testing.assert_close(code.code.latent, wp[:1])


def test_e4e_latents_pt_is_one_code_per_image(tiny_sg2, wp, tmp_path):
    path = tmp_path / "latents.pt"
    torch.save(torch.cat([wp[:2], wp[2:]]), path)  # scripts/inference.py: torch.save(torch.cat(batches), ...)
    codes = read_latents(path, tiny_sg2)
    assert [c.name for c in codes] == ["latents_0", "latents_1", "latents_2"]
    for i, c in enumerate(codes):
        assert c.code.space == "w+" and c.code.latent.shape == (1, 6, 16)
        torch.testing.assert_close(c.code.latent, wp[i:i + 1])
    torch.save(wp[:1], tmp_path / "one.pt")
    assert read_latent(tmp_path / "one.pt", tiny_sg2).name == "one"
    with pytest.raises(InputError, match="holds 3 codes"):
        read_latent(path, tiny_sg2)


def test_restyle_and_hyperstyle_latents_npy(tiny_sg2, wp, tmp_path):
    # ReStyle inference_iterative.py: {basename: [latent[idx].cpu().numpy() per iteration]}; np.save(dict)
    restyle = {"00001.jpg": [wp[2].numpy(), wp[1].numpy(), wp[0].numpy()], "00002.jpg": [wp[1].numpy()]}
    np.save(tmp_path / "latents.npy", restyle)
    codes = read_latents(tmp_path / "latents.npy", tiny_sg2)
    assert [c.name for c in codes] == ["00001", "00002"]
    torch.testing.assert_close(codes[0].code.latent, wp[:1])  # the last iteration
    torch.testing.assert_close(codes[1].code.latent, wp[1:2])
    assert "step 3 of 3" in codes[0].label
    # HyperStyle scripts/inference.py: {basename: result_latents[i][0]}, one [num_ws, 512] array
    np.save(tmp_path / "hyper.npy", {"face.png": wp[1].numpy(), "b.jpg": wp[2:3].numpy()})
    codes = read_latents(tmp_path / "hyper.npy", tiny_sg2)
    assert [c.name for c in codes] == ["face", "b"] and all(c.code.space == "w+" for c in codes)
    torch.testing.assert_close(codes[0].code.latent, wp[1:2])
    # a stacked [n_iters, num_ws, D] array: the last step
    np.save(tmp_path / "stacked.npy", {"x.png": wp.numpy()})
    torch.testing.assert_close(read_latent(tmp_path / "stacked.npy", tiny_sg2).code.latent, wp[2:3])


def _npy_with_pickle(path: Path, body: bytes) -> None:
    """An ``.npy`` of a 0-d object array whose pickle is ``body`` (as ``np.save(path, dict)`` lays it out)."""
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "|O", "fortran_order": False, "shape": ()})
        fh.write(body)


def test_restyle_latents_npy_written_by_numpy_1(tiny_sg2, wp, tmp_path):
    """ReStyle's 2021 files: np.save under NumPy 1.x, pickle protocol 3, globals spelled numpy.core.multiarray."""
    wrapped = np.empty((), dtype=object)
    wrapped[()] = {"00001.jpg": [wp[0].numpy(), wp[1].numpy()]}
    body = pickle.dumps(wrapped, protocol=3)
    body = body.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in body
    _npy_with_pickle(tmp_path / "latents.npy", body)
    (code,) = read_latents(tmp_path / "latents.npy", tiny_sg2)
    assert code.name == "00001"
    torch.testing.assert_close(code.code.latent, wp[1:2])


def test_a_pickled_npy_that_would_allocate_gigabytes_is_refused(tiny_sg2, tmp_path):
    # PROTO 2, EMPTY_DICT, LONG_BINPUT 4e9 (CPython would size its memo table for it), STOP
    _npy_with_pickle(tmp_path / "bomb.npy", b"\x80\x02}r\x00\x28\x6b\xee.")
    with pytest.raises(InputError, match="memo slot"):
        read_latents(tmp_path / "bomb.npy", tiny_sg2)


def test_rosinality_projector_pt_with_noise_maps(tiny_sg2, wp, tmp_path):
    noises = [torch.randn(*s) for s in tiny_sg2.noise_shapes]  # g_ema.make_noise(): [1, 1, H, H] per layer
    result_file = {
        "faces/a.png": {"img": torch.rand(1, 16, 16) * 2 - 1, "latent": wp[0], "noise": noises},
        "b.png": {"img": torch.rand(1, 16, 16), "latent": wp[1, 0], "noise": [torch.randn(1, 1, 4, 4)]},
    }
    torch.save(result_file, tmp_path / "a.pt")  # projector.py names the file after the first input
    a, b = read_latents(tmp_path / "a.pt", tiny_sg2)
    assert (a.name, a.code.space, b.name, b.code.space) == ("a", "w+", "b", "w")
    torch.testing.assert_close(a.code.latent, wp[:1])
    assert a.code.noise is not None and all(torch.equal(x, y) for x, y in zip(a.code.noise, noises))
    assert b.code.noise is None and "do not match this model's 5" in b.notes[0]  # wrong maps: the model's own


def test_pti_pivot_is_named_by_its_folder(tiny_sg2, wp, tmp_path):
    folder = tmp_path / "embeddings" / "run" / "PTI" / "face"
    folder.mkdir(parents=True)
    torch.save(wp[1:2], folder / "0.pt")  # base_coach.py: torch.save(w_pivot, f'{embedding_dir}/0.pt')
    code = read_latent(folder / "0.pt", tiny_sg2)
    assert code.name == "face" and code.code.space == "w+"
    torch.testing.assert_close(code.code.latent, wp[1:2])


def _foreign_files(wp: torch.Tensor, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"e4e": folder / "latents.pt", "restyle": folder / "latents.npy", "rosinality": folder / "r.pt",
             "pti": folder / "img" / "0.pt", "nvidia": folder / "projected_w.npz"}
    torch.save(wp, files["e4e"])
    np.save(files["restyle"], {"a.jpg": [wp[0].numpy()]})
    torch.save({"a.png": {"img": torch.zeros(1, 16, 16), "latent": wp[0], "noise": []}}, files["rosinality"])
    files["pti"].parent.mkdir()
    torch.save(wp[:1], files["pti"])
    np.savez(files["nvidia"], w=wp[:1].numpy())
    return files


def test_codes_of_another_model_are_refused_naming_both_shapes(tiny_sg2, tiny_dcgan, wp, tmp_path):
    big = make_tiny_stylegan2(resolution=32)  # num_ws 8
    for fmt, path in _foreign_files(wp, tmp_path).items():
        with pytest.raises(InputError) as exc:
            read_latents(path, big)
        msg = str(exc.value)
        assert str(path) in msg and "8, 16] (w+)" in msg and "16] (w)" in msg, (fmt, msg)
        assert ("[3, 6, 16]" if fmt == "e4e" else "6, 16]") in msg, (fmt, msg)
        with pytest.raises(InputError) as exc:
            read_latents(path, tiny_dcgan)
        assert "6, 16]" in str(exc.value) and ("no W space" in str(exc.value) or "(z)" in str(exc.value)), msg


def test_unknown_layouts_and_oversized_files_are_refused(tiny_sg2, tmp_path, monkeypatch):
    torch.save({"state": torch.zeros(3)}, tmp_path / "x.pt")
    with pytest.raises(InputError, match="no latent layout ganinv knows"):
        read_latents(tmp_path / "x.pt", tiny_sg2)
    listed = np.empty(2, dtype=object)
    listed[0], listed[1] = np.zeros((6, 16), np.float32), np.zeros(3)
    np.save(tmp_path / "l.npy", listed)
    with pytest.raises(InputError, match="image name: latent array"):
        read_latents(tmp_path / "l.npy", tiny_sg2)
    (tmp_path / "old.pt").write_bytes(pickle.dumps(torch.zeros(2).numpy()))
    with pytest.raises(InputError, match="zip format"):
        read_latents(tmp_path / "old.pt", tiny_sg2)
    import ganinv.latentfiles.safe as safe

    torch.save(torch.zeros(1, 6, 16), tmp_path / "ok.pt")
    monkeypatch.setattr(safe, "MAX_LATENT_FILE_BYTES", 1000)
    with pytest.raises(InputError, match="more than the"):
        read_latents(tmp_path / "ok.pt", tiny_sg2)


# ----------------------------------------------------------------------------------------------------------
# Malicious pickles run nothing
# ----------------------------------------------------------------------------------------------------------

def test_payloads_are_live_under_a_naive_load(tmp_path):
    """Positive control: the same files do run the payload under np.load(allow_pickle=True) / weights_only=False."""
    marker = tmp_path / "PWNED"
    np.save(tmp_path / "evil.npy", {"a.jpg": Payload(marker)})
    np.load(tmp_path / "evil.npy", allow_pickle=True)
    assert marker.exists()
    marker.unlink()
    torch.save({"a.png": {"latent": Payload(marker)}}, tmp_path / "evil.pt")
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("name", ["evil.npy", "evil.pt", "0.pt"])
def test_malicious_files_run_nothing_and_give_one_error(model_dir, tiny_sg2, tmp_path, name):
    marker = tmp_path / "PWNED"
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, {"a.jpg": [Payload(marker)]})
    else:
        torch.save({"a.png": {"latent": Payload(marker)}} if name == "evil.pt" else Payload(marker), path)
    with pytest.raises(InputError, match=r"io\.open"):
        read_latents(path, tiny_sg2)
    msg = one_error_line(run("edit", path, "--direction", "pca:0", "--model", model_dir, "--out", tmp_path / "o"))
    assert "refusing to read" in msg and "io.open" in msg and "never runs" in msg
    assert not marker.exists()


def test_the_numpy_unpickler_refuses_everything_but_arrays(tmp_path):
    from ganinv.latentfiles.safe import load_pickled_npy

    header = b"\x93NUMPY\x01\x00" + b"v\x00" + b"{'descr': '|O', 'fortran_order': False, 'shape': (), }".ljust(117) \
        + b"\n"
    for global_name in (b"os\nsystem", b"numpy\nload", b"builtins\neval", b"numpy.core.multiarray\n_reconstruct"):
        body = b"c" + global_name + b"\n(S'x'\ntR."  # GLOBAL then REDUCE
        (tmp_path / "g.npy").write_bytes(header + body)
        with pytest.raises(InputError) as exc:
            load_pickled_npy(tmp_path / "g.npy")
        if b"_reconstruct" not in global_name:
            assert global_name.decode().replace("\n", ".") in str(exc.value)
    # arrays whose state lies: a shape promising more data than the pickle holds, a non-numeric dtype
    for state in ((1, (400,), np.dtype("f4"), False, b"\0" * 16), (1, (2,), np.dtype("U3"), False, b"\0" * 24)):
        obj = np.empty((), dtype=object)
        obj[()] = {"a.jpg": _Lying(state)}
        np.save(tmp_path / "bad.npy", obj)
        with pytest.raises(InputError, match="declares shape|only numeric"):
            load_pickled_npy(tmp_path / "bad.npy")


class _Lying:
    """Pickles as NumPy's own array reconstruction, with the given ``__setstate__`` state."""

    def __init__(self, state: tuple) -> None:
        self.state = state

    def __reduce__(self):
        core = getattr(np, "_core", None) or np.core
        return (core.multiarray._reconstruct, (np.ndarray, (0,), b"b"), self.state)


# ----------------------------------------------------------------------------------------------------------
# Editing foreign files through the CLI
# ----------------------------------------------------------------------------------------------------------

def test_edit_an_e4e_latents_pt_and_a_restyle_npy(model_dir, wp, tmp_path):
    torch.save(wp[:2], tmp_path / "latents.pt")
    np.save(tmp_path / "latents.npy", {"face.jpg": [wp[1].numpy(), wp[2].numpy()]})
    out = tmp_path / "out"
    result = run("edit", tmp_path / "latents.pt", tmp_path / "latents.npy", "--direction", "pca:0",
                 "--strengths", "-1,0,1", "--model", model_dir, "--out", out)
    assert result.exit_code == 0, result.output
    expected = {"latents_0": wp[0], "latents_1": wp[1], "face": wp[2]}
    for stem, code in expected.items():
        assert (out / f"{stem}_edit.png").is_file() and (out / f"{stem}_edit.gif").is_file()
        with np.load(out / f"{stem}_edit.npz") as data:
            assert data["w"].shape == (3, 6, 16)
            np.testing.assert_allclose(data["w"][1], code.numpy(), rtol=0, atol=1e-6)  # strength 0


def test_interpolate_refuses_a_file_of_several_codes(model_dir, wp, tmp_path):
    torch.save(wp, tmp_path / "latents.pt")
    msg = one_error_line(run("interpolate", tmp_path / "latents.pt", tmp_path / "latents.pt", "--model", model_dir,
                             "--out", tmp_path / "o"))
    assert "holds 3 codes" in msg


# ----------------------------------------------------------------------------------------------------------
# Writers: every --latent-format round-trips
# ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", list(LATENT_FORMATS))
@pytest.mark.parametrize("space", ["w+", "w"])
def test_every_writer_round_trips_through_the_reader(tiny_sg2, wp, tmp_path, fmt, space):
    latent = wp[:2] if space == "w+" else wp[:2, 0]
    noise = [torch.randn(2, *s[1:]) for s in tiny_sg2.noise_shapes]
    images = torch.rand(2, 1, 16, 16)
    batch = LatentBatch.from_generator(tiny_sg2, ["a", "b"], ["imgs/a.png", "imgs/b.jpg"], latent, space, noise,
                                       images)
    files = write_latents(fmt, tmp_path, batch)
    codes = [c for f in files for c in read_latents(f, tiny_sg2)]
    assert len(codes) == 2
    names = ["latents_0", "latents_1"] if fmt == "e4e" else ["a", "b"]
    assert [c.name for c in codes] == names
    want = wp[:2] if space == "w+" else wp[:2, :1].repeat(1, 6, 1)
    for i, c in enumerate(codes):
        got = c.code.latent if c.code.space == "w+" else c.code.latent.unsqueeze(1).repeat(1, 6, 1)
        torch.testing.assert_close(got, want[i:i + 1])
    if fmt in ("ganinv", "nvidia", "rosinality"):  # these carry the noise maps
        for i, c in enumerate(codes):
            assert c.code.noise is not None
            assert all(torch.equal(n, m[i:i + 1]) for n, m in zip(c.code.noise, noise))
    if fmt == "rosinality":  # the projector's keys and its img in the generator's native range
        saved = torch.load(files[0], weights_only=True)
        assert list(saved) == ["imgs/a.png", "imgs/b.jpg"] and set(saved["imgs/a.png"]) == {"img", "latent", "noise"}
        torch.testing.assert_close(saved["imgs/b.jpg"]["img"], images[1] * 2 - 1)
        assert saved["imgs/a.png"]["latent"].shape == ((6, 16) if space == "w+" else (16,))
    if fmt == "restyle":  # what HyperStyle's readers do with it
        loaded = np.load(files[0], allow_pickle=True).item()
        assert list(loaded) == ["a.png", "b.jpg"] and loaded["a.png"].shape == (6, 16)
    if fmt == "e4e":
        assert torch.load(files[0], weights_only=True).shape == (2, 6, 16)
    if fmt == "pti":
        assert [f.relative_to(tmp_path).as_posix() for f in files] == ["a/0.pt", "b/0.pt"]


def test_z_codes_are_refused_by_the_w_formats(tiny_dcgan, tmp_path):
    batch = LatentBatch.from_generator(tiny_dcgan, ["a"], ["a.png"], torch.zeros(1, 8), "z")
    for fmt in ("e4e", "restyle", "pti", "rosinality"):
        with pytest.raises(InputError, match="W/W\\+"):
            write_latents(fmt, tmp_path, batch)


def test_invert_latent_format_writes_files_the_reader_takes_back(model_dir, tiny_sg2, digits, tmp_path,
                                                                 offline_torch_home):
    """invert hands its batch to the same writers the round-trip test covers: one (fast) run, e4e."""
    import json

    out = tmp_path / "out"
    result = run("invert", digits, "--model", model_dir, "--steps", 2, "--restarts", 1, "--noise", "fixed",
                 "--loss", "mse", "--polish-steps", 0, "--out", out, "--latent-format", "e4e", "--no-classifier",
                 "--device", "cpu")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["latent_format"] == "e4e" and summary["latent_files"] == ["latents.pt"]
    codes = read_latents(out / "latents.pt", tiny_sg2)
    assert len(codes) == 2
    for i, c in enumerate(codes):
        with np.load(out / f"digit_{i}.npz") as data:
            np.testing.assert_allclose(c.code.latent.numpy(), data["w"], rtol=0, atol=1e-6)
    msg = one_error_line(run("invert", digits, "--model", model_dir, "--out", tmp_path / "x", "--latent-format",
                             "stylegan"))
    assert "unknown --latent-format 'stylegan'" in msg


# ----------------------------------------------------------------------------------------------------------
# e4e / SFE direction files
# ----------------------------------------------------------------------------------------------------------

def _edited(out: Path, stem: str) -> np.ndarray:
    with np.load(out / f"{stem}_edit.npz") as data:
        return data["w"]


@pytest.mark.parametrize("layers", [None, "0-2"])
def test_interfacegan_direction_pt_with_and_without_layers(model_dir, tiny_sg2, wp, tmp_path, layers):
    from ganinv.editing.directions import direction_sigma

    v = torch.randn(1, 16)
    v = v / v.norm()
    torch.save(v, tmp_path / "age.pt")  # e4e editings/interfacegan_directions/age.pt: [1, 512], unit norm
    np.savez(tmp_path / "code.npz", w=wp[:1].numpy())
    out = tmp_path / "out"
    extra = ("--layers", layers) if layers else ()
    result = run("edit", tmp_path / "code.npz", "--direction", tmp_path / "age.pt", "--strengths", "-2,0,2",
                 "--units", "raw", *extra, "--model", model_dir, "--out", out)
    assert result.exit_code == 0, result.output
    w = _edited(out, "code")
    delta = w[2] - w[1]  # strength 2 minus strength 0
    rows = range(6) if layers is None else range(3)
    for r in range(6):
        want = 2 * v[0].numpy() if r in rows else np.zeros(16, np.float32)
        np.testing.assert_allclose(delta[r], want, atol=1e-5)
    assert direction_sigma(tiny_sg2, v[0]) > 0
    # pose.pt's layout: [1, num_ws, D] with the same row everywhere is the same direction
    torch.save(v.unsqueeze(1).repeat(1, 6, 1), tmp_path / "pose.pt")
    result = run("edit", tmp_path / "code.npz", "--direction", tmp_path / "pose.pt", "--strengths", "-2,0,2",
                 "--units", "raw", *extra, "--model", model_dir, "--out", tmp_path / "out2")
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(_edited(tmp_path / "out2", "code"), w, atol=1e-6)


@pytest.mark.parametrize("layers", [None, "1-3"])
def test_ganspace_pca_pt_with_and_without_layers(model_dir, wp, tmp_path, layers):
    comp = torch.nn.functional.normalize(torch.randn(5, 1, 16), dim=-1)
    std = torch.tensor([3.0, 2.0, 1.5, 1.0, 0.5])
    # e4e editings/ganspace_pca/ffhq_pca.pt: {"mean": [1, 512], "comp": [80, 1, 512], "std": [80]}
    torch.save({"mean": torch.zeros(1, 16), "comp": comp, "std": std}, tmp_path / "ffhq_pca.pt")
    torch.save(wp[:1], tmp_path / "latents.pt")
    out = tmp_path / "out"
    extra = ("--layers", layers) if layers else ()
    result = run("edit", tmp_path / "latents.pt", "--direction", f"{tmp_path / 'ffhq_pca.pt'}:1",
                 "--strengths", "0,1", *extra, "--model", model_dir, "--out", out)
    assert result.exit_code == 0, result.output
    assert "ffhq_pca:1" in result.output
    w = _edited(out, "latents")
    delta = w[1] - w[0]  # one σ of component 1 = std[1] · comp[1]
    rows = range(6) if layers is None else range(1, 4)
    for r in range(6):
        want = (std[1] * comp[1, 0]).numpy() if r in rows else np.zeros(16, np.float32)
        np.testing.assert_allclose(delta[r], want, atol=1e-5)
    # --component picks one too; a single direction refuses a component
    result = run("edit", tmp_path / "latents.pt", "--direction", tmp_path / "ffhq_pca.pt", "--component", 4,
                 "--strengths", "0,1", "--model", model_dir, "--out", tmp_path / "o4")
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose((lambda x: x[1] - x[0])(_edited(tmp_path / "o4", "latents"))[0],
                               (std[4] * comp[4, 0]).numpy(), atol=1e-5)


def test_bad_direction_pt_files_give_one_error(model_dir, wp, tmp_path):
    np.savez(tmp_path / "code.npz", w=wp[:1].numpy())
    rows = torch.randn(1, 6, 16)
    torch.save(rows, tmp_path / "rows.pt")
    torch.save(torch.randn(1, 512), tmp_path / "big.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "d.pt")
    marker = tmp_path / "PWNED"
    torch.save(Payload(marker), tmp_path / "evil.pt")
    for name, words in (("rows.pt", "6 different rows"), ("big.pt", "dimension 512"), ("d.pt", "'comp', 'mean'"),
                        ("evil.pt", "io.open")):
        msg = one_error_line(run("edit", tmp_path / "code.npz", "--direction", tmp_path / name, "--model",
                                 model_dir, "--out", tmp_path / "o"))
        assert words in msg, msg
    assert not marker.exists()
    assert os.environ.get("PWNED") is None


def test_edit_latent_format_writes_the_edited_codes(model_dir, wp, tmp_path):
    torch.save(wp[:2], tmp_path / "latents.pt")
    out = tmp_path / "out"
    result = run("edit", tmp_path / "latents.pt", "--direction", "pca:0", "--strengths", "-1,0,1", "--model",
                 model_dir, "--out", out, "--latent-format", "restyle")
    assert result.exit_code == 0, result.output
    codes = read_latents(out / "latents.npy", tiny := make_tiny_stylegan2())
    assert [c.name for c in codes] == [f"latents_{i}_edit_{k}" for i in range(2) for k in range(3)]
    torch.testing.assert_close(codes[4].code.latent, wp[1:2])  # input 1 at strength 0
    assert tiny.num_ws == 6


def test_the_cli_and_the_package_agree_on_latent_suffixes():
    from ganinv.cli.latents import LATENT_SUFFIXES as cli_suffixes
    from ganinv.latentfiles import LATENT_SUFFIXES

    assert cli_suffixes == LATENT_SUFFIXES
