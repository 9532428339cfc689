"""The `ldm3d` command: one module per command or command group, each registering its parsers beside its
handlers (`register(subparsers)`, handlers set as the parser's `run` default). Parsing and printing only: the
work is in library functions."""

from __future__ import annotations

import argparse
import logging
import sys

from ..runtime.errors import Ldm3dError
from . import bench, cache, demo, eval, explore, export, generate, inpaint, quantize, scene, serve, upscale, verify

EXIT_USAGE = 2
# the order `ldm3d --help` lists them in
COMMAND_MODULES = (export, verify, generate, inpaint, explore, scene, upscale, serve, demo, quantize, eval, cache,
                   bench)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ldm3d", description="LDM3D text -> RGB + depth on OpenVINO / ONNX Runtime.")
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens inside")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return int(args.run(args))
    except Ldm3dError as e:
        print(f"ldm3d {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"ldm3d {args.command}: interrupted", file=sys.stderr)
        return 130
