"""The pack's server routes on a plain aiohttp app on loopback, as ComfyUI would mount them.

Shared by the route tests and the security tests; aiohttp is imported by the caller's
``pytest.importorskip`` first, so this module only loads where aiohttp exists.
"""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web


class LoopbackApp:
    """An aiohttp app with the pack's routes, served from its own event loop thread."""

    def __init__(self, routes_mod) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="routes-app", daemon=True)
        self.thread.start()

        async def start():
            app = web.Application()
            app.add_routes(routes_mod.add_routes(web.RouteTableDef()))
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            return runner, runner.addresses[0][1]

        self.runner, port = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.url = f"http://127.0.0.1:{port}"
        self.origin = self.url

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
