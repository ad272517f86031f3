# _which_toolbar.py — the ImportError a toolbar panel module raises when its toolbar is not the one
# installed. fastapi-debug-toolbar and litestar-debug-toolbar both install the top-level package
# `debug_toolbar`, so "debug_toolbar is importable" says nothing: the error names the distribution
# that is installed and the panel that goes with it.
from __future__ import annotations

import importlib.metadata


def wrong_toolbar(module: str, needs: str, other: str, use: str) -> ImportError:
    """The error of `module`, the panel for toolbar distribution `needs`, when it cannot import it:
    `other` (the other toolbar) is installed, whose panel is `use`, or neither is."""
    try:
        version = importlib.metadata.version(other)
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version:
        return ImportError(f"{module} is the panel for {needs}, but the debug_toolbar installed here is "
                           f"{other} {version}: use {use}")
    return ImportError(f"{module} needs {needs} (pip install {needs}); for {other} use {use}")
