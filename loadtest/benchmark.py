"""Run the serving benchmarks of BENCHMARKS.md on this machine, on loopback.

Needs a registered champion (``make model``) and ``wrk`` on PATH. Starts
each server itself, loads it with wrk for a fixed time, stops it, and prints
a Markdown table. Every server binds 127.0.0.1.

    .venv/bin/python -m loadtest.benchmark --seconds 20
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
PREDICT_LUA = ROOT / "loadtest" / "predict.lua"
BATCH_LUA = ROOT / "loadtest" / "batch.lua"
EXAMPLE = {"country": "es", "event_1": 100, "event_2": 50, "event_3": 10.0}
BIN = Path(sys.executable).parent


def wrk(url: str, script: Path, connections: int, seconds: int) -> dict:
    output = subprocess.run(
        ["wrk", "-t2" if connections > 1 else "-t1", f"-c{connections}",
         f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip

    def ms(label: str) -> float:
        match = re.search(rf"{label}\s+([\d.]+)(us|ms|s)\b", output)
        value, unit = float(match.group(1)), match.group(2)
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50": ms("50%"),
        "p99": ms("99%"),
        "errors": int(errors.group(1)) if errors else 0,
    }


def wait_ready(url: str, timeout_s: float = 120) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            if httpx.post(f"{url}/predict", json=EXAMPLE, timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout_s} s")


def ray_resident_mib() -> float:
    """Resident memory of every Ray and HAProxy process on this machine."""
    total = 0
    for process in psutil.process_iter(["name", "cmdline", "memory_info"]):
        text = " ".join(process.info["cmdline"] or [process.info["name"] or ""])
        if any(key in text for key in ("ray", "haproxy", "gcs_server", "raylet")):
            total += process.info["memory_info"].rss
    return total / 2**20


def start(command: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
    subprocess.run([str(BIN / "ray"), "stop", "--force"], capture_output=True)


def row(name: str, result: dict) -> str:
    return (
        f"| {name} | {result['rps']:.0f} | {result['p50']:.2f} | "
        f"{result['p99']:.2f} | {result['errors']} |"
    )


def measure(name: str, url: str, connections: list[int], seconds: int, lines) -> dict:
    results = {c: wrk(url, PREDICT_LUA, c, seconds) for c in connections}
    for count, result in results.items():
        lines.append(row(f"{name}, c={count}", result))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20, help="duration of each run")
    parser.add_argument(
        "--connections", type=int, default=20, help="wrk connections under load"
    )
    parser.add_argument(
        "--service-only",
        action="store_true",
        help="measure only this service, not the default proxy or the baselines",
    )
    args = parser.parse_args()
    seconds, load = args.seconds, args.connections
    lines = [
        "| server | requests/s | p50 ms | p99 ms | non-2xx |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    url = "http://127.0.0.1:8000"
    fast = {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        "RAY_worker_niceness": "0",
    }

    server = start(["make", "serve"], fast)
    cold_start = wait_ready(url)
    time.sleep(10)
    idle_mib = ray_resident_mib()
    ours = measure("this service, /predict", url, [1, load, 32], seconds, lines)
    loaded_mib = ray_resident_mib()
    batch = wrk(url, BATCH_LUA, 4, seconds)
    lines.append(row("this service, /batch_predict 1,000 users, c=4", batch))
    stop(server)
    if args.service_only:
        print("\n".join(lines))
        print(f"/batch_predict: {batch['rps'] * 1000:.0f} users/s")
        return

    plain = {
        **fast,
        "RAY_SERVE_ENABLE_HA_PROXY": "0",
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "0",
    }
    server = start(["make", "serve"], plain)
    wait_ready(url)
    default_proxy = measure("same, Serve's default proxy", url, [load], seconds, lines)
    stop(server)

    flask_url = "http://127.0.0.1:8101"
    flask = start(
        [str(BIN / "gunicorn"), "-w", "2", "-b", flask_url.removeprefix("http://"),
         "loadtest.baselines.flask_app:app"]
    )  # fmt: skip
    wait_ready(flask_url)
    flask_name = "(a) Flask + pandas + native pipeline"
    flask_results = measure(flask_name, flask_url, [1, load], seconds, lines)
    stop(flask)

    asgi_url = "http://127.0.0.1:8102"
    asgi = start(
        [str(BIN / "uvicorn"), "--workers", "2", "--host", "127.0.0.1",
         "--port", "8102", "--no-access-log", "loadtest.baselines.asgi_app:app"]
    )  # fmt: skip
    wait_ready(asgi_url)
    asgi_name = "(b) bare uvicorn + ONNX Runtime"
    asgi_results = measure(asgi_name, asgi_url, [1, load], seconds, lines)
    stop(asgi)

    ours_rps = ours[load]["rps"]
    print("\n".join(lines))
    print(f"\ncold start (make serve to first 200 from /predict): {cold_start:.1f} s")
    print(f"resident memory of Ray and HAProxy: idle {idle_mib:.0f} MiB, "
          f"after load {loaded_mib:.0f} MiB")  # fmt: skip
    print(f"/batch_predict: {batch['rps'] * 1000:.0f} users/s")
    print(
        f"ratio to (a) Flask at c={load}: {ours_rps / flask_results[load]['rps']:.1f}x"
    )
    print(
        f"ratio to (b) uvicorn at c={load}: {ours_rps / asgi_results[load]['rps']:.0%}"
    )
    print(
        f"ratio to Serve's default proxy: {ours_rps / default_proxy[load]['rps']:.1f}x"
    )


if __name__ == "__main__":
    main()
