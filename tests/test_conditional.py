"""Class-conditional StyleGAN2 / StyleGAN3 (c_dim > 0): class input checks, NVIDIA pickles in and out, binding a
class, inverting with a known class, inferring an unknown one, and the command line's --class.

Tiny random-weight models; NVIDIA-format pickles are written by tests/nvidia_pkl.py from our generators. (The
mapping was compared once against NVIDIA's own MappingNetwork/Generator code — see the README's class-conditional
section: w identical, images within 5e-6.)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from ganinv import metrics as M
from ganinv.cli.app import app
from ganinv.errors import InputError
from ganinv.generators.checkpoints import inspect_checkpoint, load_generator
from ganinv.generators.conditional import (ClassBoundGenerator, ClassLatentGenerator, check_class_option,
                                           class_mean_w, class_probabilities, num_classes, with_class)
from ganinv.generators.stylegan2 import StyleGAN2Generator
from ganinv.generators.stylegan3 import StyleGAN3Generator
from ganinv.inverters.conditional import ClassSearchSettings, infer_class, invert_with_class
from ganinv.io import save_image
from ganinv.modelfile import save_pretrained
from nvidia_pkl import write_nvidia_pkl, write_nvidia_stylegan3_pkl

C = 4  # classes of the tiny models
runner = CliRunner()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_sg2(seed: int = 0, z_scale: float = 1.0, img_channels: int = 1, embed_features: int | None = None,
             embed_bias: bool = True) -> StyleGAN2Generator:
    """A 16 px conditional StyleGAN2 with random weights everywhere. ``z_scale`` < 1 shrinks the first mapping
    layer's z columns, so that the class decides most of w (z adds a small variation): a model whose classes look
    different, which class inference can genuinely tell apart."""
    torch.manual_seed(seed)
    G = StyleGAN2Generator(resolution=16, channels={4: 16, 8: 16, 16: 8}, z_dim=16, w_dim=16, n_mlp=2,
                           img_channels=img_channels, c_dim=C, embed_features=embed_features)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith(("noise.weight", "activate.bias", "to_rgb1.bias")) or (embed_bias and name == "embed.bias"):
                p.normal_(0, 0.1)
            if "to_rgb" in name and name.endswith("conv.weight"):
                p.mul_(0.3)  # images in range rather than clamped white (random StyleGAN2s render very bright)
        G.style[1].weight[:, :16] *= z_scale
    G.estimate_w_avg(1000)
    return G.eval().requires_grad_(False)


def make_sg3(seed: int = 0) -> StyleGAN3Generator:
    torch.manual_seed(seed)
    G = StyleGAN3Generator(resolution=16, z_dim=16, w_dim=16, channel_base=256, channel_max=16, c_dim=C)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("bias"):
                p.add_(torch.randn(p.shape, generator=gen) * 0.3)
        G.input.affine.weight.copy_(torch.randn(G.input.affine.weight.shape, generator=gen) * 0.5)
        G.w_avg.copy_(torch.randn(G.w_dim, generator=gen) * 0.5)
    return G.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def g2() -> StyleGAN2Generator:
    return make_sg2()


def onehot(labels: list[int] | torch.Tensor) -> torch.Tensor:
    return F.one_hot(torch.as_tensor(labels), C).float()


def renders(G, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return G.synthesize(G.convert(z, "z", "w+", c=c), "w+")


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    return msg


# ----------------------------------------------------------------------------------
# class inputs
# ----------------------------------------------------------------------------------
def test_class_inputs_are_checked_with_one_sentence(g2: StyleGAN2Generator) -> None:
    z = torch.randn(2, 16)
    with pytest.raises(InputError, match=r"class-conditional \(4 classes, 0…3\)") as exc:
        g2.mapping(z)  # missing class
    one_line(exc)
    with pytest.raises(InputError, match=r"\[2 or 1, 4\]") as exc:
        g2.mapping(z, torch.ones(2, 3) / 3)
    one_line(exc)
    unconditional = StyleGAN2Generator(resolution=8, channels={4: 8, 8: 8}, z_dim=8, w_dim=8, n_mlp=1)
    with pytest.raises(InputError, match="unconditional") as exc:
        unconditional.mapping(torch.randn(1, 8), onehot([0])[:, :1])
    one_line(exc)
    with pytest.raises(InputError, match="unconditional") as exc:
        with_class(unconditional, 0)
    one_line(exc)
    with pytest.raises(InputError, match=r"class 4 is out of range: this generator has 4 classes, 0…3") as exc:
        class_probabilities(C, 4)
    one_line(exc)
    with pytest.raises(InputError, match="out of range") as exc:
        class_probabilities(C, [-1])
    one_line(exc)
    for bad in ([0.5, 0.6, 0.0, 0.0], [1.5, -0.5, 0.0, 0.0], [float("nan"), 1.0, 0.0, 0.0]):
        with pytest.raises(InputError, match="probabilities must be finite, non-negative and sum to 1") as exc:
            class_probabilities(C, bad)
        one_line(exc)
    with pytest.raises(InputError, match="must have 4 entries") as exc:
        class_probabilities(C, [0.5, 0.5])
    one_line(exc)
    with pytest.raises(InputError, match="choose one with --class K") as exc:
        check_class_option(g2, None)
    assert "4 classes" in one_line(exc)
    with pytest.raises(InputError, match=r"--class 1 was given, but this generator is unconditional") as exc:
        check_class_option(unconditional, 1)
    one_line(exc)
    assert check_class_option(unconditional, None) is None and check_class_option(g2, 3) == 3
    assert torch.equal(class_probabilities(C, 2), onehot([2]))
    assert torch.allclose(class_probabilities(C, [0.25] * 4), torch.full((1, C), 0.25))
    assert num_classes(g2) == C and num_classes(unconditional) == 0 and num_classes(with_class(g2, 1)) == C


# ----------------------------------------------------------------------------------
# NVIDIA pickles, conversion, inspection
# ----------------------------------------------------------------------------------
def test_conditional_stylegan2_pickle_round_trip(tmp_path: Path) -> None:
    G = make_sg2(embed_features=8)  # an embedding narrower than w (stylegan2-ada's embed_features)
    G2, _ = load_generator(write_nvidia_pkl(G, tmp_path / "cond.pkl"))
    assert isinstance(G2, StyleGAN2Generator) and G2.c_dim == C and G2.embed_features == 8
    z, c = torch.randn(6, 16), torch.softmax(torch.randn(6, C), 1)
    assert (renders(G, z, c) - renders(G2, z, c)).abs().max() <= 1e-5
    c = onehot([0, 1, 2, 3, 0, 1])
    assert (renders(G, z, c) - renders(G2, z, c)).abs().max() <= 1e-5
    assert torch.equal(G.w_avg, G2.w_avg)


def test_conditional_stylegan3_pickle_round_trip(tmp_path: Path) -> None:
    G = make_sg3()
    G2, _ = load_generator(write_nvidia_stylegan3_pkl(G, tmp_path / "cond3.pkl"))
    assert isinstance(G2, StyleGAN3Generator) and G2.c_dim == C
    z, c = torch.randn(3, 16), onehot([3, 1, 0])
    assert (renders(G, z, c) - renders(G2, z, c)).abs().max() <= 1e-5
    soft = torch.softmax(torch.randn(3, C), 1)
    assert (renders(G, z, soft) - renders(G2, z, soft)).abs().max() <= 1e-5


def test_convert_of_a_conditional_pickle_reloads_with_its_classes(tmp_path: Path) -> None:
    G = make_sg2()
    pkl = write_nvidia_pkl(G, tmp_path / "cond.pkl")
    result = runner.invoke(app, ["convert", str(pkl), str(tmp_path / "folder")])
    assert result.exit_code == 0, result.output
    G2, _ = load_generator(tmp_path / "folder")
    assert G2.c_dim == C
    z, c = torch.randn(4, 16), onehot([0, 1, 2, 3])
    assert (renders(G, z, c) - renders(G2, z, c)).abs().max() <= 1e-5
    result = runner.invoke(app, ["convert", str(pkl), str(tmp_path / "ros.pt")])
    assert result.exit_code == 0, result.output
    G3, _ = load_generator(tmp_path / "ros.pt")
    assert G3.c_dim == C and (renders(G, z, c) - renders(G3, z, c)).abs().max() <= 1e-5


def test_inspect_reports_the_class_count(tmp_path: Path, g2: StyleGAN2Generator) -> None:
    info = inspect_checkpoint(write_nvidia_pkl(g2, tmp_path / "cond.pkl"))
    assert info["c_dim"] == C and "4 classes" in info["classes"] and info["loadable"] is True
    info3 = inspect_checkpoint(write_nvidia_stylegan3_pkl(make_sg3(), tmp_path / "cond3.pkl"))
    assert info3["c_dim"] == C
    plain = StyleGAN2Generator(resolution=8, channels={4: 8, 8: 8}, z_dim=8, w_dim=8, n_mlp=1)
    info0 = inspect_checkpoint(write_nvidia_pkl(plain, tmp_path / "plain.pkl"))
    assert info0["c_dim"] == 0 and "classes" not in info0


# ----------------------------------------------------------------------------------
# binding a class; a latent carrying its class
# ----------------------------------------------------------------------------------
def test_with_class_renders_the_class(g2: StyleGAN2Generator) -> None:
    bound = with_class(g2, 2, mean_samples=500)
    assert isinstance(bound, ClassBoundGenerator) and bound.label == 2 and bound.config()["class"] == 2
    z = torch.randn(5, 16)
    with torch.no_grad():
        ours = bound.synthesize(z, "z")  # = the model's synthesis of mapping(z, one-hot class 2)
        ws = g2.mapping(z, onehot([2])).unsqueeze(1).repeat(1, g2.num_ws, 1)
        assert torch.allclose(ours, g2.synthesize(ws, "w+"), atol=1e-6)
        assert torch.allclose(bound(z), g2(z, c=onehot([2] * 5)), atol=1e-5)  # the training-style call too
        # W / W+ codes render the same with or without the class bound
        w = bound.convert(z, "z", "w+")
        assert torch.equal(bound.synthesize(w, "w+"), g2.synthesize(w, "w+"))
    # the class's mean w, not the model's overall w_avg
    mean = class_mean_w(g2, onehot([2]), n=500)
    assert torch.allclose(bound.mean_latent("w"), mean, atol=1e-6)
    assert torch.allclose(mean[0], g2.mapping(torch.randn(4000, 16), onehot([2])).mean(0), atol=0.15)
    assert not torch.allclose(mean, class_mean_w(g2, onehot([0]), n=500), atol=1e-3)
    soft = with_class(g2, [0.5, 0.5, 0.0, 0.0], mean_samples=100)
    assert soft.label is None and soft.config()["class"] == [0.5, 0.5, 0.0, 0.0]
    assert bound.sample(2, seed=1).shape == (2, 1, 16, 16)


def test_class_latent_generator_round_trip(g2: StyleGAN2Generator) -> None:
    M_ = ClassLatentGenerator(g2, logit_scale=2.0)
    assert M_.space("z").shape == (16 + C,)
    z = torch.randn(3, 16)
    probs = torch.tensor([[0.7, 0.1, 0.1, 0.1], [0.0, 1.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    packed = M_.pack(z, probs)
    zz, logits = M_.split(packed)
    assert torch.equal(zz, z) and logits.shape == (3, C)
    assert torch.allclose(M_.class_probs(packed), probs, atol=1e-5)
    with torch.no_grad():  # its z renders as the base model with those class probabilities
        assert torch.allclose(M_.synthesize(packed, "z"), renders(g2, z, M_.class_probs(packed)), atol=1e-6)
    assert torch.equal(M_.mean_latent("w"), g2.mean_latent("w"))


# ----------------------------------------------------------------------------------
# inversion
# ----------------------------------------------------------------------------------
def test_invert_with_class_recovers_a_sample(g2: StyleGAN2Generator) -> None:
    z = torch.randn(2, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        y = g2.to_display(g2.synthesize(g2.convert(z, "z", "w+", c=onehot([1, 1])), "w+"))
    r = invert_with_class(g2, y, label=1, mean_samples=500, space="w", steps=150, restarts=1, noise="fixed", seed=0)
    assert r.metrics["class"].tolist() == [1, 1] and r.settings["class"] == 1
    assert float(M.psnr(r.image, y).min()) > 30


def test_infer_class_finds_the_class_of_the_models_own_samples() -> None:
    G = make_sg2(z_scale=0.1)  # the class decides most of w: classes look different, as in a trained model
    gen = torch.Generator().manual_seed(5)
    z = torch.randn(8, 16, generator=gen)
    true = torch.arange(8) % C
    with torch.no_grad():
        y = G.to_display(G.synthesize(G.convert(z, "z", "w+", c=onehot(true)), "w+"))
    start = infer_class(G, y, search=ClassSearchSettings(space="w", mean_samples=200, start_only=True))
    assert start.labels.tolist() == true.tolist() and torch.all(start.prob == 1)
    assert torch.equal(start.start_losses.argmin(1), true)
    joint = infer_class(G, y, search=ClassSearchSettings(space="z", mean_samples=200), steps=60, restarts=1,
                        noise="fixed", seed=0)
    assert int((joint.labels == true).sum()) >= 7  # z and the class logits optimised jointly
    assert joint.probs.shape == (8, C) and torch.allclose(joint.probs.sum(1), torch.ones(8), atol=1e-5)
    with torch.no_grad():  # the class-free codes render the result with the model itself
        assert torch.allclose(G.to_display(G.synthesize(joint.w_plus, "w+")), joint.result.image, atol=1e-4)


# ----------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------
def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def one_error(result) -> str:
    assert result.exit_code == 1, result.output
    assert result.output.count("error:") == 1 and "Traceback" not in result.output, result.output
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def cond_pkl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_nvidia_pkl(make_sg2(z_scale=0.1), tmp_path_factory.mktemp("cond") / "cond.pkl")


def test_cli_sample_needs_a_class_on_a_conditional_model(cond_pkl: Path, tmp_path: Path) -> None:
    out1, out3 = tmp_path / "c1.png", tmp_path / "c3.png"
    assert run("sample", "--model", cond_pkl, "--class", 1, "-n", 4, "--out", out1).exit_code == 0
    assert run("sample", "--model", cond_pkl, "--class", 3, "-n", 4, "--out", out3).exit_code == 0
    assert out1.read_bytes() != out3.read_bytes()
    text = one_error(run("sample", "--model", cond_pkl, "-n", 4, "--out", tmp_path / "x.png"))
    assert "class-conditional (4 classes, 0…3): choose one with --class K" in text
    text = one_error(run("sample", "--model", cond_pkl, "--class", 4, "--out", tmp_path / "x.png"))
    assert "class 4 is out of range: this generator has 4 classes, 0…3" in text
    plain = save_pretrained(StyleGAN2Generator(resolution=8, channels={4: 8, 8: 8}, z_dim=8, w_dim=8, n_mlp=1),
                            tmp_path / "plain", name="plain", kind="generator")
    text = one_error(run("sample", "--model", plain, "--class", 0, "--out", tmp_path / "x.png"))
    assert "--class 0 was given, but this generator is unconditional" in text
    assert not (tmp_path / "x.png").exists()


def test_cli_info_shows_the_class_count(cond_pkl: Path) -> None:
    result = run("info", cond_pkl)
    assert result.exit_code == 0, result.output
    assert "c_dim" in result.output and "4 classes" in result.output


def _photo(G, label: int, path: Path, seed: int = 5) -> Path:
    z = torch.randn(1, 16, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        img = G.to_display(G.synthesize(G.convert(z, "z", "w+", c=onehot([label])), "w+"))
    return save_image(img[0], path)


def test_cli_invert_records_the_given_or_inferred_class(cond_pkl: Path, tmp_path: Path) -> None:
    G, _ = load_generator(cond_pkl)
    photo = _photo(G, 2, tmp_path / "two.png")
    out = tmp_path / "given"
    result = run("invert", photo, "--model", cond_pkl, "--class", 2, "--steps", 20, "--out", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    npz = np.load(out / "two.npz")
    assert npz["class"].tolist() == [[0.0, 0.0, 1.0, 0.0]] and npz["w"].shape == (1, G.num_ws, 16)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["class"]["source"] == "given" and summary["settings"]["class"]["labels"] == [2]

    out = tmp_path / "inferred"  # no --class: the class is inferred, printed and recorded
    result = run("invert", photo, "--model", cond_pkl, "--space", "z", "--steps", 30, "--out", out,
                 "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "two: inferred class 2" in " ".join(result.output.split())
    npz = np.load(out / "two.npz")
    assert npz["z"].shape == (1, 16) and npz["class"].shape == (1, C) and int(npz["class"].argmax()) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["class"]["source"] == "inferred" and summary["settings"]["class"]["labels"] == [2]
    assert summary["options"].get("init") in (None, "tensor")

    # the z code re-binds its recorded class: interpolate it with another code on the same model, no --class
    other = tmp_path / "w.npz"
    np.savez(other, w=npz["z"][:, None].repeat(G.num_ws, 1) * 0 + G.w_avg.numpy()[None, None])
    result = run("interpolate", out / "two.npz", other, "--steps", 3, "--model", cond_pkl, "--out", tmp_path / "ip")
    assert result.exit_code == 0, result.output
    # the recorded class renders the code as the inversion did
    from ganinv.latentfiles.native import read_npz

    code = read_npz(out / "two.npz", G)[0].code
    assert code.space == "w"
    with torch.no_grad():
        z = torch.from_numpy(npz["z"])
        c = torch.from_numpy(npz["class"])
        assert torch.allclose(code.latent, G.convert(z, "z", "w", c=c), atol=1e-6)


def test_cli_class_errors(cond_pkl: Path, tmp_path: Path) -> None:
    G, _ = load_generator(cond_pkl)
    photo = _photo(G, 0, tmp_path / "zero.png")
    plain = save_pretrained(StyleGAN2Generator(resolution=16, channels={4: 8, 8: 8, 16: 8}, z_dim=8, w_dim=8,
                                               n_mlp=1, img_channels=1), tmp_path / "plain", name="plain",
                            kind="generator")
    text = one_error(run("invert", photo, "--model", plain, "--class", 1, "--out", tmp_path / "o", "--device", "cpu"))
    assert "--class 1 was given, but this generator is unconditional" in text
    text = one_error(run("invert", photo, "--model", cond_pkl, "--class", 9, "--out", tmp_path / "o",
                         "--device", "cpu"))
    assert "class 9 is out of range" in text


def test_pti_on_a_class_bound_model_tunes_the_model_itself(g2: StyleGAN2Generator) -> None:
    """A W pivot renders without a class, so PTI's deltas belong to the conditional model: they apply to it (as
    `ganinv edit` does without --class) and reproduce the tuned reconstruction."""
    from ganinv.encoders import generator_fingerprint
    from ganinv.inverters.pti import apply_deltas

    z = torch.randn(1, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        target = g2.to_display(g2.synthesize(g2.convert(z, "z", "w+", c=onehot([1])), "w+"))
    result = invert_with_class(g2, target, label=1, mean_samples=500, method="pti", steps=5,
                               pivot={"steps": 10, "noise": "fixed"})
    assert result.settings["generator_fingerprint"] == generator_fingerprint(g2)
    assert not any(k.startswith("base.") for k in result.deltas[0])
    tuned = apply_deltas(g2, result.deltas[0])
    noise = [n[:1] for n in result.noise] if result.noise is not None else None
    again = tuned.to_display(tuned.synthesize(result.latent[:1], result.space, noise))
    assert float((again - result.image[:1]).abs().max()) < 1e-4


def test_directions_of_a_conditional_model_without_a_class_cover_every_class(cond_pkl: Path, tmp_path: Path) -> None:
    """SeFa and PCA need no class: a model with none bound samples its codes over every class (uniformly), so
    GANSpace's mean is the average of the class means — not any one class's."""
    from ganinv.editing.directions import ganspace

    G = make_sg2(z_scale=0.2)  # the class decides most of w: the class means lie far apart
    comps = ganspace(G, k=2, samples=8000, seed=3)
    means = torch.cat([class_mean_w(G, onehot([k]), n=4000, seed=k) for k in range(C)])
    spread = (means - means.mean(0)).norm(dim=1).min()
    assert (comps.mean - means.mean(0)).norm() < 0.2 * spread
    for method in ("sefa", "pca"):
        r = run("directions", "--model", cond_pkl, "--method", method, "--k", 2, "--out", tmp_path / f"{method}.npz")
        assert r.exit_code == 0, r.output
    bound = run("directions", "--model", cond_pkl, "--class", 1, "--method", "pca", "--k", 2, "--out",
                tmp_path / "one.npz")
    assert bound.exit_code == 0, bound.output


def test_all_classes_generator_draws_every_class_from_z_alone(g2: StyleGAN2Generator) -> None:
    """The whole model as one generator: each row's class is a function of its own z (the same z, the same w,
    in any batch), uniform over the classes and unrelated to z's values."""
    from ganinv.generators.conditional import AllClassesGenerator, for_whole_model

    A = for_whole_model(g2)
    assert isinstance(A, AllClassesGenerator) and for_whole_model(with_class(g2, 1, mean_samples=50)).c_dim == C
    assert not isinstance(for_whole_model(with_class(g2, 1, mean_samples=50)), AllClassesGenerator)
    z = torch.randn(20000, 16, generator=torch.Generator().manual_seed(0))
    k = A.row_classes(z)
    counts = torch.bincount(k, minlength=C).float()
    assert (counts - 5000).abs().max() < 300  # ±4 σ of a uniform draw
    assert (torch.stack([z[k == c].mean(0) for c in range(C)]).abs() < 0.06).all()  # no region of z prefers a class
    torch.testing.assert_close(A.row_classes(z[7:9]), k[7:9])
    w = A.convert(z[:6], "z", "w")
    torch.testing.assert_close(w, g2.convert(z[:6], "z", "w", c=onehot(k[:6])))
    torch.testing.assert_close(A.convert(z[3:4], "z", "w"), w[3:4])
    assert A.config()["class"] == "all" and torch.equal(A.mean_latent("w"), g2.mean_latent("w"))


def test_train_encoder_for_a_conditional_model_serves_every_class(cond_pkl: Path, tmp_path: Path) -> None:
    """train-encoder without --class trains for the whole model (pairs of every class); the encoder then inverts
    with any --class bound (it was trained for the same weights)."""
    fast = ["--batch-size", 4, "--val-every", 2, "--width", 8, "--max-width", 16, "--val-images", 4]
    r = run("train-encoder", "--model", cond_pkl, "--iterations", 2, *fast, "--out", tmp_path / "run",
            "--export", tmp_path / "enc")
    assert r.exit_code == 0, r.output
    Image.fromarray((np.random.default_rng(0).random((16, 16)) * 255).astype(np.uint8)).save(tmp_path / "x.png")
    for label in (0, 3):
        r = run("invert", tmp_path / "x.png", "--model", cond_pkl, "--class", label, "--method", "encoder",
                "--encoder", tmp_path / "enc", "--no-classifier", "--out", tmp_path / f"inv{label}")
        assert r.exit_code == 0, r.output


def test_restore_and_dataset_and_video_name_the_missing_class_up_front(cond_pkl: Path, tmp_path: Path) -> None:
    """Commands whose optimisation needs the class say so before any work, in the CLI's own words."""
    G, _ = load_generator(cond_pkl)
    photo = _photo(G, 0, tmp_path / "zero.png")
    for args in (["restore", photo, "--task", "inpaint", "--simulate", "--steps", 2, "--out", tmp_path / "r"],
                 ["invert-dataset", tmp_path / "zero.png", "--steps", 2, "--out", tmp_path / "d"]):
        text = one_error(run(*args, "--model", cond_pkl, "--device", "cpu"))
        assert "class-conditional (4 classes, 0…3): choose one with --class K" in text, text
        assert not (tmp_path / "r").exists() and not (tmp_path / "d").exists()
