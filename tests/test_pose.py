"""Pose search on StyleGAN3 (ganinv.inverters.pose): the transform algebra, the wrappers' renders, and a run."""

from __future__ import annotations

import math

import pytest
import torch

from ganinv.errors import InputError
from ganinv.generators.dcgan import DCGANGenerator
from ganinv.generators.stylegan3 import image_transform
from ganinv.inverters.pose import POSE_STD, PoseBoundGenerator, PosedGenerator, invert_pose, pose_transform
from test_stylegan3 import TINY_T, _make


@pytest.fixture(scope="module")
def g3():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield _make(TINY_T, seed=3)
    torch.set_num_threads(before)


@pytest.mark.parametrize("dx,dy,deg", [(0.0, 0.0, 0.0), (0.1, -0.05, 0.0), (0.0, 0.0, 12.0), (-0.2, 0.07, -30.0)])
def test_pose_transform_is_image_transform(dx: float, dy: float, deg: float) -> None:
    got = pose_transform(torch.tensor([[dx, dy, math.radians(deg)]]))[0]
    assert torch.allclose(got, image_transform((dx, dy), deg), atol=1e-6)


def test_pose_transform_is_differentiable_and_batched() -> None:
    pose = torch.tensor([[0.1, 0.0, 0.2], [0.0, -0.1, -0.3]], requires_grad=True)
    T = pose_transform(pose)
    assert T.shape == (2, 3, 3)
    T[:, :2, 2].sum().backward()
    assert pose.grad is not None and pose.grad.abs().sum() > 0


def test_posed_generator_renders_the_code_at_its_pose(g3) -> None:
    P = PosedGenerator(g3, "w+")
    assert P.default_space == "w+:pose"
    assert P.space("w+:pose").shape == (g3.num_ws * g3.w_dim + 3,)
    ws = g3.convert(g3.sample_latent(2, seed=1), "z", "w+")
    zero = P.join(ws, torch.zeros(2, 3))
    assert torch.allclose(P.synthesize(zero, "w+:pose"), g3.synthesize(ws, "w+"), atol=1e-6)
    pose = torch.tensor([[0.05, -0.02, math.radians(8.0)], [-0.1, 0.03, math.radians(-15.0)]])
    code, back = P.split(P.join(ws, pose))
    assert torch.allclose(code, ws) and torch.allclose(back, pose, atol=1e-6)
    moved = P.synthesize(P.join(ws, pose), "w+:pose")
    for i in range(2):
        want = g3.synthesis(ws[i:i + 1], image_transform(tuple(pose[i, :2].tolist()), math.degrees(pose[i, 2])))
        assert torch.allclose(moved[i:i + 1], ((want + 1) / 2).clamp(0, 1), atol=1e-5)
    z = P.sample_latent(3, seed=0)  # z then 3 standard-normal pose coordinates
    assert z.shape == (3, g3.z_dim + 3)
    assert P.synthesize(z, "z").shape == (3, *g3.image_shape)
    mean = P.mean_latent()
    assert torch.equal(mean[0, -3:], torch.zeros(3))


def test_pose_needs_a_stylegan3() -> None:
    with pytest.raises(InputError, match="input transform"):
        PosedGenerator(DCGANGenerator(resolution=16, z_dim=8, width=4))
    with pytest.raises(InputError, match="StyleGAN3"):
        PoseBoundGenerator(DCGANGenerator(resolution=16, z_dim=8, width=4), torch.eye(3))


def test_invert_pose_returns_codes_and_transforms_that_render_its_image(g3) -> None:
    ws = g3.convert(g3.sample_latent(2, seed=5), "z", "w+")
    T = torch.stack([image_transform((0.08, 0.0), 6.0), image_transform((-0.05, 0.04), -10.0)])
    with torch.no_grad():
        target = ((g3.synthesis(ws, T) + 1) / 2).clamp(0, 1)
    result = invert_pose(g3, target, space="w+", steps=20, seed=0)
    assert result.latent.shape == (2, g3.num_ws, g3.w_dim) and result.space == "w+"
    assert result.extra["pose"].shape == (2, 3) and result.extra["transform"].shape == (2, 3, 3)
    assert result.settings["pose"] is True and result.settings["pose_std"] == list(POSE_STD)
    bound = PoseBoundGenerator(g3, result.extra["transform"])
    again = bound.synthesize(result.latent, "w+")
    assert torch.allclose(again, result.image, atol=1e-4)
    assert float(result.metrics["psnr"].min()) > 25.0
    # the stored pose is the transform's: degrees shown, radians inside
    dx, dy, deg = result.extra["pose"][0].tolist()
    assert torch.allclose(result.extra["transform"][0], image_transform((dx, dy), deg), atol=1e-5)


def test_invert_pose_refuses_noise_and_z(g3) -> None:
    target = torch.rand(1, *g3.image_shape)
    with pytest.raises(InputError, match="noise"):
        invert_pose(g3, target, noise="joint", steps=1)
    with pytest.raises(InputError, match="w or w\\+"):
        invert_pose(g3, target, space="z", steps=1)


def test_invert_pose_in_the_cli_records_the_pose_and_edit_renders_with_it(tmp_path, g3) -> None:
    import numpy as np
    from PIL import Image
    from typer.testing import CliRunner

    from ganinv.cli.app import app
    from ganinv.modelfile import save_pretrained
    from nvidia_pkl import write_nvidia_stylegan3_pkl

    pkl = write_nvidia_stylegan3_pkl(g3, tmp_path / "sg3.pkl")
    ws = g3.convert(g3.sample_latent(1, seed=2), "z", "w+")
    with torch.no_grad():
        img = ((g3.synthesis(ws, image_transform((0.1, 0.0), 10.0)) + 1) / 2).clamp(0, 1)
    Image.fromarray((img[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(tmp_path / "x.png")
    run = CliRunner().invoke
    r = run(app, ["invert", str(tmp_path / "x.png"), "--model", str(pkl), "--pose", "--steps", "5",
                  "--no-classifier", "--out", str(tmp_path / "inv")])
    assert r.exit_code == 0, r.output
    assert "rotation" in r.output
    with np.load(tmp_path / "inv" / "x.npz") as data:
        assert data["transform"].shape == (1, 3, 3) and data["pose"].shape == (1, 3)
        T = torch.from_numpy(data["transform"][0])
        w = torch.from_numpy(data["w"])
    # edit at strength 0 renders the code at its recorded pose: the inversion's own reconstruction
    r = run(app, ["edit", str(tmp_path / "inv" / "x.npz"), "--model", str(pkl), "--direction", "pca:0",
                  "--strengths", "0", "--out", str(tmp_path / "edit")])
    assert r.exit_code == 0, r.output
    assert "recorded pose" in r.output
    want = PoseBoundGenerator(g3, T).synthesize(w, "w+")
    saved = sorted((tmp_path / "edit").glob("x*.npz"))
    assert saved, sorted(p.name for p in (tmp_path / "edit").iterdir())
    assert torch.allclose(PoseBoundGenerator(g3, T).synthesize(torch.from_numpy(np.load(saved[0])["w"]), "w+"),
                          want, atol=1e-4)
    # codes with a pose cannot be mixed with others; bad combinations are one sentence each
    r = run(app, ["mix", str(tmp_path / "inv" / "x.npz"), str(tmp_path / "inv" / "x.npz"), "--model", str(pkl),
                  "--layers", "0-3", "--out", str(tmp_path / "mix")])
    assert r.exit_code != 0 and "--pose" in r.output and "Traceback" not in r.output
    r = run(app, ["invert", str(tmp_path / "x.png"), "--model", str(pkl), "--pose", "--method", "encoder",
                  "--out", str(tmp_path / "bad")])
    assert r.exit_code != 0 and "--pose works with --method optimize" in r.output
    save_pretrained(DCGANGenerator(resolution=16, z_dim=8, width=4), tmp_path / "dc", name="dc", kind="generator")
    r = run(app, ["invert", str(tmp_path / "x.png"), "--model", str(tmp_path / "dc"), "--pose", "--steps", "2",
                  "--out", str(tmp_path / "bad2")])
    assert r.exit_code != 0 and "StyleGAN3" in r.output and "Traceback" not in r.output
