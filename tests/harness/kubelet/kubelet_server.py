"""The kubelet's HTTP endpoint the API server relays `kubectl logs` to: /containerLogs/<ns>/<pod>/<container>
with previous, tailLines, limitBytes and follow; /healthz."""

from __future__ import annotations

import asyncio
from typing import Callable, List, Optional

from aiohttp import web

from .container_runtime import ContainerRecord


class KubeletServer:
    def __init__(self, find: Callable[[str, str, str], Optional[ContainerRecord]], follow_period: float,
                 stopping: Callable[[], bool]) -> None:
        self.find = find
        self.follow_period = follow_period
        self.stopping = stopping
        self.runner: Optional[web.AppRunner] = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        app.router.add_get("/healthz", self._healthz)
        self.runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    @staticmethod
    async def _healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    @staticmethod
    def _lines(record: ContainerRecord, previous: bool) -> List[str]:
        return list(record.previous_logs) if previous else record.current_logs()

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        namespace, pod_name, name = (request.match_info[k] for k in ("namespace", "pod", "container"))
        record = self.find(namespace, pod_name, name)
        if record is None:
            return web.Response(status=404, text=f'container "{name}" in pod "{pod_name}" not found')
        previous = request.query.get("previous") in ("true", "1")
        if previous and record.last_terminated is None:
            return web.Response(status=400, text=f'previous terminated container "{name}" in pod "{pod_name}" '
                                                 "not found")
        if not previous and record.instance is None:
            reason = (record.state.get("waiting") or {}).get("reason", "ContainerCreating")
            return web.Response(status=400,
                                text=f'container "{name}" in pod "{pod_name}" is waiting to start: {reason}')
        lines = self._lines(record, previous)
        tail = request.query.get("tailLines")
        if tail is not None and int(tail) >= 0:
            lines = lines[len(lines) - int(tail):] if int(tail) else []
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        payload = "".join(line + "\n" for line in lines)
        limit = request.query.get("limitBytes")
        await response.write((payload[: int(limit)] if limit else payload).encode())
        sent = len(self._lines(record, previous))
        instance = record.instance
        try:
            if request.query.get("follow") in ("true", "1") and not previous:
                while not self.stopping() and record.instance is instance and \
                        self.find(namespace, pod_name, name) is record:
                    await asyncio.sleep(self.follow_period)
                    current = self._lines(record, False)
                    if len(current) > sent:
                        await response.write("".join(line + "\n" for line in current[sent:]).encode())
                        sent = len(current)
                    if instance is not None and instance.exited is not None:
                        break
            await response.write_eof()
        except ConnectionResetError:
            pass  # the reader went away (kubectl logs -f interrupted)
        return response
