"""``ganinv convert``: NVIDIA .pkl / rosinality .pt / ganinv folder / bundled model / PTI result → rosinality .pt
or ganinv folder, verified renders and discriminator logits, and refusals that leave nothing behind.

Every model is a tiny StyleGAN2 (or DCGAN) with random weights; NVIDIA-layout pickles are written by
``tests/nvidia_pkl.py`` without NVIDIA's code.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ganinv.cli.app import app
from ganinv.convert import TARGETS, TOLERANCE, choose_target, convert_checkpoint
from ganinv.convert.discriminator import rosinality_d_state, rosinality_discriminator
from ganinv.convert.verify import seeded_latents
from ganinv.encoders import generator_fingerprint
from ganinv.errors import CheckpointError, GaninvError, InputError
from ganinv.generators.checkpoints import load_generator, save_rosinality
from ganinv.generators.dcgan import DCGANGenerator
from ganinv.generators.stylegan2 import StyleGAN2Generator
from ganinv.generators.stylegan2_discriminator import StyleGAN2Discriminator
from ganinv.inverters.pti import apply_deltas, save_deltas, tunable_parameters
from ganinv.modelfile import read_config, save_pretrained

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nvidia_pkl import write_nvidia_pkl  # noqa: E402

runner = CliRunner()


# ----------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------
def tiny_g(img_channels: int = 3, lr_mlp: float = 0.01, seed: int = 0) -> StyleGAN2Generator:
    """16 px StyleGAN2, random weights, non-zero noise strengths and biases, random w_avg."""
    torch.manual_seed(seed)
    G = StyleGAN2Generator(resolution=16, channels={4: 16, 8: 16, 16: 8}, z_dim=16, w_dim=16, n_mlp=2,
                           img_channels=img_channels, lr_mlp=lr_mlp)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith(("noise.weight", "activate.bias", "to_rgb1.bias")):
                p.normal_(0, 0.3)
        G.w_avg.normal_()
    return G.eval().requires_grad_(False)


def tiny_d(img_channels: int = 3, mbstd_group: int = 4, seed: int = 1) -> StyleGAN2Discriminator:
    """16 px StyleGAN2 residual discriminator with random weights and biases."""
    torch.manual_seed(seed)
    D = StyleGAN2Discriminator(16, {"16": 8, "8": 16, "4": 16}, img_channels, mbstd_group=mbstd_group)
    with torch.no_grad():
        for name, p in D.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.3)
    return D.eval().requires_grad_(False)


def renders(G: torch.nn.Module) -> torch.Tensor:
    """The 4 seeded renders the verification uses (z, seed 0, stored noise), [4, C, H, W] in [0, 1]."""
    with torch.no_grad():
        z, space = seeded_latents(G)
        return G.synthesize(z, space)


def images(G: StyleGAN2Generator) -> torch.Tensor:
    """Discriminator inputs: the seeded renders in [-1, 1] and 4 uniform random images."""
    gen = torch.Generator().manual_seed(7)
    return torch.cat([renders(G) * 2 - 1, torch.rand(4, *G.image_shape, generator=gen) * 2 - 1])


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def written_d(out: Path) -> torch.nn.Module | None:
    return choose_target(out).load_discriminator(out)


def leftovers(folder: Path) -> list[str]:
    """Temporary files/folders of an interrupted or refused conversion."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".old")))


def cli(*args: str | Path):
    return runner.invoke(app, ["convert", *map(str, args)])


def assert_refused(result, *needles: str) -> str:
    """Exit 1 with a single ``error:`` message and no traceback; returns the message (un-wrapped)."""
    assert result.exit_code == 1, result.output
    assert result.output.count("error:") == 1 and "Traceback" not in result.output, result.output
    text = " ".join(result.output.split())
    for needle in needles:
        assert needle in text, text
    return text


# ----------------------------------------------------------------------------------
# NVIDIA .pkl
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["out.pt", "out"])
@pytest.mark.parametrize("channels", [3, 1], ids=["rgb", "gray"])
def test_nvidia_pkl_with_d_converts_and_renders_identically(tmp_path: Path, fmt: str, channels: int) -> None:
    G, D = tiny_g(channels), tiny_d(channels)
    pkl = write_nvidia_pkl(G, tmp_path / "net.pkl", D=D, d_kwargs={"conv_clamp": 256})
    out = tmp_path / fmt
    report = convert_checkpoint(str(pkl), out)
    assert report.discriminator and report.d_note is None
    assert report.max_diff <= TOLERANCE and report.d_max_diff is not None and report.d_max_diff <= TOLERANCE
    assert any("discriminator's conv_clamp=256" in n for n in report.notices)
    G2, notices = load_generator(out)
    assert max_diff(renders(G), renders(G2)) <= 1e-5
    assert torch.equal(G.w_avg, G2.w_avg)
    D2 = written_d(out)
    assert isinstance(D2, StyleGAN2Discriminator) and D2.mbstd_group == 4
    with torch.no_grad():
        x = images(G)
        assert max_diff(D(x), D2(x)) <= 1e-5
    label = "rosinality .pt" if fmt.endswith(".pt") else "ganinv folder"
    assert report.summary().startswith(f"wrote {out} ({label}, 16 px StyleGAN2, D included); 4 seeded renders match "
                                       f"the source: max |diff| ")
    if out.is_dir():
        cfg = read_config(out)
        assert cfg["discriminator"]["arch"] == "stylegan2-d"
        assert cfg["meta"]["converted_from"]["format"] == "NVIDIA .pkl"
    else:
        obj = torch.load(out, weights_only=True)
        assert set(obj) == {"g_ema", "latent_avg", "d"} and "convs.0.0.weight" in obj["d"]
    assert leftovers(tmp_path) == []
    mode = stat.S_IMODE(os.stat(out).st_mode)
    assert mode & 0o044, oct(mode)  # an ordinary file/folder, not the 0600/0700 of a temporary


@pytest.mark.parametrize("variant", ["no-d", "stub-d", "conditional-d", "skip-d"])
def test_nvidia_pkl_without_a_convertible_d_writes_the_generator_and_says_why(tmp_path: Path, variant: str) -> None:
    G = tiny_g()
    kwargs: dict = {"include_d": False} if variant == "no-d" else {}
    if variant in ("conditional-d", "skip-d"):
        kwargs = {"D": tiny_d(), "d_kwargs": {"c_dim": 10} if variant == "conditional-d" else {"architecture": "skip"}}
    pkl = write_nvidia_pkl(G, tmp_path / "net.pkl", **kwargs)
    out = tmp_path / "g.pt"
    report = convert_checkpoint(str(pkl), out)
    assert not report.discriminator and report.max_diff <= TOLERANCE
    why = {"no-d": "holds no discriminator D", "stub-d": "does not convert", "conditional-d": "class-conditional",
           "skip-d": "'skip' architecture"}[variant]
    assert report.d_note and why in report.d_note, report.d_note
    assert any(n.startswith("no discriminator written:") for n in report.notices)
    assert "d" not in torch.load(out, weights_only=True) and "no D" in report.summary()
    assert max_diff(renders(G), renders(load_generator(out)[0])) <= 1e-5


def test_planted_module_src_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    src = f"open({str(marker)!r}, 'w').write('pwned')\nimport os\nos.system('touch {marker}')\n"
    G = tiny_g()
    pkl = write_nvidia_pkl(G, tmp_path / "evil.pkl", module_src=src, D=tiny_d())
    assert b"PWNED" in pkl.read_bytes()
    for out in (tmp_path / "a.pt", tmp_path / "b"):
        result = cli(pkl, out)
        assert result.exit_code == 0, result.output
        assert max_diff(renders(G), renders(load_generator(out)[0])) <= 1e-5
    assert not marker.exists()


def test_stylegan3_and_corrupt_inputs_are_refused_with_the_loaders_message(tmp_path: Path) -> None:
    sg3 = write_nvidia_pkl(tiny_g(), tmp_path / "sg3.pkl", stylegan3=True)  # StyleGAN2 weights, StyleGAN3 name
    assert_refused(cli(sg3, tmp_path / "a.pt"), "StyleGAN3 generator")
    good = write_nvidia_pkl(tiny_g(), tmp_path / "good.pkl")
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert_refused(cli(cut, tmp_path / "b.pt"), "truncated or corrupt")
    (tmp_path / "empty.pt").write_bytes(b"")
    assert_refused(cli(tmp_path / "empty.pt", tmp_path / "c"), "empty (0 bytes)")
    assert_refused(cli(tmp_path / "nope.pkl", tmp_path / "d"), "no bundled model or file named")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.pkl", "empty.pt", "good.pkl", "sg3.pkl"]
    with pytest.raises(CheckpointError) as exc:
        convert_checkpoint(str(cut), tmp_path / "e.pt")
    assert "\n" not in str(exc.value)


# ----------------------------------------------------------------------------------
# rosinality .pt, ganinv folders, bundled models
# ----------------------------------------------------------------------------------
def test_rosinality_training_checkpoint_to_folder_keeps_g_ema_and_d(tmp_path: Path) -> None:
    G, D = tiny_g(), tiny_d()
    pt = tmp_path / "train.pt"
    torch.save({"g": G.state_dict(), "d": rosinality_d_state(D), "g_ema": G.state_dict(), "latent_avg": G.w_avg,
                "g_optim": {}, "d_optim": {}}, pt)
    out = tmp_path / "model.ganinv"
    report = convert_checkpoint(str(pt), out)
    assert report.discriminator and report.source_format == "rosinality .pt"
    assert not any("discriminator and optimiser states are ignored" in n for n in report.notices)
    assert read_config(out)["name"] == "model"
    G2, _ = load_generator(out)
    assert max_diff(renders(G), renders(G2)) <= 1e-5
    with torch.no_grad():
        assert max_diff(D(images(G)), written_d(out)(images(G))) <= 1e-5


def test_rosinality_d_layout_round_trips() -> None:
    D = tiny_d(mbstd_group=4)
    D2 = rosinality_discriminator(rosinality_d_state(D), "mem")
    assert D2.config() == D.config()
    assert all(torch.equal(a, b) for a, b in zip(D.state_dict().values(), D2.state_dict().values(), strict=True))


def test_folder_to_pt_folds_the_mapping_lr_and_back(tmp_path: Path) -> None:
    G = tiny_g(lr_mlp=0.5)  # rosinality's format fixes 0.01: the multiplier is folded into the mapping weights
    save_pretrained(G, tmp_path / "src", name="src", kind="generator")
    report = convert_checkpoint(str(tmp_path / "src"), tmp_path / "g.pt")
    assert any("folded into its weights" in n for n in report.notices) and report.max_diff <= TOLERANCE
    G2, _ = load_generator(tmp_path / "g.pt")
    assert G2.lr_mlp == 0.01 and max_diff(renders(G), renders(G2)) <= 1e-5
    convert_checkpoint(str(tmp_path / "g.pt"), tmp_path / "back")
    assert max_diff(renders(G), renders(load_generator(tmp_path / "back")[0])) <= 1e-5


def test_bundled_models_convert(tmp_path: Path) -> None:
    report = convert_checkpoint("mnist-stylegan2", tmp_path / "sg2.pt")
    assert report.max_diff <= TOLERANCE and not report.discriminator
    assert "dcgan-d" in (report.d_note or "")  # the bundled residual-free D has no rosinality layout
    assert any("tanh output activation" in n for n in report.notices)
    G, _ = load_generator("mnist-stylegan2")
    assert max_diff(renders(G), renders(load_generator(tmp_path / "sg2.pt")[0])) <= 1e-5
    report = convert_checkpoint("mnist-dcgan", tmp_path / "dcgan")
    assert report.discriminator and report.d_max_diff is not None and report.d_max_diff <= TOLERANCE
    assert read_config(tmp_path / "dcgan")["discriminator"]["arch"] == "dcgan-d"
    assert leftovers(tmp_path) == []


# ----------------------------------------------------------------------------------
# PTI results
# ----------------------------------------------------------------------------------
def pti_delta(G: torch.nn.Module, seed: int = 3) -> dict[str, torch.Tensor]:
    """A PTI-style delta: low-rank for matrices, full for vectors, over the parameters PTI tunes."""
    gen = torch.Generator().manual_seed(seed)
    delta = {}
    for name, p in tunable_parameters(G).items():
        rows = [d for d in p.shape if d != 1]
        if len(rows) >= 2 and min(rows[0], p.numel() // rows[0]) > 1:
            r, c = rows[0], p.numel() // rows[0]
            delta[name + ".lora_u"] = 0.1 * torch.randn(r, 2, generator=gen)
            delta[name + ".lora_v"] = 0.1 * torch.randn(2, c, generator=gen)
        else:
            delta[name + ".delta"] = 0.1 * torch.randn(p.shape, generator=gen)
    return delta


@pytest.mark.parametrize("base_kind", ["pkl", "dcgan-folder"])
def test_pti_deltas_become_a_standalone_checkpoint(tmp_path: Path, base_kind: str) -> None:
    if base_kind == "pkl":
        base = str(write_nvidia_pkl(tiny_g(), tmp_path / "base.pkl", D=tiny_d()))
        out = tmp_path / "tuned.pt"
    else:
        torch.manual_seed(0)
        save_pretrained(DCGANGenerator(resolution=16, z_dim=8, width=8, img_channels=1).eval(), tmp_path / "base",
                        name="base", kind="generator")
        base, out = str(tmp_path / "base"), tmp_path / "tuned"
    G, _ = load_generator(base)
    delta = pti_delta(G)
    save_deltas(delta, tmp_path / "img0.deltas.safetensors", generator_fingerprint(G))
    (tmp_path / "img0.npz").write_bytes(b"")  # `ganinv invert --method pti` writes the code beside the deltas
    result = cli(base, out, "--deltas", tmp_path / "img0.npz")
    assert result.exit_code == 0, result.output
    assert "no D" in result.output and "PTI tunes the generator only" in " ".join(result.output.split())
    tuned = apply_deltas(G, delta)
    G2, _ = load_generator(out)
    assert max_diff(renders(tuned), renders(G2)) <= 1e-5
    assert max_diff(renders(G), renders(G2)) > 1e-3  # the deltas really changed the model
    if out.is_dir():
        assert read_config(out)["meta"]["converted_from"]["deltas"].endswith("img0.deltas.safetensors")
    # deltas made for another generator are refused, and nothing is written
    other = tmp_path / "other.deltas.safetensors"
    save_deltas(delta, other, "0123456789abcdef")
    assert_refused(cli(base, tmp_path / "x.pt", "--deltas", other), "was tuned from generator")
    assert not (tmp_path / "x.pt").exists() and leftovers(tmp_path) == []


# ----------------------------------------------------------------------------------
# refusals and the safety of OUT
# ----------------------------------------------------------------------------------
def test_unsupported_pairs_and_suffixes_are_refused(tmp_path: Path) -> None:
    torch.manual_seed(0)
    save_pretrained(DCGANGenerator(resolution=16, z_dim=8, width=8, img_channels=1).eval(), tmp_path / "dc",
                    name="dc", kind="generator")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert_refused(cli(tmp_path / "dc", tmp_path / "dc.pt"), "holds StyleGAN2 generators only", "dcgan generator")
    assert_refused(cli(tmp_path / "dc", tmp_path / "dc2", "--to", "rosinality"), "StyleGAN2 generators only")
    assert_refused(cli(tmp_path / "dc", tmp_path / "x.pkl"), "does not write NVIDIA .pkl")
    assert_refused(cli(tmp_path / "dc", tmp_path / "x.safetensors"), "a ganinv model is a folder")
    assert_refused(cli(tmp_path / "dc", tmp_path / "x.png"), "cannot tell the output format", "--to")
    assert_refused(cli(tmp_path / "dc", tmp_path / "y", "--to", "onnx"), "not a format ganinv writes")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_existing_out_needs_force_and_force_replaces_only_model_files(tmp_path: Path) -> None:
    G1, G2 = tiny_g(seed=0), tiny_g(seed=5)
    save_pretrained(G1, tmp_path / "g1", name="g1", kind="generator")
    save_pretrained(G2, tmp_path / "g2", name="g2", kind="generator")
    assert cli(tmp_path / "g1", tmp_path / "o.pt").exit_code == 0
    assert cli(tmp_path / "g1", tmp_path / "o").exit_code == 0
    for out in (tmp_path / "o.pt", tmp_path / "o"):
        assert_refused(cli(tmp_path / "g2", out), "already exists", "--force")
        assert max_diff(renders(G1), renders(load_generator(out)[0])) <= 1e-5  # untouched
        assert cli(tmp_path / "g2", out, "--force").exit_code == 0
        assert max_diff(renders(G2), renders(load_generator(out)[0])) <= 1e-5  # replaced
    # --force never deletes a folder that is not a ganinv model folder of its own files
    other = tmp_path / "photos"
    other.mkdir()
    (other / "keep.jpg").write_bytes(b"x")
    assert_refused(cli(tmp_path / "g1", other, "--force"), "not a ganinv model folder", "keep.jpg")
    (tmp_path / "o" / "notes.txt").write_text("mine")
    assert_refused(cli(tmp_path / "g1", tmp_path / "o", "--force"), "notes.txt")
    assert_refused(cli(tmp_path / "g1", tmp_path / "o", "--force", "--to", "rosinality"), "is a folder")
    assert (other / "keep.jpg").exists() and (tmp_path / "o" / "notes.txt").exists()
    assert leftovers(tmp_path) == []


def test_out_equal_to_or_overlapping_in_is_refused(tmp_path: Path) -> None:
    G = tiny_g()
    pt = tmp_path / "g.pt"
    save_rosinality(G, pt)
    save_pretrained(G, tmp_path / "f", name="f", kind="generator")
    assert_refused(cli(pt, pt, "--force"), "is the input itself")
    assert_refused(cli(tmp_path / "f", tmp_path / "f", "--force"), "is the input itself")
    assert_refused(cli(tmp_path / "f" / "model.safetensors", tmp_path / "f", "--force"), "lies inside OUT")
    assert_refused(cli(tmp_path / "f", tmp_path / "f" / "g.pt"), "lies inside the input folder")
    deltas = tmp_path / "d.deltas.safetensors"
    save_deltas(pti_delta(G), deltas, generator_fingerprint(G))
    assert_refused(cli(pt, deltas, "--to", "rosinality", "--deltas", deltas, "--force"), "is the input itself")
    assert max_diff(renders(G), renders(load_generator(pt)[0])) <= 1e-5


def test_failed_verification_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkl = write_nvidia_pkl(tiny_g(), tmp_path / "net.pkl", D=tiny_d())
    target = TARGETS["rosinality"]
    original = type(target).write

    def corrupt_write(self, source, path, *, name, notices):  # a writer bug: one noise strength changes
        with torch.no_grad():
            source.G.conv1.noise.weight.add_(1e-3)
        try:
            original(self, source, path, name=name, notices=notices)
        finally:
            with torch.no_grad():
                source.G.conv1.noise.weight.sub_(1e-3)

    monkeypatch.setattr(type(target), "write", corrupt_write)
    (tmp_path / "keep.pt").write_bytes(b"previous")
    for out, extra in ((tmp_path / "new" / "deeper" / "g.pt", ()), (tmp_path / "keep.pt", ("--force",))):
        text = assert_refused(cli(pkl, out, *extra), "verification failed", "renders 4 seeded latents differently",
                              "nothing was written")
        assert "> 1e-05" in text
    assert not (tmp_path / "new").exists()  # the parent folders made for OUT are gone too
    assert (tmp_path / "keep.pt").read_bytes() == b"previous" and leftovers(tmp_path) == []


def test_failed_discriminator_verification_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkl = write_nvidia_pkl(tiny_g(), tmp_path / "net.pkl", D=tiny_d())
    import ganinv.convert.rosinality as ros

    real = ros.rosinality_d_state

    def shifted(D):
        state = real(D)
        state["final_linear.1.bias"] = state["final_linear.1.bias"] + 1.0
        return state

    monkeypatch.setattr(ros, "rosinality_d_state", shifted)
    assert_refused(cli(pkl, tmp_path / "g.pt"), "discriminator's logits differ")
    assert not (tmp_path / "g.pt").exists() and leftovers(tmp_path) == []


# ----------------------------------------------------------------------------------
# the command line
# ----------------------------------------------------------------------------------
def test_cli_help_and_happy_path(tmp_path: Path) -> None:
    assert "convert" in runner.invoke(app, ["--help"]).output
    help_text = " ".join(runner.invoke(app, ["convert", "--help"]).output.split())
    for flag in ("--to", "--deltas", "--force", "--device", "--no-discriminator"):
        assert flag in help_text
    pkl = write_nvidia_pkl(tiny_g(), tmp_path / "net.pkl", D=tiny_d())
    result = cli(pkl, tmp_path / "g.pt")
    text = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 'g.pt'} (rosinality .pt, 16 px StyleGAN2, D included); 4 seeded renders match the " \
           "source: max |diff| 0.0e+00; D logits max |diff| 0.0e+00" in text
    result = cli(pkl, tmp_path / "g", "--no-discriminator", "--device", "cpu")
    assert result.exit_code == 0 and "no D" in result.output
    assert "discriminator" not in read_config(tmp_path / "g")
    assert_refused(cli(pkl, tmp_path / "h", "--device", "tpu"), "unknown device")


def test_cli_module_imports_without_torch() -> None:
    import subprocess

    code = "import sys, ganinv.cli.convert; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_errors_are_ganinv_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        choose_target(tmp_path / "x.pkl")
    with pytest.raises(GaninvError):
        convert_checkpoint(str(tmp_path / "missing.pt"), tmp_path / "y.pt")


def test_a_stylegan3_pickle_converts_to_a_folder_not_to_rosinality(tmp_path: Path) -> None:
    from nvidia_pkl import write_nvidia_stylegan3_pkl
    from test_stylegan3 import TINY_T, _make

    src = write_nvidia_stylegan3_pkl(_make(TINY_T), tmp_path / "sg3.pkl")
    r = cli(src, tmp_path / "sg3")
    assert r.exit_code == 0, r.output
    assert "match the source" in r.output and (tmp_path / "sg3" / "config.json").is_file()
    r = cli(src, tmp_path / "sg3.pt")
    assert r.exit_code == 1 and "StyleGAN2" in r.output and not (tmp_path / "sg3.pt").exists()
