"""``radiologyai web [--host 127.0.0.1] [--port 8080] [--data-dir DIR]``: the browser front-end.

Import-light: trame and trame-slicer load in the handler, so ``radiologyai --help`` works without the ``web`` extra.
"""

from __future__ import annotations

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def configure_parser(parser) -> None:
    from .security import DEFAULT_MAX_UPLOAD_MB

    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes it to the network)",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 8080; 0 picks a free one)")
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="the one server folder the browser may read images and model folders from (default: none)",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=float,
        default=DEFAULT_MAX_UPLOAD_MB,
        metavar="MB",
        help=f"largest upload accepted, in MB (default {DEFAULT_MAX_UPLOAD_MB})",
    )
    parser.set_defaults(handler=run)


def run(args, progress) -> int:
    from RadiologyAICommonLib.cli import require
    from RadiologyAICommonLib.errors import RadiologyAIError

    from .security import DataDir

    if not 0 <= args.port <= 65535:
        raise RadiologyAIError(f"--port {args.port}: not a port number (0-65535)")
    if args.max_upload_mb <= 0:
        raise RadiologyAIError("--max-upload-mb must be positive")
    data_dir = DataDir.from_option(args.data_dir)
    require("trame", "web")
    require("trame_slicer", "web")
    from .app import serve

    serve(args.host, args.port, data_dir, int(args.max_upload_mb * 1e6), debug=args.debug)
    return 0
