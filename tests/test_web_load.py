"""The web app under concurrent loopback clients (gradio_client → ``/invert_file``): every client is answered
with the result a direct call gives, heavy jobs complete in arrival order (one queue, concurrency 1), and a bad
upload from one client is refused without disturbing the others. The larger run is in
``scripts/reliability_report.py``."""

from __future__ import annotations

import os

import pytest

from web_load import run_web_load

pytest.importorskip("gradio_client")


def test_concurrent_clients_are_answered_in_order_with_correct_results(tiny_sg2, tmp_path) -> None:
    r = run_web_load(tiny_sg2, n_clients=4, steps=10, work=tmp_path)
    s = r.summary()
    print("web load:", s)
    assert s["answered"] == 4 and s["errors"] == []
    assert s["fifo"], (r.completion_order, r.finished)
    assert s["matches_direct_call"]
    assert s["psnr_min"] > 10
    for metrics, latent in r.outputs:
        assert latent and latent.endswith(".npz") and os.path.isfile(latent)
        assert metrics["steps"] == 10 and metrics["notes"] == []


def test_api_refuses_bad_uploads_and_keeps_serving(tiny_sg2, tmp_path) -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from gradio_client import Client, handle_file

    from ganinv.web.app import launch
    from ganinv.web.backend import Limits, Workbench
    from ganinv.web.browser import free_port
    from hardening_payloads import png_declared

    wb = Workbench(tiny_sg2, "tiny", tmp_path / "app", Limits(max_steps=20))
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declared(65535, 65535))
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    good = tmp_path / "good.png"
    from ganinv.io import save_image

    save_image(tiny_sg2.sample(1, seed=3)[0].clamp(0, 1), good)
    port = free_port()
    demo = launch(wb, port=port, block=False, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        for path, words in ((bomb, "too large"), (text, "not an image")):
            with pytest.raises(Exception) as exc:
                client.predict(handle_file(str(path)), "optimize", "w+", 10, 0, api_name="/invert_file")
            assert words in str(exc.value), str(exc.value)
        with pytest.raises(Exception, match="greater than maximum value 20"):
            client.predict(handle_file(str(good)), "optimize", "w+", 500, 0, api_name="/invert_file")
        metrics, latent = client.predict(handle_file(str(good)), "optimize", "w+", 10, 0, api_name="/invert_file")
        assert metrics["PSNR (dB)"] > 10 and latent.endswith(".npz")
        client.close()
    finally:
        demo.close()
