"""The gradio page: Invert, Restore, Edit, Photo and Models tabs over one :class:`~ganinv.web.backend.Workbench`.

Uploads arrive as files the web server wrote under its own temporary names; the page never turns a
string a user typed into a path (examples are chosen by name from a fixed table). Long jobs (invert,
restore, inverting for the Edit tab) share one queue with a concurrency limit; slider renders run in
their own group so that moving a slider never waits behind someone's inversion.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ganinv.errors import GaninvError, InputError
from ganinv.web.backend import (
    Code,
    Workbench,
    card_markdown,
    describe_metrics,
    to_display,
)

#: Labels of the direction families on the page.
FAMILY_LABELS = {"pca": "GANSpace (PCA of W)", "sefa": "SeFa (closed form)", "towards": "InterFaceGAN: towards digit"}
HEAVY = "heavy-jobs"
LIGHT = "slider-renders"
TASK_HELP = {
    "inpaint": "missing pixels: a centred hole (box) or random pixels kept (ratio)",
    "sr": "super-resolution from a 1/factor-size image",
    "deblur": "Gaussian blur of the given σ (pixels)",
    "denoise": "additive Gaussian noise of the given σ",
    "colorize": "colour from a grey image",
    "cs": "compressed sensing: m random Gaussian measurements",
    "phase": "phase retrieval: Fourier magnitudes only",
}


def _gradio() -> Any:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    return gr


def _examples(wb: Workbench) -> dict[str, Path]:
    """Example images by display name: the bundled digits for digit models, else seeded samples of the model."""
    from ganinv.cli.demo import example_digits

    if tuple(wb.G.image_shape) == (1, 32, 32):
        found = {p.stem.replace("_", " "): p for p in example_digits()}
        if found:
            return found
        from ganinv.data import mnist

        x, labels = mnist("test")
        picks = [int((labels == d).nonzero()[0]) for d in range(10)]
        images = x[picks]
        names = [f"digit {d}" for d in range(10)]
    else:
        import torch

        with torch.no_grad():
            images = wb.G.sample(6, seed=0).cpu()
        names = [f"sample {i}" for i in range(len(images))]
    from ganinv.io import save_image

    folder = wb.work_dir / "examples"
    return {n: save_image(img, folder / f"{n.replace(' ', '_')}.png") for n, img in zip(names, images, strict=True)}


def _user_error(exc: Exception) -> Exception:
    """Our errors become the page's error message; anything else is reported without server details."""
    gr = _gradio()
    if isinstance(exc, GaninvError):
        return gr.Error(str(exc), print_exception=False)
    return gr.Error(f"something went wrong on the server ({type(exc).__name__}); the job was dropped",
                    print_exception=True)


def build_app(wb: Workbench, *, title: str | None = None) -> Any:
    """The gradio ``Blocks`` for ``wb`` (not launched)."""
    gr = _gradio()
    examples = _examples(wb)
    names = list(examples)

    def source_from_upload(path: str | None) -> tuple[Any, Any, str]:
        if path is None:
            return None, None, ""
        shown = Path(path).name
        try:
            image, notes = wb.read_image(path, shown)
        except Exception as exc:  # noqa: BLE001
            raise _user_error(exc) from None
        return {"path": str(path), "name": shown}, to_display(image), "; ".join(notes)

    def source_from_example(name: str | None) -> tuple[Any, Any, str]:
        if not name:
            return None, None, ""
        if name not in examples:
            raise gr.Error(f"unknown example {name!r}")
        image, notes = wb.read_image(examples[name], name)
        return {"path": str(examples[name]), "name": name}, to_display(image), "; ".join(notes)

    def read_source(source: dict[str, str] | None) -> tuple[Any, str]:
        if not source:
            raise InputError("no image yet: upload one or pick an example first")
        image, _ = wb.read_image(source["path"], source["name"])
        return image, source["name"]

    def source_widgets(prefix: str, label: str) -> tuple[Any, Any, Any, Any, Any]:
        upload = gr.File(label=f"{label}: upload an image", type="filepath", elem_id=f"{prefix}-upload")
        example = gr.Dropdown(choices=names, value=None, label="…or pick an example", elem_id=f"{prefix}-example")
        preview = gr.Image(label=f"{label} (as the model sees it)", interactive=False, height=200,
                           elem_id=f"{prefix}-target")
        notes = gr.Markdown(elem_id=f"{prefix}-notes")
        state = gr.State(None)
        upload.upload(source_from_upload, upload, [state, preview, notes], concurrency_id=LIGHT,
                      concurrency_limit=4)
        example.change(source_from_example, example, [state, preview, notes], concurrency_id=LIGHT,
                       concurrency_limit=4)
        return upload, example, preview, notes, state

    with gr.Blocks(title=title or f"ganinv · {wb.name}", analytics_enabled=False) as demo:
        gr.Markdown(f"## ganinv — GAN inversion with `{wb.name}`\n"
                    "Invert an image into the generator's latent space, restore a degraded one with the "
                    "generator as prior, or edit it through its code. Everything runs on this server.")
        with gr.Tabs():
            # ---------------------------------------------------------------- Invert
            with gr.Tab("Invert", id="invert"):
                with gr.Row():
                    with gr.Column():
                        _, _, _, _, inv_source = source_widgets("invert", "Image")
                        method = gr.Dropdown(wb.methods, value="optimize", label="method", elem_id="invert-method")
                        space = gr.Dropdown(wb.spaces, value=wb.G.default_space, label="latent space (optimize)",
                                            elem_id="invert-space")
                        steps = gr.Slider(10, wb.limits.max_steps, value=200, step=10, label="steps",
                                          elem_id="invert-steps")
                        seed = gr.Number(0, precision=0, label="seed", elem_id="invert-seed")
                        run = gr.Button("Invert", variant="primary", elem_id="invert-run")
                    with gr.Column():
                        recon = gr.Image(label="reconstruction", interactive=False, height=256,
                                         elem_id="invert-recon")
                        errmap = gr.Image(label="error |target − reconstruction|", interactive=False, height=256,
                                          elem_id="invert-error")
                        metrics = gr.Markdown(elem_id="invert-metrics")
                        curve = gr.Image(label="loss curve", interactive=False, type="filepath",
                                         elem_id="invert-curve")
                        download = gr.File(label="latent (.npz)", interactive=False, file_count="multiple",
                                           elem_id="invert-download")

                def do_invert(source: Any, method: str, space: str, steps: float, seed: float,
                              progress: Any = gr.Progress()) -> tuple[Any, ...]:
                    try:
                        image, name = read_source(source)
                        out = wb.invert(image, method=method, space=space, steps=int(steps), seed=int(seed or 0),
                                        name=name, progress=lambda f, msg: progress(f, desc=msg))
                    except Exception as exc:  # noqa: BLE001
                        raise _user_error(exc) from None
                    return (out.reconstruction, out.error_map,
                            describe_metrics(out.metrics) + ("\n\n" + "; ".join(out.notes) if out.notes else ""),
                            str(out.curve) if out.curve else None, [str(p) for p in out.files])

                run.click(do_invert, [inv_source, method, space, steps, seed],
                          [recon, errmap, metrics, curve, download], concurrency_id=HEAVY, api_name="invert")

                # For API clients (gradio_client): /invert reads the page's state, which a client does not have;
                # /invert_file takes the image itself (an upload the server writes, read by the same safe path)
                # and returns the metrics and the latent. It waits in the same queue as the page's jobs.
                api_file = gr.File(type="filepath", visible=False)
                api_metrics, api_latent = gr.JSON(visible=False), gr.File(visible=False)

                def do_invert_file(path: str | None, method: str, space: str, steps: float, seed: float,
                                   progress: Any = gr.Progress()) -> tuple[dict[str, Any], str | None]:
                    try:
                        image, notes = wb.read_image(path, Path(path).name if path else "the upload")
                        out = wb.invert(image, method=method, space=space or None, steps=int(steps),
                                        seed=int(seed or 0), name=Path(path).stem if path else "image",
                                        progress=lambda f, msg: progress(f, desc=msg))
                    except Exception as exc:  # noqa: BLE001
                        raise _user_error(exc) from None
                    latent = next((str(p) for p in out.files if p.suffix == ".npz"), None)
                    return {**out.metrics, "notes": notes + out.notes}, latent

                gr.Button(visible=False).click(do_invert_file, [api_file, method, space, steps, seed],
                                               [api_metrics, api_latent], concurrency_id=HEAVY,
                                               api_name="invert_file")

            # ---------------------------------------------------------------- Restore
            with gr.Tab("Restore", id="restore"):
                with gr.Row():
                    with gr.Column():
                        _, _, _, _, res_source = source_widgets("restore", "Image")
                        simulate = gr.Checkbox(True, label="simulate degradation (degrade the clean image first; "
                                                           "off: the upload is the degraded observation)",
                                               elem_id="restore-simulate")
                        task = gr.Dropdown(wb.tasks, value="inpaint", label="task", elem_id="restore-task")
                        task_help = gr.Markdown(TASK_HELP["inpaint"])
                        inpaint_mode = gr.Radio(["centred box", "random pixels"], value="centred box",
                                                label="inpaint: missing region", elem_id="restore-inpaint-mode")
                        box_side = gr.Slider(2, wb.G.image_shape[1] - 2, value=wb.G.image_shape[1] // 2, step=1,
                                             label="inpaint: hole side (px)", elem_id="restore-box")
                        ratio = gr.Slider(0.02, 0.98, value=0.3, step=0.01, label="inpaint: fraction of pixels kept",
                                          visible=False, elem_id="restore-ratio")
                        factor = gr.Dropdown([2, 4, 8], value=4, label="sr: factor", visible=False,
                                             elem_id="restore-factor")
                        blur = gr.Slider(0.3, 4.0, value=1.5, step=0.1, label="deblur: blur σ (px)", visible=False)
                        noise_level = gr.Slider(0.01, 0.8, value=0.2, step=0.01, label="denoise: noise σ",
                                                visible=False)
                        m = gr.Slider(1, wb.G.image_shape[0] * wb.G.image_shape[1] * wb.G.image_shape[2], value=100,
                                      step=1, label="cs: measurements m", visible=False)
                        oversampling = gr.Slider(1, 4, value=2, step=1, label="phase: oversampling", visible=False)
                        noise_sigma = gr.Slider(0.0, 0.3, value=0.0, step=0.005,
                                                label="measurement noise σ (simulated)", elem_id="restore-noise")
                        hyps = gr.Slider(1, wb.limits.max_hypotheses, value=3, step=1, label="hypotheses K",
                                         elem_id="restore-k")
                        rmethod = gr.Dropdown([m_ for m_ in ("optimize", "multicode") if m_ in wb.methods],
                                              value="optimize", label="method (multicode = mGANprior)")
                        rsteps = gr.Slider(10, wb.limits.max_steps, value=200, step=10, label="steps per hypothesis",
                                           elem_id="restore-steps")
                        rseed = gr.Number(0, precision=0, label="seed")
                        rrun = gr.Button("Restore", variant="primary", elem_id="restore-run")
                    with gr.Column():
                        observation = gr.Image(label="observation", interactive=False, height=200,
                                               elem_id="restore-observation")
                        gallery = gr.Gallery(label="hypotheses, best data fit first", columns=4, height="auto",
                                             elem_id="restore-gallery")
                        baseline = gr.Image(label="classical baseline", interactive=False, height=200,
                                            elem_id="restore-baseline")
                        rmetrics = gr.Markdown(elem_id="restore-metrics")
                        rdownload = gr.File(label="observation (.npz, reusable with `ganinv restore`)",
                                            interactive=False, elem_id="restore-download")

                option_widgets = [inpaint_mode, box_side, ratio, factor, blur, noise_level, m, oversampling,
                                  noise_sigma]

                def show_options(task: str, mode: str) -> list[Any]:
                    visible = {
                        "inpaint": {inpaint_mode, box_side if mode == "centred box" else ratio, noise_sigma},
                        "sr": {factor, noise_sigma}, "deblur": {blur, noise_sigma}, "denoise": {noise_level},
                        "colorize": {noise_sigma}, "cs": {m, noise_sigma}, "phase": {oversampling, noise_sigma},
                    }.get(task, set())
                    return [gr.update(visible=w in visible) for w in option_widgets] + [TASK_HELP.get(task, "")]

                task.change(show_options, [task, inpaint_mode], option_widgets + [task_help], queue=False)
                inpaint_mode.change(show_options, [task, inpaint_mode], option_widgets + [task_help], queue=False)

                def task_options(task: str, mode: str, side: float, ratio: float, factor: Any, blur: float,
                                 level: float, m: float, oversampling: float, sigma: float) -> dict[str, Any]:
                    H = wb.G.image_shape[1]
                    if task == "inpaint":
                        if mode == "random pixels":
                            return {"ratio": float(ratio), "noise_sigma": float(sigma)}
                        s = int(side)
                        return {"box": ((H - s) // 2, (H - s) // 2, s, s), "noise_sigma": float(sigma)}
                    return {"sr": {"factor": int(factor), "noise_sigma": float(sigma)},
                            "deblur": {"sigma": float(blur), "noise_sigma": float(sigma)},
                            "denoise": {"sigma": float(level)},
                            "colorize": {"noise_sigma": float(sigma)},
                            "cs": {"m": int(m), "noise_sigma": float(sigma)},
                            "phase": {"oversampling": int(oversampling), "noise_sigma": float(sigma)}}.get(task, {})

                def do_restore(source: Any, simulate: bool, task: str, mode: str, side: float, ratio: float,
                               factor: Any, blur: float, level: float, m: float, oversampling: float, sigma: float,
                               k: float, method: str, steps: float, seed: float,
                               progress: Any = gr.Progress()) -> tuple[Any, ...]:
                    try:
                        opts = task_options(task, mode, side, ratio, factor, blur, level, m, oversampling, sigma)
                        if not source:
                            raise InputError("no image yet: upload one or pick an example first")
                        image = None
                        if simulate:
                            image, _ = read_source(source)
                        out = wb.restore(image, task=task, options=opts, simulate=bool(simulate),
                                         observation_path=None if simulate else source["path"],
                                         shown=source["name"], hypotheses=int(k), method=method, steps=int(steps),
                                         seed=int(seed or 0), progress=lambda f, msg: progress(f, desc=msg))
                    except Exception as exc:  # noqa: BLE001
                        raise _user_error(exc) from None
                    text = describe_metrics(out.metrics)
                    if out.notes:
                        text += "\n\n" + "; ".join(out.notes)
                    return (out.observation, out.hypotheses, out.baseline[0] if out.baseline else None,
                            text + (f"\n\nbaseline: {out.baseline[1]}" if out.baseline else ""),
                            str(out.observation_file))

                rrun.click(do_restore, [res_source, simulate, task, inpaint_mode, box_side, ratio, factor, blur,
                                        noise_level, m, oversampling, noise_sigma, hyps, rmethod, rsteps, rseed],
                           [observation, gallery, baseline, rmetrics, rdownload], concurrency_id=HEAVY,
                           api_name="restore")

            # ---------------------------------------------------------------- Edit
            with gr.Tab("Edit", id="edit"):
                code_a, code_b = gr.State(None), gr.State(None)
                num_ws = wb.num_ws or 1
                with gr.Row():
                    with gr.Column():
                        _, _, _, _, edit_source = source_widgets("edit", "Image A")
                        emethod = gr.Dropdown(wb.edit_methods, value="encoder" if wb.has_encoder else "optimize",
                                              label="inversion method", elem_id="edit-method")
                        esteps = gr.Slider(10, wb.limits.max_steps, value=200, step=10,
                                           label="steps (optimize / hybrid)")
                        invert_a = gr.Button("Invert A", variant="primary", elem_id="edit-invert")
                    with gr.Column():
                        edited = gr.Image(label="edited", interactive=False, height=256, elem_id="edit-output")
                        family = gr.Radio([(FAMILY_LABELS[f], f) for f in wb.families],
                                          value=wb.families[0] if wb.families else None,
                                          label="direction", elem_id="edit-family")
                        component = gr.Slider(0, 9, value=0, step=1, label="component (PCA/SeFa) or digit",
                                              elem_id="edit-component")
                        strength = gr.Slider(-6, 6, value=0, step=0.25, label="strength (σ of the codes along it)",
                                             elem_id="edit-strength")
                        with gr.Row(visible=wb.num_ws is not None):
                            first = gr.Slider(0, num_ws - 1, value=0, step=1, label="first layer",
                                              elem_id="edit-first")
                            last = gr.Slider(0, num_ws - 1, value=num_ws - 1, step=1, label="last layer",
                                             elem_id="edit-last")
                        keep = gr.Button("Keep this edit (stack another on top)", elem_id="edit-keep")
                        edit_status = gr.Markdown(elem_id="edit-status")
                with gr.Accordion("Interpolation and style mixing with a second image", open=False):
                    with gr.Row():
                        with gr.Column():
                            _, _, _, _, edit_source_b = source_widgets("edit-b", "Image B")
                            invert_b = gr.Button("Invert B", elem_id="edit-invert-b")
                        with gr.Column():
                            t = gr.Slider(0, 1, value=0.5, step=0.05, label="interpolation A → B",
                                          elem_id="edit-t")
                            interp = gr.Image(label="interpolated", interactive=False, height=200,
                                              elem_id="edit-interp")
                            mix_from = gr.Slider(0, num_ws - 1, value=min(4, num_ws - 1), step=1,
                                                 label="style mixing: layers from here on come from B",
                                                 visible=wb.num_ws is not None, elem_id="edit-mix-from")
                            mixed = gr.Image(label="style-mixed", interactive=False, height=200,
                                             visible=wb.num_ws is not None, elem_id="edit-mixed")

                def do_invert_code(source: Any, method: str, steps: float,
                                   progress: Any = gr.Progress()) -> tuple[Any, Any, str]:
                    from ganinv.cli.latents import EDIT_PRIOR

                    try:
                        image, name = read_source(source)
                        out = wb.invert(image, method=method, steps=int(steps), name=name,
                                        prior=EDIT_PRIOR, progress=lambda f, msg: progress(f, desc=msg))
                    except Exception as exc:  # noqa: BLE001
                        raise _user_error(exc) from None
                    psnr = out.metrics.get("PSNR (dB)")
                    return out.code, out.reconstruction, (f"{name} inverted with {method} "
                                                          f"({out.code.space}, PSNR {psnr} dB)")

                def do_edit(code: Code | None, family: str, k: float, s: float, lo: float, hi: float) -> Any:
                    if code is None:
                        return None
                    try:
                        return wb.edit(code, family, int(k), float(s), int(lo), int(hi))
                    except Exception as exc:  # noqa: BLE001
                        raise _user_error(exc) from None

                def do_keep(code: Code | None, family: str, k: float, s: float, lo: float,
                            hi: float) -> tuple[Any, Any, str]:
                    try:
                        new = wb.edited_code(code, family, int(k), float(s), int(lo), int(hi))
                        name = wb.direction(family, int(k)).name
                    except Exception as exc:  # noqa: BLE001
                        raise _user_error(exc) from None
                    return new, 0, f"kept {name} × {float(s):g}; the slider now moves from the edited image"

                invert_a.click(do_invert_code, [edit_source, emethod, esteps], [code_a, edited, edit_status],
                               concurrency_id=HEAVY)
                edit_inputs = [code_a, family, component, strength, first, last]
                for widget in (family, component, strength, first, last):
                    widget.change(do_edit, edit_inputs, edited, concurrency_id=LIGHT, concurrency_limit=4,
                                  trigger_mode="always_last", show_progress="hidden")
                keep.click(do_keep, edit_inputs, [code_a, strength, edit_status], concurrency_id=LIGHT)

                def do_interp(a: Code | None, b: Code | None, tt: float) -> Any:
                    if a is None or b is None:
                        return None
                    try:
                        return wb.interpolate(a, b, float(tt))
                    except Exception as exc:  # noqa: BLE001
                        raise _user_error(exc) from None

                def do_mix(a: Code | None, b: Code | None, k: float) -> Any:
                    if a is None or b is None or wb.num_ws is None:
                        return None
                    try:
                        return wb.mix(a, b, int(k))
                    except Exception as exc:  # noqa: BLE001
                        raise _user_error(exc) from None

                def after_b(a: Code | None, b: Code | None, tt: float, k: float) -> tuple[Any, Any]:
                    return do_interp(a, b, tt), do_mix(a, b, k)

                invert_b.click(do_invert_code, [edit_source_b, emethod, esteps], [code_b, interp, edit_status],
                               concurrency_id=HEAVY).then(after_b, [code_a, code_b, t, mix_from], [interp, mixed],
                                                          concurrency_id=LIGHT)
                t.change(do_interp, [code_a, code_b, t], interp, concurrency_id=LIGHT, trigger_mode="always_last",
                         show_progress="hidden")
                mix_from.change(do_mix, [code_a, code_b, mix_from], mixed, concurrency_id=LIGHT,
                                trigger_mode="always_last", show_progress="hidden")

            # ---------------------------------------------------------------- Photo
            with gr.Tab("Photo", id="photo"):
                photo_job, face_index, photo_code, pasted = gr.State(None), gr.State(None), gr.State(None), \
                    gr.State(None)
                rgb_square = wb.G.image_shape[0] == 3 and wb.G.image_shape[1] == wb.G.image_shape[2]
                with gr.Row():
                    with gr.Column():
                        photo_upload = gr.File(label="Photo: upload an image (full size)", type="filepath",
                                               elem_id="photo-upload")
                        framing = gr.Radio([("face (detect, FFHQ-align)", "face"),
                                            ("center (largest centred square)", "center")],
                                           value="face" if rgb_square else "center", label="framing",
                                           elem_id="photo-framing")
                        find = gr.Button("Find faces", elem_id="photo-find")
                        faces = gr.Gallery(label="framed faces (click one; the largest is chosen)", columns=4,
                                           height="auto", allow_preview=False, elem_id="photo-faces")
                        photo_notes = gr.Markdown(elem_id="photo-notes")
                        pmethod = gr.Dropdown(wb.edit_methods, value="encoder" if wb.has_encoder else "optimize",
                                              label="inversion method", elem_id="photo-method")
                        psteps = gr.Slider(10, wb.limits.max_steps, value=200, step=10,
                                           label="steps (optimize / hybrid)", elem_id="photo-steps")
                        pinvert = gr.Button("Invert the chosen face", variant="primary", elem_id="photo-invert")
                    with gr.Column():
                        pfamily = gr.Radio([(FAMILY_LABELS[f], f) for f in wb.families],
                                           value=wb.families[0] if wb.families else None,
                                           label="direction", elem_id="photo-family")
                        pcomponent = gr.Slider(0, 9, value=0, step=1, label="component (PCA/SeFa) or digit",
                                               elem_id="photo-component")
                        pstrength = gr.Slider(-6, 6, value=0, step=0.25, label="strength (σ of the codes along it)",
                                              elem_id="photo-strength")
                        with gr.Row(visible=wb.num_ws is not None):  # w+ rows moved: coarse = pose/shape, fine = colour
                            pfirst = gr.Slider(0, num_ws - 1, value=0, step=1, label="first layer",
                                               elem_id="photo-first")
                            plast = gr.Slider(0, num_ws - 1, value=num_ws - 1, step=1, label="last layer",
                                              elem_id="photo-last")
                        color_match = gr.Checkbox(False, label="match the photo's colours around the face",
                                                  elem_id="photo-color-match")
                        photo_out = gr.Image(label="the photo with the edited face pasted back", type="pil",
                                             format="png", interactive=False, elem_id="photo-output")
                        psave = gr.Button("Save as PNG", elem_id="photo-save")
                        photo_file = gr.File(label="edited photo (.png)", interactive=False,
                                             elem_id="photo-download")
                        photo_status = gr.Markdown(elem_id="photo-status")

                def do_read_photo(path: str | None) -> tuple[Any, Any, Any, Any, Any, Any, str]:
                    if path is None:
                        return None, [], None, None, None, None, ""
                    try:
                        job = wb.read_photo(path, Path(path).name)
                    except Exception as exc:  # noqa: BLE001
                        raise _user_error(exc) from None
                    w, h = job.photo.size
                    text = f"{job.name}: {w}×{h} px" + ("; " + "; ".join(job.notes) if job.notes else "")
                    return job, [], None, None, None, None, text + "; press 'Find faces'"

                def do_find(job: Any, framing: str) -> tuple[Any, Any, Any, Any, str]:
                    from ganinv.web.photo import describe_faces

                    try:
                        wb.detect_faces(job, framing)
                    except Exception as exc:  # noqa: BLE001
                        raise _user_error(exc) from None
                    n = len(job.faces)
                    return (job, describe_faces(job), 0, None,
                            f"{n} framed ({'; '.join(f.note for f in job.faces[:3])}); face #1 is chosen")

                def do_choose(evt: Any) -> tuple[int, Any, str]:
                    return int(evt.index), None, f"face #{int(evt.index) + 1} chosen: invert it"

                do_choose.__annotations__["evt"] = gr.SelectData  # gradio passes the click by this annotation

                def do_photo_edit(job: Any, index: Any, code: Code | None, family: str, k: float, s: float,
                                  lo: float, hi: float, match: bool) -> tuple[Any, Any]:
                    if code is None or job is None:
                        return None, None
                    try:
                        image = wb.edit_and_paste(job, index, code, family, int(k), float(s), int(lo), int(hi),
                                                  color_match=bool(match))
                    except Exception as exc:  # noqa: BLE001
                        raise _user_error(exc) from None
                    return image, image

                def do_invert_face(job: Any, index: Any, method: str, steps: float, family: str, k: float,
                                   s: float, lo: float, hi: float, match: bool,
                                   progress: Any = gr.Progress()) -> tuple[Any, ...]:
                    from ganinv.cli.latents import EDIT_PRIOR

                    try:
                        out = wb.invert_face(job, index, method=method, steps=int(steps), prior=EDIT_PRIOR,
                                             progress=lambda f, msg: progress(f, desc=msg))
                    except Exception as exc:  # noqa: BLE001
                        raise _user_error(exc) from None
                    image, _ = do_photo_edit(job, index, out.code, family, k, s, lo, hi, match)
                    psnr = out.metrics.get("PSNR (dB)")
                    return (out.code, image, image, f"face #{int(index) + 1} inverted with {method} "
                            f"({out.code.space}, PSNR {psnr} dB); move the strength slider to edit it")

                def do_save(image: Any) -> str:
                    try:
                        return str(wb.save_photo(image))
                    except Exception as exc:  # noqa: BLE001
                        raise _user_error(exc) from None

                photo_upload.upload(do_read_photo, photo_upload,
                                    [photo_job, faces, face_index, photo_code, pasted, photo_out, photo_notes],
                                    concurrency_id=LIGHT, concurrency_limit=4)
                find.click(do_find, [photo_job, framing], [photo_job, faces, face_index, photo_code, photo_notes],
                           concurrency_id=HEAVY)
                faces.select(do_choose, None, [face_index, photo_code, photo_status], queue=False)
                pinvert.click(do_invert_face, [photo_job, face_index, pmethod, psteps, pfamily, pcomponent,
                                               pstrength, pfirst, plast, color_match],
                              [photo_code, pasted, photo_out, photo_status], concurrency_id=HEAVY)
                photo_edit_inputs = [photo_job, face_index, photo_code, pfamily, pcomponent, pstrength, pfirst, plast,
                                     color_match]
                for widget in (pfamily, pcomponent, pstrength, pfirst, plast, color_match):
                    widget.change(do_photo_edit, photo_edit_inputs, [pasted, photo_out], concurrency_id=LIGHT,
                                  concurrency_limit=4, trigger_mode="always_last", show_progress="hidden")
                psave.click(do_save, pasted, photo_file, concurrency_id=LIGHT)

            # ---------------------------------------------------------------- Models
            with gr.Tab("Models", id="models"):
                gr.Markdown(card_markdown(wb.model_card()), elem_id="models-card")
                gr.Markdown(bundled_models_markdown(), elem_id="models-bundled")
    return demo


def bundled_models_markdown() -> str:
    """The bundled models as a Markdown table (name, kind, resolution, size)."""
    from ganinv import zoo
    from ganinv.cli.common import human_size

    lines = ["**Bundled models** (`--model NAME`)", "", "| name | kind | architecture | size |", "|---|---|---|---|"]
    for name in zoo.available():
        cfg = zoo.describe(name)
        folder = zoo.model_dir(name)
        size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        lines.append(f"| `{name}` | {cfg.get('kind', '?')} | {cfg.get('config', {}).get('arch', '?')} | "
                     f"{human_size(size)} |")
    return "\n".join(lines)


def launch(wb: Workbench, *, host: str = "127.0.0.1", port: int = 7860, concurrency: int = 1,
           max_upload_mb: float | None = None, block: bool = True, quiet: bool = False) -> Any:
    """Build and start the app; returns the running ``Blocks`` (call ``.close()`` to stop it).

    ``concurrency``: inversion/restoration jobs run at once (the rest wait in the queue, in order).
    """
    if concurrency < 1:
        raise InputError(f"concurrency must be ≥ 1, got {concurrency}")
    demo = build_app(wb)
    demo.queue(default_concurrency_limit=concurrency, max_size=64)
    limit = max_upload_mb if max_upload_mb is not None else wb.limits.max_upload_mb
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=quiet, show_error=False,
                max_file_size=int(limit * 1024 * 1024), share=False, inbrowser=False)
    return demo


__all__ = ["build_app", "bundled_models_markdown", "launch"]

