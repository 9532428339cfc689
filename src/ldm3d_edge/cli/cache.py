"""ldm3d cache: what the cache folder holds (embedded exports, compiled blobs, bench models); clearing it."""

from __future__ import annotations

import argparse
import json

from ..cache import CLEAR_KINDS
from .common import Subparsers


def register(sub: Subparsers) -> None:
    ca = sub.add_parser("cache", help="what the cache folder holds (embedded exports, compiled blobs); clearing it",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="List the cache folder ($LDM3D_EDGE_CACHE, else ~/.cache/ldm3d-edge) by kind and "
                                    "size, or clear one kind:\n" + "\n".join(f"  {k:<9} {v}"
                                                                              for k, v in CLEAR_KINDS.items()))
    ca.add_argument("--clear", choices=list(CLEAR_KINDS), help="remove this kind of entry")
    ca.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ca.set_defaults(run=run)


def run(a: argparse.Namespace) -> int:
    from ..cache import cache_entries, clear, human
    from ..runtime.constants import cache_base

    entries = clear(a.clear) if a.clear else cache_entries()
    total = sum(e.bytes for e in entries)
    if a.json:
        print(json.dumps({"cache": str(cache_base()), "cleared": a.clear, "total_bytes": total,
                          "entries": [e.to_json() for e in entries]}, indent=2))
        return 0
    print(f"{'removed' if a.clear else 'cache'}: {cache_base()} ({human(total)}{' freed' if a.clear else ''})")
    for e in entries:
        note = " (stale: another model version)" if e.stale and not a.clear else ""
        print(f"  {human(e.bytes):>9}  {e.kind:<20} {e.path}{note}")
    return 0
