"""Load on the web app: N loopback clients (``gradio_client``) submit inversions to ``/invert_file`` at once.

Shared by ``tests/test_web_load.py`` (small N) and ``scripts/reliability_report.py`` (larger N). The app is
launched in this process on a free port with the heavy-job concurrency of ``ganinv serve`` (1), so jobs wait in
one queue; each client submits as soon as the previous one's job has joined the queue (plus ``stagger``
seconds), so their arrival order is known, and the result records when each finished, what it returned and
how long it took (latency = finish − submit, upload included).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class LoadResult:
    n_clients: int
    steps: int
    submitted: list[float] = field(default_factory=list)  # seconds since start, per client (arrival order)
    finished: list[float] = field(default_factory=list)
    outputs: list[Any] = field(default_factory=list)  # (metrics dict, latent path) or the exception
    reference: dict[str, Any] = field(default_factory=dict)  # the same inversion run directly, per client
    seconds: float = 0.0

    @property
    def latencies(self) -> list[float]:
        return [f - s for s, f in zip(self.submitted, self.finished)]

    @property
    def completion_order(self) -> list[int]:
        return sorted(range(self.n_clients), key=lambda i: self.finished[i])

    def percentile(self, q: float) -> float:
        xs = sorted(self.latencies)
        if len(xs) == 1:
            return xs[0]
        return statistics.quantiles(xs, n=100, method="inclusive")[int(q) - 1] if q < 100 else xs[-1]

    def summary(self) -> dict[str, Any]:
        ok = [o for o in self.outputs if isinstance(o, tuple)]
        psnrs = [o[0].get("PSNR (dB)") for o in ok]
        return {"clients": self.n_clients, "steps": self.steps, "answered": len(ok),
                "errors": [f"{type(o).__name__}: {o}" for o in self.outputs if not isinstance(o, tuple)],
                "fifo": self.completion_order == list(range(self.n_clients)),
                "p50_s": round(self.percentile(50), 3), "p90_s": round(self.percentile(90), 3),
                "max_s": round(max(self.latencies), 3), "wall_s": round(self.seconds, 2),
                "throughput_per_min": round(60 * len(ok) / self.seconds, 1) if self.seconds else None,
                "psnr_min": min(psnrs) if psnrs else None, "psnr_max": max(psnrs) if psnrs else None,
                "matches_direct_call": all(abs(o[0]["PSNR (dB)"] - self.reference[str(i)]) < 1e-3
                                           for i, o in enumerate(self.outputs) if isinstance(o, tuple))}


def run_web_load(G: Any, n_clients: int = 4, steps: int = 10, stagger: float = 0.05,
                 work: Path | None = None, timeout: float = 600) -> LoadResult:
    """Launch the app for ``G``, let ``n_clients`` clients each invert their own image; returns the timings."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from gradio_client import Client, handle_file
    from gradio_client.utils import Status

    from ganinv.io import save_image
    from ganinv.web.app import launch
    from ganinv.web.backend import Limits, Workbench
    from ganinv.web.browser import free_port

    work = Path(work or tempfile.mkdtemp(prefix="ganinv-load-"))
    wb = Workbench(G, "load-test", work / "app", Limits(max_steps=max(steps, 200)))
    images = []
    for i in range(n_clients):
        images.append(save_image(G.sample(1, seed=100 + i)[0].clamp(0, 1), work / "in" / f"client{i}.png"))
    result = LoadResult(n_clients, steps)
    for i, path in enumerate(images):  # the answer each client should get
        image, _ = wb.read_image(path, path.name)
        result.reference[str(i)] = wb.invert(image, method="optimize", steps=steps, seed=i).metrics["PSNR (dB)"]
    port = free_port()
    demo = launch(wb, port=port, block=False, quiet=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        clients = [Client(url, verbose=False) for _ in range(n_clients)]
        t0 = time.perf_counter()
        jobs = []
        joined = {Status.IN_QUEUE, Status.SENDING_DATA, Status.PROCESSING, Status.ITERATING, Status.PROGRESS,
                  Status.FINISHED, Status.LOG}
        for i, (client, path) in enumerate(zip(clients, images)):
            job = client.submit(handle_file(str(path)), "optimize", G.default_space, steps, i,
                                api_name="/invert_file")
            result.submitted.append(time.perf_counter() - t0)
            jobs.append(job)
            # the next client submits once this one is in the queue (its upload done), so arrival order is known
            wait_until = time.perf_counter() + 60
            while job.status().code not in joined and not job.done() and time.perf_counter() < wait_until:
                time.sleep(0.005)
            time.sleep(stagger)
        result.finished = [0.0] * n_clients
        result.outputs = [None] * n_clients
        pending = set(range(n_clients))
        deadline = time.perf_counter() + timeout
        while pending and time.perf_counter() < deadline:
            for i in list(pending):
                if jobs[i].done():
                    result.finished[i] = time.perf_counter() - t0
                    try:
                        result.outputs[i] = tuple(jobs[i].result())
                    except Exception as exc:  # noqa: BLE001 - reported
                        result.outputs[i] = exc
                    pending.discard(i)
            time.sleep(0.005)
        for i in pending:
            result.finished[i] = time.perf_counter() - t0
            result.outputs[i] = TimeoutError(f"client {i} got no answer in {timeout:.0f} s")
        result.seconds = time.perf_counter() - t0
        for client in clients:
            client.close()
    finally:
        demo.close()
    return result
