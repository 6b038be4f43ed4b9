"""The prediction service under a fixed load: POST /predict latency at a fixed rate.

    .venv/bin/python bench/serve.py [--rate 200] [--seconds 25] [--also-threadpool] [--hostile 4]
    .venv/bin/python bench/serve.py --workers 1,2 --rate 1000 --seconds 10 --find-max
    .venv/bin/python bench/serve.py ... --generator python   # the asyncio generator instead

Builds the demo workspace (``retrain demo``'s data: six months of 2,500 loan applications,
150 trees) and bootstraps its LightGBM model with the library pipeline, then starts
``retrain serve`` as a real subprocess on a free loopback port, with a bearer token. The load
generator is open-loop: request i is sent at t0 + i/rate whatever happened to the earlier
ones, and its latency is counted from that scheduled time, so a stalled server cannot hide its
queueing delay ("coordinated omission"). By default it is ``bench/loadgen.c``, compiled here
with the machine's C compiler and run as its own process (epoll, keep-alive loopback
connections, a few microseconds of CPU per request); ``--generator python`` (or no compiler)
uses this process's minimal asyncio HTTP/1.1 client (``Connections``), which costs tens of
microseconds per request and, from about 800 requests/s on 2 cores, sends late itself. Either
way the generator's own lateness is printed and counted in the latencies. Payloads are real
rows of the feature store, keyed by distinct request ids and entity ids.

Baselines from the same run: the same model's one-row prediction in process (the batch path,
``TrainedModel.predict`` on a one-row frame, and the service's own one-row path), and a
``GET /health`` round trip under the same open-loop schedule: the HTTP, JSON and
load-generator cost that any endpoint pays. The target is p99 <= ``--p99-ms`` (10) at the
rate, with zero errors; the exit status is 1 if any request failed.

``--workers 1,2`` runs the same load against ``retrain serve --workers N`` for each N (several
processes sharing the port, the registry and the prediction log); ``--find-max`` then ramps
the rate (``--rates``, ``--step-seconds`` each) and reports the highest whose p99 stays within
``--p99-ms`` (10) with no errors.

``--hostile N`` times the same predictions a second time while N attackers in another process
announce 150 MB bodies without a token, over and over (headers only: the service must answer
401 from them without reading a body), and prints both p99s and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TMP = Path(tempfile.mkdtemp(prefix="retrain-bench-serve-"))
for key in [k for k in os.environ if k.startswith("RETRAIN_")]:
    os.environ.pop(key)
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from retrain.demo import write_workspace  # noqa: E402
from retrain.workspace import Workspace  # noqa: E402

MODEL = "lightgbm"
TOKEN = "bench-token"


def build_workspace() -> tuple[Path, list[dict]]:
    """The demo workspace with a production LightGBM version; real rows to send."""
    from retrain.pipeline import run_pipeline
    config = write_workspace(TMP / "demo")
    ws = Workspace.open(config)
    run_pipeline(ws, [MODEL], reason="manual")
    rows = ws.store.scan().collect().tail(5000)
    schema = ws.registry.production_version(MODEL).feature_schema
    payloads = []
    for i, row in enumerate(rows.select(schema["features"]).to_dicts()):
        features = {k: (None if isinstance(v, float) and math.isnan(v) else v)
                    for k, v in row.items()}
        payloads.append({"entity_id": f"customer-{i % 1000}", "features": features})
    ws.registry.dispose()
    return config, payloads


def in_process_baseline(config: Path, payload: dict, repeat: int = 2000) -> dict[str, float]:
    """Median one-row prediction cost (ms) in process: batch path and the service's path."""
    import polars as pl

    from retrain.serve.models import OnePredictor
    from retrain.serve.schemas import FeatureEncoder
    ws = Workspace.open(config)
    model = ws.registry.load(ws.registry.production_version(MODEL))
    frame = pl.DataFrame([payload["features"]])
    encoder, predictor = FeatureEncoder(model.preprocessing), OnePredictor(model)

    def median_ms(fn, n):
        fn()
        times = []
        for _ in range(n):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000

    out = {"batch path (TrainedModel.predict, 1-row frame)": median_ms(lambda: model.predict(frame), 300),
           "service path (encode + one-row predict)":
               median_ms(lambda: predictor.predict(encoder.encode(payload["features"])), repeat)}
    ws.registry.dispose()
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(config: Path, port: int, threadpool: bool, workers: int = 1) -> subprocess.Popen:
    env = {**os.environ, "RETRAIN_SERVE_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "retrain.cli", "serve", "--config", str(config),
           "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    if threadpool:
        cmd.append("--predict-in-threadpool")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                            stderr=open(TMP / f"serve-{port}.log", "wb"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the service exited with {proc.returncode}; see {TMP}/serve-{port}.log")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the service did not become healthy within 60 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Connections:
    """Keep-alive HTTP/1.1 connections to the service, each used by one request at a time.

    A minimal client on purpose: httpx's AsyncClient spent 2-5 ms of CPU per request here,
    more than the service, so under a fixed rate the load generator itself fell behind and
    its queueing was counted as the service's latency."""

    def __init__(self, port: int, limit: int = 64):
        self.port = port
        self.limit = limit
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0
        self.free = asyncio.Condition()

    async def _acquire(self):
        async with self.free:
            while not self.idle and self.opened >= self.limit:
                await self.free.wait()
            if self.idle:
                return self.idle.pop()
            self.opened += 1
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def _release(self, conn, reusable: bool) -> None:
        async with self.free:
            if reusable:
                self.idle.append(conn)
            else:
                self.opened -= 1
                conn[1].close()
            self.free.notify()

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        """Send one request (complete bytes); (status, body) of the response."""
        conn = await self._acquire()
        reader, writer = conn
        try:
            writer.write(raw)
            status_line = await reader.readline()
            if not status_line:
                # The server closed a connection that sat idle past its keep-alive timeout
                # before reading the request: send it again on a new connection.
                writer.close()
                conn = reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(raw)
                status_line = await reader.readline()
            status = int(status_line.split(b" ", 2)[1])
            length, keep = 0, True
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    keep = False
            body = await reader.readexactly(length)
        except BaseException:
            await self._release(conn, False)
            raise
        await self._release(conn, keep)
        return status, body

    async def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


def http_request(method: str, path: str, body: dict | None = None) -> bytes:
    data = b"" if body is None else json.dumps(body).encode()
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {TOKEN}\r\n")
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    return (head + "\r\n").encode() + data


async def open_loop(port: int, rate: float, requests: list[bytes]) -> dict:
    """Send ``requests`` at ``rate`` per second on a fixed schedule (open loop)."""
    connections = Connections(port)
    latencies: list[float] = []
    lags: list[float] = []  # how late the generator itself sent: its own share of latency
    errors: dict[str, int] = {}

    async def one(raw: bytes, scheduled: float) -> None:
        lags.append(time.perf_counter() - scheduled)
        try:
            status, body = await asyncio.wait_for(connections.send(raw), timeout=10)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            return
        if status >= 400:
            key = f"HTTP {status}: {body[:120].decode(errors='replace')}"
            errors[key] = errors.get(key, 0) + 1
            return
        latencies.append(time.perf_counter() - scheduled)

    tasks = []
    start = time.perf_counter() + 0.05
    for i, raw in enumerate(requests):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(raw, scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    await connections.close()
    return {"latencies": sorted(latencies), "errors": errors, "sent": len(requests),
            "elapsed": elapsed, "lags": sorted(lags)}


LOADGEN_SOURCE = ROOT / "bench" / "loadgen.c"
LOADGEN: Path | None = None  # the compiled C generator, when --generator c


def build_loadgen() -> Path | None:
    """Compile ``bench/loadgen.c`` with the machine's C compiler; None (and why) without one."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        print("no C compiler (cc, gcc): the load comes from the Python generator")
        return None
    binary = TMP / "loadgen"
    built = subprocess.run([cc, "-O2", "-o", str(binary), str(LOADGEN_SOURCE)],
                           capture_output=True, text=True)
    if built.returncode:
        print(f"bench/loadgen.c did not compile ({built.stderr.strip()[:300]}): the load comes "
              "from the Python generator")
        return None
    return binary


def open_loop_c(port: int, rate: float, requests: list[bytes], limit: int = 64) -> dict:
    """The same open-loop schedule sent by ``bench/loadgen.c`` in its own process: a few
    microseconds of CPU per request, where the Python generator's event loop spends tens and
    sends late when the service keeps both cores busy."""
    path = TMP / "requests.bin"
    with open(path, "wb") as out:
        for raw in requests:
            out.write(struct.pack("<I", len(raw)))
            out.write(raw)
    done = subprocess.run([str(LOADGEN), str(port), f"{rate:g}", str(path), str(limit), "10"],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"bench/loadgen.c failed ({done.returncode}): {done.stderr.strip()}")
    latencies, lags, errors, elapsed = [], [], {}, math.nan
    for line in done.stdout.splitlines():
        first, second, *rest = line.split()
        if first == "elapsed":
            elapsed = int(second) / 1e9
            continue
        status, latency, lag = int(first), int(second) / 1e9, int(rest[0]) / 1e9
        lags.append(lag)
        if status == 0:
            errors["connection error or timeout (10 s)"] = \
                errors.get("connection error or timeout (10 s)", 0) + 1
        elif status >= 400:
            errors[f"HTTP {status}"] = errors.get(f"HTTP {status}", 0) + 1
        else:
            latencies.append(latency)
    return {"latencies": sorted(latencies), "errors": errors, "sent": len(requests),
            "elapsed": elapsed, "lags": sorted(lags)}


def load(port: int, rate: float, requests: list[bytes]) -> dict:
    """``requests`` at ``rate`` per second, open loop, from the generator ``--generator`` chose."""
    if LOADGEN is not None:
        return open_loop_c(port, rate, requests)
    return load(port, rate, requests)


def run(coroutine):
    try:
        import uvloop
        return uvloop.run(coroutine)
    except ImportError:
        return asyncio.run(coroutine)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    return values[min(len(values) - 1, int(math.ceil(q * len(values))) - 1)] * 1000


def summary(name: str, result: dict) -> dict:
    lat = result["latencies"]
    figures = {"p50": percentile(lat, 0.50), "p95": percentile(lat, 0.95),
               "p99": percentile(lat, 0.99), "max": lat[-1] * 1000 if lat else math.nan,
               "throughput": len(lat) / result["elapsed"],
               "errors": sum(result["errors"].values())}
    print(f"  {name:<34}{figures['p50']:8.2f}{figures['p95']:8.2f}{figures['p99']:8.2f}"
          f"{figures['max']:8.1f}{figures['throughput']:9.1f}/s{figures['errors']:8d}", flush=True)
    for what, count in result["errors"].items():
        print(f"      {count} x {what}")
    figures["lag_p99"] = percentile(result["lags"], 0.99)
    return figures


# An attacker: announces 150 MB without a token and reads the answer, as fast as it can.
ATTACKER = """
import socket, sys, time
port, until = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
answers = {}
while time.monotonic() < until:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /predict/lightgbm HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: application/json"
                  b"\\r\\nContent-Length: 150000000\\r\\n\\r\\n")
        status = s.recv(4096).split()[1].decode()
        answers[status] = answers.get(status, 0) + 1
print(answers)
"""


def hostile_run(port: int, args, requests: list[bytes]) -> tuple[dict, str]:
    """``requests`` at ``args.rate`` while ``args.hostile`` attacker processes run."""
    attackers = [subprocess.Popen([sys.executable, "-c", ATTACKER, str(port),
                                   str(args.seconds + 2)], stdout=subprocess.PIPE, text=True)
                 for _ in range(args.hostile)]
    time.sleep(0.5)
    result = load(port, args.rate, requests)
    answers = [a.communicate(timeout=60)[0].strip() for a in attackers]
    return result, "; ".join(answers)


def find_max_rate(port: int, predictions, args) -> float | None:
    """The highest of ``args.rates`` (open loop, ``args.step_seconds`` each) whose p99 stays
    within ``args.p99_ms`` with no errors; the ramp stops at the first rate that misses."""
    best = None
    for rate in args.rates:
        requests = predictions(f"ramp{rate:g}", args.step_seconds, rate)
        result = summary(f"  ramp: {rate:g} requests/s", load(port, rate, requests))
        if result["errors"] or result["p99"] > args.p99_ms:
            break
        best = rate
    return best


def run_mode(config: Path, payloads: list[dict], args, threadpool: bool,
             workers: int = 1) -> tuple[dict, dict]:
    port = free_port()
    proc = start_server(config, port, threadpool, workers)
    tag = ("pool" if threadpool else "loop") + f"-w{workers}"

    def predictions(name: str, seconds: float, rate: float | None = None) -> list[bytes]:
        # Built before the clock starts, so the generator only sends and reads.
        return [http_request("POST", f"/predict/{MODEL}",
                             {"request_id": f"{name}-{tag}-{i}", **payloads[i % len(payloads)]})
                for i in range(int((rate or args.rate) * seconds))]

    try:
        load(port, args.rate, predictions("warm-up", 3))  # connections, caches
        mode = ("in the threadpool" if threadpool else "in the event loop") + \
            (f", {workers} processes" if workers > 1 else "")
        health = [http_request("GET", "/health")] * int(args.rate * args.seconds / 4)
        health_result = load(port, args.rate, health)
        predict_result = load(port, args.rate, predictions("bench", args.seconds))
        h = summary(f"GET /health ({mode})", health_result)
        p = summary(f"POST /predict ({mode})", predict_result)
        written = httpx.get(f"http://127.0.0.1:{port}/health").json()["log"]["predictions"]
        print(f"      prediction log: {written['written']} written, {written['pending']} "
              f"pending, {written['dropped']} dropped; the generator sent late by p99 "
              f"{p['lag_p99']:.2f} ms (counted in the latencies)")
        if args.hostile:
            result, answers = hostile_run(port, args, predictions("hostile", args.seconds))
            attacked = summary(f"POST /predict, {args.hostile} attackers", result)
            print(f"      attackers' answers (status: count): {answers}")
            print(f"      p99 under attack / p99 without: {attacked['p99'] / p['p99']:.2f}")
        if args.find_max:
            best = find_max_rate(port, predictions, args)
            p["max_rate"] = best
            print(f"      highest rate with p99 <= {args.p99_ms:g} ms and no errors: "
                  f"{'none of the rates' if best is None else f'{best:g} requests/s'}")
    finally:
        stop_server(proc)
    return h, p


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=25.0, help="length of the timed run")
    parser.add_argument("--also-threadpool", action="store_true",
                        help="also measure the endpoint run in the threadpool (a sync endpoint)")
    parser.add_argument("--hostile", type=int, default=0, metavar="N",
                        help="time again with N processes sending unauthenticated 150 MB headers")
    parser.add_argument("--workers", default="1", metavar="N[,N...]",
                        help="server processes (`retrain serve --workers`); a list compares them")
    parser.add_argument("--find-max", action="store_true",
                        help="ramp the rate to find the highest with p99 within --p99-ms")
    parser.add_argument("--rates", default="200,400,600,800,1000,1200,1500,2000",
                        help="the ramp's rates (requests/s)")
    parser.add_argument("--step-seconds", type=float, default=8.0, help="length of a ramp step")
    parser.add_argument("--p99-ms", type=float, default=10.0, help="the ramp's p99 bound")
    parser.add_argument("--generator", choices=("c", "python"), default="c",
                        help="who sends the load: bench/loadgen.c, compiled here (falls back to "
                             "Python without a C compiler), or this process's asyncio client")
    args = parser.parse_args()
    global LOADGEN
    if args.generator == "c":
        LOADGEN = build_loadgen()
    args.rates = [float(r) for r in args.rates.split(",")]
    worker_counts = [int(w) for w in args.workers.split(",")]
    started = time.monotonic()
    config, payloads = build_workspace()
    print(f"demo workspace with a production {MODEL} model: {time.monotonic() - started:.0f}s "
          f"({TMP})", flush=True)
    baseline = in_process_baseline(config, payloads[0])
    for name, ms in baseline.items():
        print(f"  in process, {name}: {ms:.3f} ms")
    batch_ms = next(iter(baseline.values()))
    print(f"\nopen loop at {args.rate:g} requests/s for {args.seconds:g}s on loopback "
          f"(latency from the scheduled send time, ms)")
    print(f"  {'':<34}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}{'throughput':>11}{'errors':>8}")
    load_before = os.getloadavg()[0]
    results = {}
    for workers in worker_counts:
        name = "event loop" + (f", {workers} processes" if workers > 1 else "")
        results[name] = run_mode(config, payloads, args, threadpool=False, workers=workers)
    if args.also_threadpool:
        results["threadpool"] = run_mode(config, payloads, args, threadpool=True)
    errors = 0
    print(f"\nmachine load average (1 min) before / after the timed runs: {load_before:.2f} / "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (other work on the machine "
          "shows up in the tail)")
    for mode, (health, predict) in results.items():
        errors += predict["errors"] + health["errors"]
        verdict = "meets" if predict["p99"] <= args.p99_ms and predict["errors"] == 0 \
            else "MISSES"
        print(f"{mode}: POST /predict p50 {predict['p50']:.2f} ms, p99 {predict['p99']:.2f} ms, "
              f"{predict['throughput']:.0f} requests/s, {predict['errors']} errors "
              f"({verdict} the target p99 <= {args.p99_ms:g} ms at {args.rate:g} requests/s, "
              "0 errors)")
        print(f"  ratios: p50 / GET /health p50 = {predict['p50'] / health['p50']:.2f}; "
              f"p50 / in-process batch-path one-row predict = {predict['p50'] / batch_ms:.2f}")
        if "max_rate" in predict:
            print(f"  highest rate with p99 <= {args.p99_ms:g} ms: {predict['max_rate'] or 0:g} "
                  "requests/s")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
