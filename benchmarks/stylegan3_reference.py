"""ganinv's StyleGAN3 vs NVIDIA's own ``networks_stylegan3`` from the user's checkout: same weights, renders, speed.

Usage::

    python benchmarks/stylegan3_reference.py --reference-repo PATH/TO/stylegan3 --cfg t --resolution 256 \\
        [--channel-base 32768] [--channel-max 512] [--z-dim 512] [--seeds 2] [--reps 2] [--threads 2] [--out F]

What it does, on CPU:

1. builds ``training.networks_stylegan3.Generator`` *from the checkout given* (imported at run time; no NVIDIA
   code is part of ganinv) with random weights — biases, the Fourier input's affine, the magnitude EMAs
   and ``w_avg`` are randomised too, so every path matters — for ``--cfg t`` (3×3 convolutions) or ``r``
   (1×1 convolutions, radial filters; pass doubled widths as NVIDIA's ``stylegan3-r`` config does);
2. pickles ``{G, G_ema, D: None, …}`` the way NVIDIA's training loop writes snapshots, reads the file back
   with ganinv's restricted unpickler (:func:`ganinv.generators.checkpoints.read_nvidia_pkl`) and builds
   ganinv's generator with :func:`ganinv.generators.nvidia_stylegan3.stylegan3_from_record`;
3. compares images in [0, 1] for ``--seeds`` seeded z at truncation 1 and 0.7, a batch of 3 and a set
   input transform (max |diff|), and the gradient with respect to W+;
4. times one forward (batch 1) and one forward + backward to W+ of each, alternating, best of ``--reps``.

``--images-only`` stops after step 3's image comparisons: at 1024 px the backward pass through NVIDIA's
pure-PyTorch reference ops needs more than 24 GB (it was killed for memory on a 23 GB machine). Each comparison
is printed to stderr as it is measured.

On CPU NVIDIA's ``filtered_lrelu`` / ``bias_act`` / ``upfirdn2d`` take their pure-PyTorch reference paths
(``_filtered_lrelu_ref`` …) without building plugins. If ``pkg_resources`` (imported by their
``conv2d_gradfix`` for a version check) is missing, a stand-in offering ``parse_version`` is inserted.
Prints one JSON object (and writes it to ``--out``).
"""

from __future__ import annotations

import argparse
import copy
import json
import pickle
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch


def _import_reference(repo: Path) -> Any:
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        from packaging.version import parse

        stand_in = types.ModuleType("pkg_resources")
        stand_in.parse_version = parse  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = stand_in
    sys.path.insert(0, str(repo))
    try:
        from training.networks_stylegan3 import Generator
    finally:
        sys.path.remove(str(repo))
    return Generator


def _best(fn: Callable[[], Any], reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run(args: argparse.Namespace) -> dict[str, Any]:
    from ganinv.generators.checkpoints import read_nvidia_pkl
    from ganinv.generators.nvidia_stylegan3 import stylegan3_from_record
    from ganinv.generators.stylegan3 import image_transform

    torch.set_num_threads(args.threads)
    NvGenerator = _import_reference(args.reference_repo)
    torch.manual_seed(args.seed)
    extra = {"conv_kernel": 1, "use_radial_filters": True} if args.cfg == "r" else {}
    nv = NvGenerator(z_dim=args.z_dim, c_dim=0, w_dim=args.z_dim, img_resolution=args.resolution, img_channels=3,
                     channel_base=args.channel_base, channel_max=args.channel_max,
                     mapping_kwargs={"num_layers": 2}, magnitude_ema_beta=0.5 ** (32 / 20000), num_fp16_res=4,
                     conv_clamp=256, **extra)
    rng = np.random.RandomState(args.seed)
    with torch.no_grad():
        for name, p in nv.named_parameters():
            if name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.3)
        nv.synthesis.input.affine.weight.copy_(torch.randn_like(nv.synthesis.input.affine.weight) * 0.5)
        for name, b in nv.named_buffers():
            if name.endswith("magnitude_ema"):
                b.fill_(float(rng.uniform(0.3, 3.0)))
        nv.mapping.w_avg.copy_(torch.randn_like(nv.mapping.w_avg) * 0.5)
    snapshot: dict[str, Any] = {key: copy.deepcopy(nv).eval().requires_grad_(False).cpu() for key in ("G", "G_ema")}
    snapshot.update(D=None, augment_pipe=None, training_set_kwargs={"resolution": args.resolution})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "network-snapshot.pkl"
        with open(path, "wb") as f:
            pickle.dump(snapshot, f)
        obj, _ = read_nvidia_pkl(path)
        notices: list[str] = []
        ours = stylegan3_from_record(obj["G_ema"], str(path), notices)
    ref = snapshot["G_ema"]
    out: dict[str, Any] = {"cfg": args.cfg, "resolution": args.resolution, "channel_base": args.channel_base,
                           "channel_max": args.channel_max, "parameters": sum(p.numel() for p in ref.parameters()),
                           "threads": args.threads, "notices": notices}

    def both(z: torch.Tensor, psi: float = 1.0) -> float:
        theirs = (ref(z, None, truncation_psi=psi, noise_mode="const") + 1) / 2
        mine = ours.synthesize(ours.truncate(ours.convert(z, "z", "w"), psi), "w")
        return float((mine - theirs).abs().max())

    def record(key: str, value: float) -> None:
        out[key] = value
        print(f"{key}: {value:.3g}", file=sys.stderr, flush=True)

    with torch.no_grad():
        for psi in (1.0, 0.7):
            record(f"max_abs_diff_psi{psi}", max(
                both(torch.from_numpy(np.random.RandomState(s).randn(1, args.z_dim)).float(), psi)
                for s in range(args.seeds)))
        record("max_abs_diff_batch3", both(torch.from_numpy(np.random.RandomState(99).randn(3, args.z_dim)).float()))
        m = image_transform((3.0, -2.0), angle=17.0, resolution=args.resolution)
        ours.set_transform(m)
        ref.synthesis.input.transform.copy_(m)
        record("max_abs_diff_transform", both(torch.from_numpy(np.random.RandomState(5).randn(1, args.z_dim)).float()))
        ours.set_transform(None)
        ref.synthesis.input.transform.copy_(torch.eye(3))
    if args.images_only:
        return out

    ws = ours.convert(torch.randn(1, args.z_dim), "z", "w+").detach().requires_grad_(True)
    g_ours = torch.autograd.grad(ours.synthesis(ws).square().mean(), ws)[0]
    g_ref = torch.autograd.grad(ref.synthesis(ws).square().mean(), ws)[0]
    out["grad_max_rel_diff"] = float((g_ours - g_ref).abs().max() / g_ref.abs().max())
    out["grad_rel_l2_diff"] = float((g_ours - g_ref).norm() / g_ref.norm())

    z = torch.randn(1, args.z_dim)
    times: dict[str, list[float]] = {k: [] for k in ("fwd_ref", "fwd_ours", "step_ref", "step_ours")}
    for _ in range(args.reps):  # alternate, so a busy machine slows both alike
        with torch.no_grad():
            times["fwd_ref"].append(_best(lambda: ref(z, None), 1))
            times["fwd_ours"].append(_best(lambda: ours(z), 1))
        times["step_ref"].append(_best(lambda: torch.autograd.grad(ref.synthesis(ws).square().mean(), ws), 1))
        times["step_ours"].append(_best(lambda: torch.autograd.grad(ours.synthesis(ws).square().mean(), ws), 1))
    best = {k: min(v) for k, v in times.items()}
    out.update({f"{k}_s": round(v, 3) for k, v in best.items()})
    out["forward_speedup"] = round(best["fwd_ref"] / best["fwd_ours"], 2)
    out["step_speedup"] = round(best["step_ref"] / best["step_ours"], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference-repo", type=Path, required=True, help="a checkout of NVlabs/stylegan3")
    ap.add_argument("--cfg", choices=("t", "r"), default="t")
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--channel-base", type=int, default=32768)
    ap.add_argument("--channel-max", type=int, default=512)
    ap.add_argument("--z-dim", type=int, default=512)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--images-only", action="store_true",
                    help="compare the images only (no gradient check, no timing: those need > 24 GB at 1024 px)")
    args = ap.parse_args()
    if not (args.reference_repo / "training" / "networks_stylegan3.py").is_file():
        ap.error(f"--reference-repo {args.reference_repo} has no training/networks_stylegan3.py")
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
