"""A module the server loads with its first request is handed out only once its import has finished.

Under load a second EST request came while the first one's executor thread
was still importing tui_ca.server.est: sys.modules already held the module,
half made, and the request failed with a 500 (AttributeError: partially
initialized module). Here the import is held open on purpose.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tui_ca.server.context import Context
from tui_ca.server.limits import RateLimiter

DEADLINE = 60.0


def test_a_request_during_the_first_ones_import_waits_for_the_whole_module(tmp_path: Path, monkeypatch) -> None:
    gate = types.ModuleType("tui_ca_test_gate")
    gate.entered = threading.Event()  # type: ignore[attr-defined]
    gate.release = threading.Event()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, gate.__name__, gate)
    name = "tui_ca_test_slow_module"
    (tmp_path / f"{name}.py").write_text(
        f"import {gate.__name__} as gate\n"
        "gate.entered.set()\n"
        f"if not gate.release.wait({DEADLINE}):\n"
        "    raise RuntimeError('never released')\n"
        "def handle():\n"
        "    return 'whole'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    executor = ThreadPoolExecutor(4)
    context = Context(reader=None, options=None, users=None, limiter=RateLimiter(0), status_paths={},
                      executor=executor, peer_of=None, log=logging.getLogger("test"))  # type: ignore[arg-type]  # fmt: skip

    async def request() -> str:
        module = await context.module(name)
        return module.handle()  # at once, as the EST route calls est.handle

    async def two_requests() -> tuple[str, str]:
        first = asyncio.create_task(request())
        entered = await asyncio.get_running_loop().run_in_executor(None, gate.entered.wait, DEADLINE)
        assert entered, "the first import never started"
        second = asyncio.create_task(request())
        await asyncio.sleep(0)  # the second request takes its first step while the import is still open
        gate.release.set()
        return await first, await second

    try:
        first, second = asyncio.run(two_requests())
    finally:
        gate.release.set()
        executor.shutdown(wait=True)
    assert (first, second) == ("whole", "whole")
