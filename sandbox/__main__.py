"""Command line: ``python -m sandbox`` runs the sandbox API and file server until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .server import SandboxServer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--port", type=int, default=8787, help="API port (0 picks a free one; default 8787)")
    parser.add_argument("--file-port", type=int, default=0, help="file server port (default: a free one)")
    parser.add_argument("--job-seconds", type=float, default=3.0, help="how long each job takes (default 3)")
    parser.add_argument("--data-dir", default=None, help="keep workspaces, projects and jobs in DIR")
    parser.add_argument("--token", default=None, help="static token to accept (default: the sandbox's own)")
    parser.add_argument("--debug-routes", action="store_true",
                        help="also serve the /__sandbox/* routes: fault injection, short-lived token minting "
                             "(/__sandbox/token), request and job counters, reset. Off by default")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.job_seconds < 0:
        print("--job-seconds must not be negative", file=sys.stderr)
        return 2
    server = SandboxServer(
        job_seconds=args.job_seconds,
        data_dir=args.data_dir,
        port=args.port,
        file_port=args.file_port,
        static_tokens=[args.token] if args.token else None,
        debug_routes=args.debug_routes,
    )
    try:
        server.start()
    except OSError as exc:
        print(f"cannot start the sandbox: {exc}", file=sys.stderr)
        return 1
    print(f"3DLabs sandbox API: {server.api_url}  (files: {server.file_url})")
    print(f"Token: {server.static_token}")
    print(f"Use: THREEDLABS_BASE_URL={server.api_url} THREEDLABS_TOKEN={server.static_token}")
    if args.debug_routes:
        print(f"Short-lived tokens: THREEDLABS_TOKEN_COMMAND='curl -s -X POST "
              f"{server.origin}/__sandbox/token?ttl=60&format=text'")
        print(f"Debug routes: {server.origin}/__sandbox/stats, /__sandbox/faults, /__sandbox/reset")
    else:
        print("Short-lived tokens, fault injection and counters: restart with --debug-routes")
    print("Press Ctrl-C to stop.", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
