"""Long-lived state out of the cyclic GC's sight, so a full collection is not a serving pause.

A full collection walks every tracked object that is not frozen: with a model version of a
20k-item shop (about 150k tracked Counters, lists and dicts) that was 45–65 ms of a stopped
gateway, and it came back every few versions, when the objects that new versions added passed
a quarter of those already held. So state loaded at start is frozen once the changelogs are
caught up (and the catalog's vectors are in), and each installed model version right after
its install. Frozen objects are still freed by reference counting when their version is
dropped (the model objects hold no reference cycles: tests/gateway/test_gc_freeze.py). Cyclic
garbage that is already old when a freeze comes is never collected: a young collection first
leaves only what outlived two collections, which this gateway's request path does not make.
"""
from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def freeze_long_lived(why: str, full: bool = False, quiet: bool = False) -> None:
    """Collect (the young generations; all of them with `full`, a pause fit for start-up only),
    then freeze every tracked object; logged unless `quiet`."""
    gc.collect(2 if full else 1)
    gc.freeze()
    if full:  # counting walks every frozen object (88 ms for 3M): at start-up only, not per version
        log.info("%s: %d objects frozen out of the cyclic GC", why, gc.get_freeze_count())
    elif not quiet:
        log.info("%s: its objects frozen out of the cyclic GC", why)
