"""``ganinv train-encoder --model ANY [--data FOLDER|LIST]``: encoders for a user's generator (rosinality .pt,
ganinv folder, DCGAN) trained on generated pairs plus the user's images; resuming, exporting, inverting with the
export, refusing another generator, and one clear message per bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import make_tiny_stylegan2
from ganinv.cli.app import app
from ganinv.encoders import generator_fingerprint, load_encoder
from ganinv.errors import InputError
from ganinv.generators.checkpoints import load_generator, save_rosinality
from ganinv.modelfile import save_pretrained
from ganinv.train.encoder import EncoderTrainConfig, EncoderTrainer
from ganinv.train.encoder_data import generator_source, is_validation, load_user_images

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("offline_torch_home")

#: A tiny, fast recipe (the architecture options are real; only the sizes are small).
FAST = ["--batch-size", "4", "--val-every", "2", "--width", "8", "--max-width", "16", "--val-images", "4"]


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def write_pngs(folder: Path, n: int = 10, size: tuple[int, int] = (24, 20), mode: str = "RGB", seed: int = 0
               ) -> Path:
    """``n`` random PNGs of another size and channel count than the 16 px grey generator, in two sub-folders."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        sub = folder / ("a" if i % 2 else "b" / Path("deeper"))
        sub.mkdir(parents=True, exist_ok=True)
        shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(sub / f"img{i}.png")
    return folder


@pytest.fixture
def pngs(tmp_path) -> Path:
    return write_pngs(tmp_path / "photos")


@pytest.fixture
def sg2_pt(tmp_path) -> Path:
    return save_rosinality(make_tiny_stylegan2(), tmp_path / "tiny.pt")


@pytest.fixture
def sg2_folder(tmp_path) -> Path:
    folder = tmp_path / "tiny-folder"
    save_pretrained(make_tiny_stylegan2(), folder, name="tiny-folder", kind="generator")
    return folder


def fast_config(model: str, data: list[str], **kw) -> EncoderTrainConfig:
    base = dict(model=model, data=data, iterations=4, batch_size=4, passes=2, width=8, max_width=16,
                val_every=2, checkpoint_every=2, val_images=4, val_generated=8)
    return EncoderTrainConfig(**{**base, **kw})


def test_cli_trains_on_a_rosinality_pt_resumes_exports_and_inverts(tmp_path, sg2_pt, pngs):
    out, export = tmp_path / "run", tmp_path / "export"
    args = ["train-encoder", "--model", sg2_pt, "--data", pngs, "--out", out, *FAST]
    result = run(*args, "--iterations", "2")
    assert result.exit_code == 0, result.output
    # the RGB 24×20 PNGs are read like `ganinv invert` reads them: converted to grey and resized, with a note
    assert "converted RGB → L (luma)" in result.output and "resized 24×20 → 16×16 (centre crop)" in result.output
    assert "w+ codes (6, 16) from 16 px input" in result.output
    result = run(*args, "--iterations", "3", "--export", export)
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output and "exported" in result.output and "mean-latent start" in result.output
    cfg = json.loads((export / "config.json").read_text())
    G, _ = load_generator(sg2_pt)
    target = cfg["meta"]["generator"]
    assert target["fingerprint"] == generator_fingerprint(G) and target["space"] == "w+"
    assert target["source"] == {"model": str(sg2_pt.resolve())}
    assert target["invert_args"] == f"--model {sg2_pt.resolve()}"
    assert cfg["meta"]["iterations"] == 3 and cfg["meta"]["data"]["kind"] == "user images"
    assert cfg["meta"]["data"]["train_images"] + cfg["meta"]["data"]["val_images"] == 10
    assert {"val_psnr_1", "val_psnr_2", "val_ssim", "gen_psnr_2", "gen_latent"} <= set(cfg["meta"]["selected"])
    assert set(cfg["meta"]["start"]) == {"val_start_psnr", "gen_start_psnr"}
    assert (out / "curves.png").is_file() and (out / "log.jsonl").is_file()
    # the export inverts the user's images with the same generator ...
    inv = tmp_path / "inv"
    result = run("invert", pngs / "a", "--method", "encoder", "--encoder", export, "--model", sg2_pt, "--passes",
                 "2", "--out", inv)
    assert result.exit_code == 0, result.output
    assert json.loads((inv / "summary.json").read_text())["method"] == "encoder"
    # ... and refuses another one, saying which generator it needs
    other = save_rosinality(make_tiny_stylegan2(seed=1), tmp_path / "other.pt")
    result = run("invert", pngs / "a", "--method", "encoder", "--encoder", export, "--model", other, "--out",
                 tmp_path / "inv2")
    assert result.exit_code == 1
    assert "was trained for generator" in result.output and "only works with the exact weights" in result.output
    assert "Traceback" not in result.output


def test_resuming_a_folder_model_run_continues_bit_identically(tmp_path, sg2_folder, pngs):
    """Trainer API on a ganinv folder given by path (loaded by the trainer itself): 2 + 2 steps == 4 steps,
    weights and optimiser state alike; the encoder's input size is its own (8 px for the 16 px generator)."""
    spec = str(sg2_folder)
    straight = EncoderTrainer(tmp_path / "a", fast_config(spec, [str(pngs)], input_size=8))
    straight.train()
    EncoderTrainer(tmp_path / "b", fast_config(spec, [str(pngs)], input_size=8, iterations=2)).train()
    resumed = EncoderTrainer(tmp_path / "b", fast_config(spec, [str(pngs)], input_size=8))
    assert resumed.iteration == 2 and resumed.encoder.resolution == 8
    resumed.train()
    for (k, a), b in zip(straight.encoder.state_dict().items(), resumed.encoder.state_dict().values()):
        assert torch.equal(a, b), k
    sa, sb = straight.opt.state_dict()["state"], resumed.opt.state_dict()["state"]
    assert sa.keys() == sb.keys() and all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    assert [r for r in straight.log if "val_psnr_2" in r] == [r for r in resumed.log if "val_psnr_2" in r]
    # every batch holds generated pairs, even when asked for real images only
    assert EncoderTrainer(tmp_path / "c", fast_config(spec, [str(pngs)], real_fraction=1.0)).n_real() == 3
    # resuming on other images is refused (the split would change under the run)
    write_pngs(pngs / "more", n=2, seed=5)
    with pytest.raises(InputError, match="other images than --data"):
        EncoderTrainer(tmp_path / "b", fast_config(spec, [str(pngs)]))


def test_without_data_trains_on_generated_pairs_and_a_dcgan_gets_a_z_encoder(tmp_path, tiny_dcgan):
    folder = tmp_path / "dcgan"
    save_pretrained(tiny_dcgan, folder, name="dcgan", kind="generator")
    t = EncoderTrainer(tmp_path / "run", fast_config(str(folder), [], iterations=2))
    assert t.space == "z" and t.real is None and t.n_real() == 0
    assert any("generated images with known latents only" in n for n in t.notes)
    t.train()
    assert {"val_psnr_1", "val_psnr_2", "val_ssim", "val_latent"} <= set(t.best)
    assert not any(k.startswith("gen_") for k in t.best)  # the generated set *is* the validation set
    meta = t.export(tmp_path / "export")
    assert meta["data"].startswith("generated samples with known latents only")
    assert load_encoder(tmp_path / "export").latent_shape == (8,)


def test_split_is_a_seeded_hash_of_the_names(tmp_path):
    """The held-out images depend on their names and the seed only: not on where the folder lives."""
    one = load_user_images([str(write_pngs(tmp_path / "x" / "photos", n=30))], 1, 16, seed=3, val_fraction=0.2)
    two = load_user_images([str(write_pngs(tmp_path / "y" / "photos", n=30, seed=9))], 1, 16, seed=3,
                           val_fraction=0.2)
    assert one.val_keys == two.val_keys and 0 < len(one.val_keys) < 30
    assert set(one.val_keys) == {k for k in one.val_keys + one.train_keys if is_validation(k, 3, 0.2)}
    other_seed = load_user_images([str(tmp_path / "x" / "photos")], 1, 16, seed=4, val_fraction=0.2)
    assert other_seed.val_keys != one.val_keys
    assert one.val.shape == (len(one.val_keys), 1, 16, 16) and one.train.take(torch.tensor([0, 1]), "cpu").shape == (
        2, 1, 16, 16)


def test_generator_source_records_how_to_load_it(tmp_path, sg2_pt):
    assert generator_source("mnist-stylegan2") == {"model": "mnist-stylegan2", "invert_args": "--model mnist-stylegan2"}
    (tmp_path / "g.py").write_text("")
    rec = generator_source(None, "g.py:Net", weights=sg2_pt, latent_dim=8, image_shape="1,16,16")
    # a wrapped generator's fingerprint includes its spec: it is kept as given (its file is recorded for people)
    assert rec["generator"] == "g.py:Net" and rec["weights"] == str(sg2_pt.resolve())
    assert rec["invert_args"] == (f"--generator g.py:Net --weights {sg2_pt.resolve()} --latent-dim 8 "
                                  "--image-shape 1,16,16")


def test_discriminator_features_from_a_rosinality_training_checkpoint(tmp_path, pngs, sg2_pt):
    """``dfeat`` uses the generator's own D when its checkpoint holds one, and is one clear error otherwise."""
    from ganinv.convert.discriminator import rosinality_d_state
    from ganinv.generators.stylegan2_discriminator import StyleGAN2Discriminator

    G = make_tiny_stylegan2()
    torch.manual_seed(0)
    D = StyleGAN2Discriminator(resolution=16, channels={"16": 8, "8": 8, "4": 8}, img_channels=1)
    ckpt = tmp_path / "train.pt"
    torch.save({"g_ema": G.state_dict(), "latent_avg": G.w_avg, "g": G.state_dict(), "d": rosinality_d_state(D)},
               ckpt)
    result = run("train-encoder", "--model", ckpt, "--data", pngs, "--out", tmp_path / "d", *FAST, "--iterations",
                 "1", "--real-loss", "mse=1,dfeat=0.1")
    assert result.exit_code == 0, result.output
    result = run("train-encoder", "--model", sg2_pt, "--data", pngs, "--out", tmp_path / "nod", *FAST,
                 "--iterations", "1", "--real-loss", "mse=1,dfeat=0.1")
    assert result.exit_code == 1
    assert "own discriminator" in result.output and "holds no discriminator" in result.output


@pytest.mark.parametrize("case, message", [
    ("empty", "no image files there"),
    ("unreadable", "none of the 2 image file(s) could be read"),
    ("w+ for dcgan", "a W+ encoder needs a generator with a W space"),
    ("z for sg2", "its encoder predicts W+ codes"),
    ("input size", "--input-size must be a power of two"),
    ("unknown model", "unknown model 'nope'"),
    ("amp on cpu", "bf16 autocast) runs on CUDA"),
])
def test_bad_inputs_are_one_clear_error_each(tmp_path, case, message, sg2_pt, pngs, tiny_dcgan):
    model, extra = sg2_pt, ["--data", pngs]
    if case == "empty":
        (tmp_path / "empty" / "sub").mkdir(parents=True)
        (tmp_path / "empty" / "notes.txt.bak").write_text("x")
        extra = ["--data", tmp_path / "empty"]
    elif case == "unreadable":
        (tmp_path / "bad").mkdir()
        for i in range(2):
            (tmp_path / "bad" / f"x{i}.png").write_bytes(b"not a png at all")
        extra = ["--data", tmp_path / "bad"]
    elif case == "w+ for dcgan":
        model = tmp_path / "dcgan"
        save_pretrained(tiny_dcgan, model, name="dcgan", kind="generator")
        extra = ["--space", "w+"]
    elif case == "z for sg2":
        extra = ["--space", "z"]
    elif case == "input size":
        extra = ["--input-size", "12"]
    elif case == "unknown model":
        model = "nope"
    elif case == "amp on cpu":
        extra = ["--amp"]
    result = run("train-encoder", "--model", model, *extra, "--out", tmp_path / "o", *FAST, "--iterations", "1")
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output


NET_PY = '''
import torch
from torch import nn


class Net(nn.Module):
    """A z-only 16 px generator: z [B, 8] → [B, 1, 16, 16] in [-1, 1]."""

    latent_dim = 8
    image_shape = (1, 16, 16)

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(8, 64)
        self.up = nn.ConvTranspose2d(4, 1, 4, stride=4)

    def forward(self, z):
        return torch.tanh(self.up(self.fc(z).view(-1, 4, 4, 4)))
'''


def test_a_generator_module_of_ones_own_gets_a_z_encoder(tmp_path, pngs):
    (tmp_path / "net.py").write_text(NET_PY)
    spec = f"{tmp_path / 'net.py'}:Net"
    out, export = tmp_path / "run", tmp_path / "export"
    result = run("train-encoder", "--generator", spec, "--data", pngs, "--out", out, *FAST, "--iterations", "2",
                 "--export", export)
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # (the console wraps long lines)
    assert "z codes (8,)" in said and f"--generator {spec}" in said
    result = run("invert", pngs / "a", "--method", "encoder", "--encoder", export, "--generator", spec,
                 "--out", tmp_path / "inv")
    assert result.exit_code == 0, result.output
    result = run("train-encoder", "--generator", spec, "--space", "w+", "--out", tmp_path / "w", *FAST)
    assert result.exit_code == 1 and "a W+ encoder needs a generator with a W space" in result.output


def test_lists_and_images_read_from_disk_per_batch_match_the_preloaded_ones(tmp_path, monkeypatch):
    """A .txt list reads the files it names; a set too large for memory is read from disk for every batch
    (here: forced), and gives the images the 8-bit in-memory copy gives."""
    import ganinv.train.encoder_data as enc_data

    folder = write_pngs(tmp_path / "photos", n=8, mode="L", size=(16, 16))
    files = sorted(folder.rglob("*.png"))
    (tmp_path / "list.txt").write_text("# my images\n" + "\n".join(str(f.relative_to(tmp_path)) for f in files))
    listed = load_user_images([str(tmp_path / "list.txt")], 1, 16, val_fraction=0.25)
    assert len(listed.train_keys) + len(listed.val_keys) == 8 and listed.train.images is not None
    monkeypatch.setattr(enc_data, "PRELOAD_SHARE", 0.0)
    lazy = load_user_images([str(tmp_path / "list.txt")], 1, 16, val_fraction=0.25)
    assert lazy.train.paths is not None and any("read from disk for every batch" in n for n in lazy.notes)
    idx = torch.tensor([2, 0, 2])
    assert torch.equal(lazy.train.take(idx, "cpu"), listed.train.take(idx, "cpu"))  # 8-bit files: exact
    assert lazy.val_keys == listed.val_keys and torch.equal(lazy.val, listed.val)
