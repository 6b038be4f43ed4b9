"""The prediction service under a fixed load: POST /predict latency at 200 requests/s.

    .venv/bin/python bench/serve.py [--rate 200] [--seconds 25] [--also-in-loop]

Builds the demo workspace (``retrain demo``'s data: six months of 2,500 loan applications,
150 trees) and bootstraps its LightGBM model with the library pipeline, then starts
``retrain serve`` as a real subprocess on a free loopback port, with a bearer token. The load
generator (this process, httpx over keep-alive connections on loopback) is open-loop: request
i is sent at t0 + i/rate whatever happened to the earlier ones, and its latency is counted
from that scheduled time, so a stalled server cannot hide its queueing delay
("coordinated omission"). Payloads are real rows of the feature store, keyed by distinct
request ids and entity ids.

Baselines from the same run: the same model's one-row prediction in process (the batch path,
``TrainedModel.predict`` on a one-row frame, and the service's own one-row path), and a
``GET /health`` round trip under the same open-loop schedule: the HTTP, JSON and
load-generator cost that any endpoint pays. The target is p99 < 25 ms at 200 requests/s with
zero errors; the exit status is 1 if any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import socket
import statistics
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


def start_server(config: Path, port: int, in_loop: bool) -> subprocess.Popen:
    env = {**os.environ, "RETRAIN_SERVE_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "retrain.cli", "serve", "--config", str(config),
           "--host", "127.0.0.1", "--port", str(port)]
    if in_loop:
        cmd.append("--predict-in-loop")
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


async def open_loop(base: str, rate: float, seconds: float, request) -> dict:
    """Send ``rate`` requests per second for ``seconds`` on a fixed schedule."""
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10,
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        async def one(i: int, scheduled: float) -> None:
            try:
                response = await request(client, i)
                if response.status_code >= 400:
                    key = f"HTTP {response.status_code}: {response.text[:120]}"
                    errors[key] = errors.get(key, 0) + 1
                    return
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                return
            latencies.append(time.perf_counter() - scheduled)

        total = int(rate * seconds)
        tasks = []
        start = time.perf_counter() + 0.05
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {"latencies": sorted(latencies), "errors": errors, "sent": total,
            "elapsed": elapsed}


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
    return figures


def run_mode(config: Path, payloads: list[dict], args, in_loop: bool) -> tuple[dict, dict]:
    port = free_port()
    proc = start_server(config, port, in_loop)
    base = f"http://127.0.0.1:{port}"
    try:
        async def predict(client, i):
            body = {"request_id": f"bench-{in_loop:d}-{i}", **payloads[i % len(payloads)]}
            return await client.post(f"/predict/{MODEL}", json=body)

        async def health(client, i):
            return await client.get("/health")

        asyncio.run(open_loop(base, args.rate, 3, predict))  # warm-up: connections, caches
        mode = "in the event loop" if in_loop else "in the threadpool"
        health_result = asyncio.run(open_loop(base, args.rate, args.seconds / 4, health))
        predict_result = asyncio.run(open_loop(base, args.rate, args.seconds, predict))
        h = summary(f"GET /health ({mode})", health_result)
        p = summary(f"POST /predict ({mode})", predict_result)
        written = httpx.get(f"{base}/health").json()["log"]["predictions"]
        print(f"      prediction log: {written['written']} written, {written['pending']} "
              f"pending, {written['dropped']} dropped")
    finally:
        stop_server(proc)
    return h, p


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=25.0, help="length of the timed run")
    parser.add_argument("--also-in-loop", action="store_true",
                        help="also measure the endpoint run in the event loop (no threadpool)")
    args = parser.parse_args()
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
    results = {"threadpool": run_mode(config, payloads, args, in_loop=False)}
    if args.also_in_loop:
        results["event loop"] = run_mode(config, payloads, args, in_loop=True)
    errors = 0
    print(f"\nmachine load average (1 min) before / after the timed runs: {load_before:.2f} / "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (other work on the machine "
          "shows up in the tail)")
    for mode, (health, predict) in results.items():
        errors += predict["errors"] + health["errors"]
        verdict = "meets" if predict["p99"] < 25 and predict["errors"] == 0 else "MISSES"
        print(f"{mode}: POST /predict p50 {predict['p50']:.2f} ms, p99 {predict['p99']:.2f} ms, "
              f"{predict['throughput']:.0f} requests/s, {predict['errors']} errors "
              f"({verdict} the target p99 < 25 ms, 0 errors)")
        print(f"  ratios: p50 / GET /health p50 = {predict['p50'] / health['p50']:.2f}; "
              f"p50 / in-process batch-path one-row predict = {predict['p50'] / batch_ms:.2f}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
