"""``ganinv serve``: a gradio web app to invert, restore and edit images in the browser.

* :mod:`ganinv.web.backend` — the work (safe upload reading, inversion, restoration, edits), gradio-free;
* :mod:`ganinv.web.app` — the page (tabs Invert, Restore, Edit, Models) and :func:`~ganinv.web.app.launch`.

gradio is imported only when the page is built.
"""

from ganinv.web.backend import Code, Limits, Workbench

__all__ = ["Code", "Limits", "Workbench"]
