"""Benchmarks of `tessera serve` (BENCHMARKS.md): request latency on SQLite and
PostgreSQL, and a generation's wall time through the server against the CLI's.

    python3 tools/bench_serve.py --tessera target/release/tessera [--postgres URL]

Standard library only. Starts its own servers on free ports with throwaway data folders.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request


def start(tessera, data, *args):
    p = subprocess.Popen([tessera, "serve", "--addr", "127.0.0.1:0", "--data", data, *args],
                         stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    for line in p.stderr:
        if "listening on " in line:
            return p, line.split("listening on ")[1].split()[0]
    raise SystemExit("server did not start")


def call(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def timed(n, f):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        out.append((time.perf_counter() - t) * 1000)
    out.sort()
    return statistics.median(out), out[int(len(out) * 0.95) - 1]


def latency(tessera, label, *args, n=200):
    data = tempfile.mkdtemp(prefix="tessera-bench-")
    p, url = start(tessera, data, "--workers", "0", *args)
    try:
        body = {"prompt": "a red ball bounces on a wooden floor", "seconds": "2", "size": "128x128"}
        ids = []
        post = timed(n, lambda: ids.append(call("POST", f"{url}/v1/videos", body)["id"]))
        get = timed(n, lambda: call("GET", f"{url}/v1/videos/{ids[0]}"))
        lst = timed(n, lambda: call("GET", f"{url}/v1/videos?limit=20"))
        print(f"| {label} | {post[0]:.2f} / {post[1]:.2f} | {get[0]:.2f} / {get[1]:.2f} | {lst[0]:.2f} / {lst[1]:.2f} |")
    finally:
        p.terminate()
        p.wait()
        shutil.rmtree(data, ignore_errors=True)


def end_to_end(tessera, runs=3):
    data = tempfile.mkdtemp(prefix="tessera-bench-")
    p, url = start(tessera, data, "--workers", "1")
    body = {"prompt": "a red ball bounces on a wooden floor", "seconds": "2", "size": "128x128", "seed": 1}
    try:
        serve = []
        for _ in range(runs):
            t = time.perf_counter()
            vid = call("POST", f"{url}/v1/videos", body)["id"]
            while call("GET", f"{url}/v1/videos/{vid}")["status"] not in ("completed", "failed"):
                time.sleep(0.02)
            urllib.request.urlopen(f"{url}/v1/videos/{vid}/content").read()
            serve.append(time.perf_counter() - t)
    finally:
        p.terminate()
        p.wait()
        shutil.rmtree(data, ignore_errors=True)
    cli = []
    out = os.path.join(tempfile.mkdtemp(), "b.mp4")
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([tessera, "generate", body["prompt"], "--seconds", "2", "--size", "128x128", "--seed", "1", "-q", "-o", out],
                       check=True, stderr=subprocess.DEVNULL)
        cli.append(time.perf_counter() - t)
    s, c = statistics.median(serve), statistics.median(cli)
    print(f"| 2-s 128x128 clip, 20 steps | {s:.2f} s | {c:.2f} s | {s / c:.2f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tessera", default="target/release/tessera")
    ap.add_argument("--postgres", help="postgres://... (a database the benchmark may write to)")
    a = ap.parse_args()
    print("| queue | POST /v1/videos p50 / p95 ms | GET /v1/videos/{id} | GET /v1/videos?limit=20 |")
    print("|---|---|---|---|")
    latency(a.tessera, "SQLite (WAL, synchronous=FULL)")
    if a.postgres:
        latency(a.tessera, "PostgreSQL 15 (local, fsync off)", "--database-url", a.postgres)
    print()
    print("| job | through tessera serve (POST to downloaded) | tessera generate | ratio |")
    print("|---|---|---|---|")
    end_to_end(a.tessera)


if __name__ == "__main__":
    main()
