"""Several REAL `rentan-bot run` webhook processes on one database behind a round-robin proxy,
as production runs them (scripts/deploy/): each process is `python -m bot.cli run` in its own
interpreter, configured only by its environment, on its own 127.0.0.1 port; the proxy (the
test's nginx) forwards each update to the next one and skips a process that does not answer.

Shared by tests/test_cluster_proof.py and `make cluster` (scripts/deploy/local_cluster.py).
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from testkit.cluster import WEBHOOK_PATH, WEBHOOK_SECRET, RoundRobinProxy, free_port

ROOT = Path(__file__).resolve().parent.parent
# A process is ready when its webhook port accepts connections (it migrated and set the hook).
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


def cluster_environment(
    *,
    api_url: str,
    database_url: str,
    token: str,
    pii_secret: str,
    webhook_url: str,
    processes: int,
    **settings: object,
) -> dict[str, str]:
    """The environment every process shares: the variables of scripts/deploy/rentan-bot.env."""
    from config.settings import Settings

    names = {name.upper() for name in Settings.model_fields}
    # The developer's PROGRAM_* or LOG_LEVEL must not leak into the processes.
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env.update(
        {
            "TELEGRAM_BOT_TOKEN": token,
            "TELEGRAM_API_URL": api_url,
            "DATABASE_URL": database_url,
            "PII_SECRET": pii_secret,
            "WEBHOOK_URL": webhook_url,
            "WEBHOOK_SECRET": WEBHOOK_SECRET,
            "WEBHOOK_PATH": WEBHOOK_PATH,
            "BOT_PROCESSES": str(processes),
            "PYTHONPATH": str(ROOT),
            "PTB_TIMEDELTA": "true",
        }
    )
    env.update({name.upper(): str(value) for name, value in settings.items()})
    return env


@dataclass
class ProcessCluster:
    """`count` webhook processes (one port each) behind a proxy; kill and restart by index."""

    env: dict[str, str]
    count: int
    log_dir: Path
    proxy: RoundRobinProxy = field(default_factory=RoundRobinProxy)
    ports: list[int] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # Every process ever started (restarts included), for the logs and the final reaping.
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)
    stopped: bool = False

    async def start_proxy(self) -> str:
        """Start the proxy first: its URL is every process's WEBHOOK_URL."""
        self.proxy.failover = True
        await self.proxy.start()
        return self.proxy.url

    async def start(self) -> None:
        """Start every process at once (each migrates first: a no-op after the first) and
        route to them."""
        for _ in range(self.count):
            port = free_port()
            self.ports.append(port)
            self.proxy.targets.append(f"http://127.0.0.1:{port}{WEBHOOK_PATH}")
        self.processes = list(await asyncio.gather(*map(self._spawn, range(self.count))))

    async def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        env = {**self.env, "WEBHOOK_PORT": str(self.ports[index])}
        log = self.log_path(index)
        with log.open("ab") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "run"],
                env=env,
                cwd=self.log_dir,
                stdout=output,
                stderr=output,
            )
        self.started.append(process)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        while not await asyncio.to_thread(_listening, self.ports[index]):
            if process.poll() is not None:
                raise RuntimeError(f"process {index} exited early:\n{log.read_text()[-3000:]}")
            if loop.time() > deadline:
                process.kill()
                raise RuntimeError(f"process {index} did not listen:\n{log.read_text()[-3000:]}")
            await asyncio.sleep(0.1)
        return process

    def log_path(self, index: int) -> Path:
        """Where process `index` writes its log (all its lives in one file)."""
        return self.log_dir / f"bot-{index}.log"

    def logs(self) -> str:
        """Every process's log."""
        return "\n".join(
            self.log_path(i).read_text(errors="replace")
            for i in range(self.count)
            if self.log_path(i).exists()
        )

    async def kill(self, index: int) -> None:
        """SIGKILL process `index` (no shutdown, no goodbye) and reap it."""
        process = self.processes[index]
        process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(process.wait, STOP_TIMEOUT)

    async def restart(self, index: int) -> None:
        """Start process `index` again on its port, as systemd's Restart=always does."""
        self.processes[index] = await self._spawn(index)

    async def stop(self) -> list[int | None]:
        """SIGTERM every process, wait for each; their exit codes (None: had to be killed).
        A second call only reaps what the first left."""
        codes: list[int | None] = []
        if self.stopped:
            return [process.poll() for process in self.processes]
        self.stopped = True
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                codes.append(await asyncio.to_thread(process.wait, STOP_TIMEOUT))
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait, STOP_TIMEOUT)
                codes.append(None)
        for process in self.started:
            if process.poll() is None:
                process.kill()
                await asyncio.to_thread(process.wait, STOP_TIMEOUT)
        await self.proxy.stop()
        return codes


class SteadyHeap:
    """Keeps the garbage collector from stopping this process's event loop for long while the
    emulator in it stands in for Telegram, which does not pause: a full collection over the
    heap (pytest, every library, the emulator's transcripts) stopped it for 0.27-0.45 s under
    load, and the requests queued meanwhile all counted at once, a second later over the cap.
    Everything alive is frozen at start and again every `every` seconds, so a full collection
    only looks at what the last seconds made; young collections still free short cycles."""

    def __init__(self, every: float = 2.0) -> None:
        self.every = every
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        gc.collect()
        gc.freeze()
        self._task = asyncio.get_running_loop().create_task(self._refreeze())

    async def _refreeze(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            gc.freeze()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        gc.unfreeze()


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0
