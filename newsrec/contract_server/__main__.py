"""`python3 -m newsrec.contract_server --port 8080`: serve the contract server in the foreground."""
from __future__ import annotations

import argparse

from newsrec.contract_server.server import serve_forever


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python3 -m newsrec.contract_server",
                                     description="A strict local stand-in for Vespa's HTTP API (not Vespa).")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--hold-s", type=float, default=3.0, help="how long a 'timeout' fault holds a response")
    args = parser.parse_args(argv)
    serve_forever(args.port, hold_s=args.hold_s)


if __name__ == "__main__":
    main()
