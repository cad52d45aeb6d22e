"""Video in, video out: frame reading and writing (PyAV), alignment smoothed over time, and a resumable
frame-by-frame inversion and editing runner (``ganinv invert-video`` / ``ganinv edit-video``).

* :mod:`~ganinv.video.frames` — :func:`open_source` (a video file or a folder of frames), :class:`Selection`,
  :class:`VideoWriter` (H.264 MP4 where the installed PyAV has it; fallbacks otherwise);
* :mod:`~ganinv.video.smooth` — Gaussian smoothing over frames of landmark tracks and latent codes, gap filling,
  face following, a jitter measure;
* :mod:`~ganinv.video.runner` — the three passes (scan and smooth the landmarks, invert chunk by chunk with warm
  starts, render the videos) and the manifest that makes a run resumable;
* :mod:`~ganinv.video.edit` — a direction applied to every frame's code of a finished inversion.

PyAV (``pip install av``) is imported only when a video is read or written.
"""

from ganinv.video.frames import FrameRef, FrameSource, Selection, SourceInfo, VideoWriter, open_source
from ganinv.video.smooth import fill_gaps, gaussian_smooth, jitter, smooth_landmarks, smooth_latents

__all__ = ["FrameRef", "FrameSource", "Selection", "SourceInfo", "VideoWriter", "fill_gaps", "gaussian_smooth",
           "jitter", "open_source", "smooth_landmarks", "smooth_latents"]
