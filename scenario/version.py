"""The library's version, in a module of its own at the bottom of the layers.

``scenario.__version__`` re-exports it; code inside the package that needs the version (the
tracer names itself with it) reads it from here, so it never imports the package's front door.
"""

from __future__ import annotations

__version__ = "0.1.0"
