"""Pausing Python's cyclic garbage collector while a large document is built or written.

Building a whole dataflow's document makes millions of objects that all stay alive (records,
their attribute sets, names); writing it makes millions more (dicts, strings, XML elements).
Every so many new objects the collector walks the whole heap for cycles, and over such a build
those walks took two thirds of the time while finding nothing. Reference counting still frees
what is dropped; the collector runs again as soon as the block ends.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def paused_gc() -> Iterator[None]:
    """The block runs without the cyclic collector (process-wide: other threads too, for its
    duration); it is re-enabled after, unless it was already off."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
