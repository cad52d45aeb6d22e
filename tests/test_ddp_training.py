"""Data-parallel training (``torchrun``): two CPU processes (gloo) train exactly what one process trains
with the same global batch — encoder and GAN trainers, BatchNorm, minibatch-stddev, R1, mixing, noise,
augmentation, resume — and the pieces that make it so (sharding, refusals, synchronised BatchNorm)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ganinv.data
import ganinv.train.distributed as ddp
from conftest import make_tiny_stylegan2
from ddp_worker import GANS, encoder_run, fake_mnist_raw, gan_config, states
from ganinv.errors import InputError
from ganinv.generators.dcgan import DCGANDiscriminator, MinibatchStd
from ganinv.train.encoder import EncoderTrainConfig, EncoderTrainer
from ganinv.train.gan import GanTrainConfig, GanTrainer

TESTS = Path(__file__).parent
# Not bit-exact: float32 sums over another split (each rank's partial sums, then the all-reduce) round
# differently from one process's sums (~1e-7 relative). Adam's normalised step passes that on mostly
# unchanged, but an element whose gradient nearly cancels can move by up to lr × its relative error, so
# a few steps leave differences of ~1e-7 (worst seen: 3e-7 at lr 1e-3). rtol covers large weights (the
# StyleGAN2 mapping's 1/lr_mul-scaled ones reach ~300, where one float32 ulp is 3e-5).
ATOL, RTOL = 1e-6, 1e-6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _assert_close(ours: dict[str, torch.Tensor], ref: dict[str, torch.Tensor], what: str) -> None:
    assert ours.keys() == ref.keys(), what
    for k, v in ref.items():
        torch.testing.assert_close(ours[k].float(), v.float(), atol=ATOL, rtol=RTOL, msg=f"{what}: {k}")


def test_two_processes_train_what_one_process_trains(tmp_path, monkeypatch):
    monkeypatch.setattr(ganinv.data, "_raw", fake_mnist_raw)  # as in the workers
    encoder_run(tmp_path / "enc_resume", iterations=2).train()  # the first half; the 2 processes resume it
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in [str(TESTS.parent / "src"), os.environ.get("PYTHONPATH")] if p)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(TESTS / "ddp_worker.py"),
           str(tmp_path)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:  # the one-process references, meanwhile
        ref_enc = encoder_run(tmp_path / "ref_enc")
        ref_enc.train()
        refs = {}
        for arch in GANS:
            t = GanTrainer(tmp_path / f"ref_{arch}", gan_config(arch), classifier=None)
            t.train()
            refs[arch] = states(t)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    # the ranks hold bit-identical weights (same all-reduced gradients, same random streams)
    for key in ("enc", "enc_resume"):
        for k, v in ranks[0][key].items():
            assert torch.equal(v, ranks[1][key][k]), (key, k)
    for arch in GANS:
        for net, sd in ranks[0][arch].items():
            for k, v in sd.items():
                if net == "G_ema" and k.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked"):
                    continue  # rank 0 alone recalibrated G_ema's BatchNorm statistics for its sample grid
                assert torch.equal(v, ranks[1][arch][net][k]), (arch, net, k)
    # ... and equal one process's weights up to float rounding
    _assert_close(ranks[0]["enc"], ref_enc.encoder.state_dict(), "encoder")
    assert ranks[0]["resumed_from"] == 2
    _assert_close(ranks[0]["enc_resume"], ref_enc.encoder.state_dict(), "encoder resumed under torchrun")
    for arch in GANS:
        for net in ("G", "D", "G_ema"):
            _assert_close(ranks[0][arch][net], refs[arch][net], f"{arch} {net}")
        assert all(torch.isfinite(v).all() for v in ranks[0][arch]["G"].values() if v.is_floating_point())
    # rank 0 alone writes (checkpoints, samples) and prints; the CLI exported once
    assert (tmp_path / "enc" / "checkpoint.pt").is_file() and (tmp_path / "enc" / "best.safetensors").is_file()
    assert (tmp_path / "dcgan" / "samples" / "iter_000003.png").is_file()
    assert (tmp_path / "cli-export" / "model.safetensors").is_file()
    # validation lines: iterations 2 and 4 of "enc", 4 of the resumed run, 2 of the CLI run — once each
    lines = output.splitlines()
    assert sum(line.startswith("iter ") for line in lines) == 4, output[-3000:]
    assert sum(line.startswith("exported ") for line in lines) == 1, output[-3000:]


def test_shards_keep_minibatch_stddev_groups():
    x = torch.randn(16, 3, 2, 2)
    layer = MinibatchStd(4)
    full = layer(x)
    for world_size in (2, 4):
        seen = torch.cat([ddp.shard_indices(16, r, world_size, group=4) for r in range(world_size)])
        assert sorted(seen.tolist()) == list(range(16))
        for r in range(world_size):
            sel = ddp.shard_indices(16, r, world_size, group=4)
            torch.testing.assert_close(layer(x[sel]), full[sel], atol=0, rtol=0)
    assert ddp.shard_indices(8, 1, 2).tolist() == [4, 5, 6, 7]  # no groups: contiguous slices
    with pytest.raises(InputError, match="minibatch-stddev groups of 4"):
        ddp.shard_indices(12, 0, 2, group=4)  # 3 groups cannot be split between 2 ranks
    # interleaved blocks: real [0, 3) then generated [3, 8) of a batch of 8 → 4 items per rank
    for r in (0, 1):
        assert len(range(3)[ddp.interleaved(0, r, 2)]) + len(range(5)[ddp.interleaved(3, r, 2)]) == 4


def test_refuses_a_batch_that_does_not_split(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="--batch-size 7 is the global batch .* 2 processes"):
        ddp.check_batch(7, 2)
    monkeypatch.setattr(ddp, "world", lambda: (0, 2))  # as rank 0 of 2
    cfg = EncoderTrainConfig(model="tiny", batch_size=7, width=8, max_width=16, w_classifier=0.0)
    with pytest.raises(InputError, match="--batch-size 7 is the global batch"):
        EncoderTrainer(tmp_path / "e", cfg, generator=make_tiny_stylegan2())
    with pytest.raises(InputError, match="--batch-size 9 is the global batch"):
        GanTrainer(tmp_path / "g", GanTrainConfig(**GANS["dcgan"], batch_size=9), classifier=None)
    with pytest.raises(InputError, match="minibatch-stddev groups of 4"):
        GanTrainer(tmp_path / "g", GanTrainConfig(**GANS["stylegan2"], batch_size=12), classifier=None)


def test_sync_batchnorm_is_plain_batchnorm_in_one_process():
    torch.manual_seed(0)
    plain = DCGANDiscriminator(resolution=32, width=4, norm="batch")
    synced = ddp.convert_sync_batchnorm(DCGANDiscriminator(resolution=32, width=4, norm="batch"))
    synced.load_state_dict(plain.state_dict())
    assert any(isinstance(m, ddp.SyncBatchNorm2d) for m in synced.modules())
    assert synced.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(6, 1, 32, 32)
    torch.testing.assert_close(synced(x), plain(x), atol=0, rtol=0)
