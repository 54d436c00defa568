"""Load test of ``neuralrec serve``: fixed request rate, fixed duration, loopback only.

Starts the server on a model directory (a subprocess on a free loopback port), then for each
scenario sends requests at a fixed rate from a bounded asyncio client (open loop: request i is
due at t0 + i/rate whether or not earlier ones have answered, at most --max-in-flight at once;
a minimal HTTP/1.1 keep-alive client on asyncio streams, since httpx's own CPU cost per request
would dominate on a 2-core machine). Latency is measured from the time a request was *due*, so a stalled server (or client)
shows up in the tail instead of silently lowering the rate. Prints a table and writes JSON.

    PYTHONPATH=src python benchmarks/load_test.py --model /tmp/serve-mf --rate 200 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

SCENARIOS = {
    "recommend-user": {"user": 1.0},
    "mix": {"user": 0.6, "similar": 0.2, "history": 0.2},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    """``neuralrec serve`` in a subprocess (its own interpreter: no GIL shared with the client)."""
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [sys.executable, "-m", "neuralrec", "serve", str(model), "--port", str(port)]
    cmd += ["--workers", str(workers), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with status {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("server did not become healthy within 120 s")


def request_maker(model: Path, mix: dict[str, float], seed: int):
    """A function returning the next (method, path, json body) of the scenario mix."""
    ids = json.loads((model / "ids.json").read_text())
    users, items = ids["users"], ids["items"]
    rng = random.Random(seed)
    kinds, weights = list(mix), list(mix.values())

    def make() -> tuple[str, str, Any]:
        kind = rng.choices(kinds, weights)[0]
        if kind == "user":
            return "GET", f"/recommend/{rng.choice(users)}?k=10", None
        if kind == "similar":
            return "GET", f"/similar/{rng.choice(items)}?k=10", None
        liked = rng.sample(items, rng.randint(1, 5))
        return "POST", "/recommend", {"items": liked, "k": 10}

    return make


class RawClient:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams, at most ``size`` connections.

    The load generator must cost far less CPU than the server it measures, on the same cores:
    httpx spends several ms of CPU per request on this machine, this a small fraction of that.
    It relies on what the server always sends (a Content-Length, no chunked bodies). Like any
    keep-alive client, it does not reuse a connection idle long enough for the server to have
    closed it (uvicorn: 5 s).
    """

    IDLE_S = 3.0

    def __init__(self, host: str, port: int, size: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.free: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.gate = asyncio.Semaphore(size)
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())

    async def request(self, method: str, path: str, body: Any) -> int:
        """Send one request and read the whole answer; its status code."""
        async with self.gate:
            reader, writer = await self._connection()
            data = b"" if body is None else json.dumps(body).encode()
            head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.extra}"
            if body is not None:
                head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            try:
                writer.write(head.encode() + b"\r\n" + data)
                lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                status = int(lines[0].split()[1])
                fields = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
                await reader.readexactly(int(fields["content-length"]))
            except BaseException:
                writer.close()
                raise
            if fields.get("connection") == "close":
                writer.close()
            else:
                self.free.append((reader, writer, time.monotonic()))
            return status

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while self.free:
            reader, writer, last = self.free.pop()
            if time.monotonic() - last < self.IDLE_S:
                return reader, writer
            writer.close()
        return await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        for _, writer, _ in self.free:
            writer.close()


async def run_scenario(
    base: str, make, rate: float, duration: float, max_in_flight: int, headers: dict[str, str]
) -> dict[str, Any]:
    """Send ``rate`` requests/s for ``duration`` s; latencies (ms) from each request's due time."""
    latencies: list[float] = []
    service: list[float] = []
    errors: dict[str, int] = {}
    url = httpx.URL(base)
    client = RawClient(url.host, url.port or 80, max_in_flight, headers)

    async def one(due: float, method: str, path: str, body: Any) -> None:
        sent = time.perf_counter()
        try:
            status = await client.request(method, path, body)
            key = str(status)
        except (OSError, asyncio.IncompleteReadError, ValueError, KeyError) as exc:
            status, key = 0, type(exc).__name__
        done = time.perf_counter()
        if status == 200:
            latencies.append((done - due) * 1000)
            service.append((done - sent) * 1000)
        else:
            errors[key] = errors.get(key, 0) + 1

    tasks = []
    n = int(rate * duration)
    start = time.perf_counter() + 0.05
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due, *make())))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    client.close()
    lat = np.asarray(latencies)
    svc = np.asarray(service)
    pct = lambda a, q: round(float(np.percentile(a, q)), 2) if len(a) else None  # noqa: E731
    return {
        "requests": n,
        "ok": len(lat),
        "errors": errors,
        "throughput_rps": round(len(lat) / elapsed, 1),
        "p50_ms": pct(lat, 50),
        "p90_ms": pct(lat, 90),
        "p99_ms": pct(lat, 99),
        "max_ms": round(float(lat.max()), 2) if len(lat) else None,
        "service_p50_ms": pct(svc, 50),
        "service_p99_ms": pct(svc, 99),
    }


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) of a process and its descendants, from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    try:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue  # a process that just ended
                stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    except OSError:
        return None
    tree, total = {pid}, 0.0
    for _ in range(4):  # server -> workers -> their threads' processes, if any
        tree |= {p for p, (ppid, _) in stats.items() if ppid in tree}
    for p in tree:
        total += stats.get(p, (0, 0.0))[1]
    return total


def cpu_figures(proc: Any, start: tuple[float | None, float], n: int, wall: float) -> dict:
    """Server and client CPU per request during a scenario: load-independent cost figures.

    On a shared machine the latencies depend on what else runs; CPU time per request hardly
    does, and tells how many requests/s a quiet core would carry.
    """
    out: dict[str, Any] = {
        "client_cpu_ms_per_request": round((time.process_time() - start[1]) * 1000 / max(n, 1), 3)
    }
    if proc is not None and start[0] is not None:
        used = (tree_cpu_seconds(proc.pid) or 0.0) - start[0]
        out["server_cpu_ms_per_request"] = round(used * 1000 / max(n, 1), 3)
        out["server_cpu_cores"] = round(used / (time.perf_counter() - wall), 3)
    return out


def print_table(rows: list[dict[str, Any]]) -> None:
    head = ["scenario", "rate", "ok", "err", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms"]
    print(" | ".join(f"{h:>14}" if i == 0 else f"{h:>7}" for i, h in enumerate(head)))
    for r in rows:
        cells = [r["scenario"], r["rate"], r["ok"], sum(r["errors"].values()), r["throughput_rps"]]
        cells += [r["p50_ms"], r["p90_ms"], r["p99_ms"], r["max_ms"]]
        print(" | ".join(f"{c!s:>14}" if i == 0 else f"{c!s:>7}" for i, c in enumerate(cells)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="run or model directory")
    ap.add_argument("--url", help="an already running server (default: start one on loopback)")
    ap.add_argument("--rate", type=float, default=200.0, help="requests per second")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds per scenario")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds of untimed load first")
    ap.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    ap.add_argument("--max-in-flight", type=int, default=64)
    ap.add_argument("--workers", type=int, default=1, help="server worker processes")
    ap.add_argument("--api-key", default=os.environ.get("NEURALREC_API_KEY"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "serving.json")
    args = ap.parse_args()

    proc = None
    base = args.url
    if base is None:
        port = free_port()
        proc = start_server(args.model, port, args.workers)
        base = f"http://127.0.0.1:{port}"
    if not base.startswith(("http://127.", "http://localhost", "http://[::1]")):
        raise SystemExit("loopback only: --url must point at 127.0.0.1, localhost or [::1]")
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    info = httpx.get(f"{base}/model", headers=headers, timeout=10).json()
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    load_before = os.getloadavg()
    rows = []
    try:
        for name in names:
            make = request_maker(args.model, SCENARIOS[name], args.seed)
            if args.warmup:
                asyncio.run(
                    run_scenario(base, make, args.rate, args.warmup, args.max_in_flight, headers)
                )
            cpu = (tree_cpu_seconds(proc.pid) if proc else None, time.process_time())
            wall = time.perf_counter()
            res = asyncio.run(
                run_scenario(base, make, args.rate, args.duration, args.max_in_flight, headers)
            )
            res.update(cpu_figures(proc, cpu, res["ok"] + sum(res["errors"].values()), wall))
            rows.append({"scenario": name, "rate": args.rate, "duration_s": args.duration, **res})
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    print_table(rows)
    for r in rows:
        if "server_cpu_ms_per_request" in r:
            print(
                f"{r['scenario']}: server {r['server_cpu_ms_per_request']} ms CPU per request "
                f"({r['server_cpu_cores']} cores busy), client {r['client_cpu_ms_per_request']} ms"
            )
    load_after = os.getloadavg()
    print(
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min) on {os.cpu_count()} CPUs"
    )
    result = {
        "command": " ".join(["python", *sys.argv]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": {
            k: info.get(k) for k in ("model", "dataset", "n_users", "n_items", "similarity_index")
        },
        "server": {"workers": args.workers, "external": args.url is not None},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in load_after],
        },
        "latency_note": "ms from each request's due time (open loop); service_* from its send time",
        "scenarios": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
