"""ldm3d verify: every file of an artifact folder against its manifest's sizes and sha256."""

from __future__ import annotations

import argparse
import sys

from .common import Subparsers, say


def register(sub: Subparsers) -> None:
    v = sub.add_parser("verify", help="check an artifact folder's files against its manifest (size, sha256)",
                       description="Check every file of an artifact folder made by 'ldm3d export' or 'ldm3d quantize' "
                                   "against the sizes and sha256 its manifest.json records, hashing every file (a "
                                   "progress bar for large folders). Each file that is missing, truncated or "
                                   "damaged is named and the exit code is 2; files the manifest does not list are "
                                   "warnings. Pipeline.load and the commands that load a model check sizes always "
                                   "and hashes once per file version (--no-verify turns that off).")
    v.add_argument("folder", help="artifact folder (with manifest.json)")
    v.set_defaults(run=run)


def run(a: argparse.Namespace) -> int:
    from ..runtime.verify import verify_folder

    report = verify_folder(a.folder, remember=False, progress=True)
    for p in report.problems:
        print(f"{'' if p.fatal else 'warning: '}{report.root / p.path}: {p.problem}",
              file=sys.stderr if p.fatal else sys.stdout)
    gb = report.bytes_hashed / 1e9
    if not report.ok:
        bad = sum(p.fatal for p in report.problems)
        print(f"ldm3d verify: {bad} of {report.files} files differ from the manifest: re-export the folder "
              "('ldm3d export') or download it again", file=sys.stderr)
        return 2
    say(f"{report.root}: all {report.files} files match the manifest ({gb:.2f} GB hashed in {report.seconds:.1f}s)")
    return 0
