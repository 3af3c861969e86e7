#!/usr/bin/env python3
"""Instructions per event of the dispatcher, counted by valgrind's callgrind.

Wall-clock rates swing with whatever else the machine runs; instruction counts
do not. For each scenario the dispatcher runs alone under callgrind twice, with
a small and a large number of events; the difference of the two totals divided
by the difference of the event counts is the cost of one event without
start-up and shutdown.

Scenarios (the paths of `switchyard bench ingest`, `bench tail` and
`bench redis-dispatch`):
  ingest  HTTP ingest of ~170-byte log records (1000-record JSON arrays) -> file
  tail    a file of the same records, NDJSON, followed with --tail-json -> file
  redis   a Redis stream of LLM-proxy exchanges (2 KB bodies) -> LLM transform -> file

Usage: scripts/instructions-per-event.py BINARY [ingest|tail|redis ...] [--small N] [--large N]
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def record(seq):
    return (
        '{"timestamp":"2026-11-22T09:00:00.%06dZ","level":"info",'
        '"message":"GET /api/v1/users/%d completed in %dms",'
        '"service":"api-gateway","host":"web-01","seq":%d}'
        % (seq % 1_000_000, seq % 100_000, seq % 997, seq)
    )


def lines_in(path):
    try:
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


def wait_for(cond, what, timeout=600):
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def total_ir(out_prefix):
    """Sum of the `summary:`/`totals:` lines of every callgrind output file."""
    total = 0
    directory, base = os.path.split(out_prefix)
    for name in os.listdir(directory):
        if not name.startswith(base):
            continue
        with open(os.path.join(directory, name)) as f:
            for line in f:
                m = re.match(r"^(?:summary|totals):\s+(\d+)", line)
                if m:
                    total += int(m.group(1))
                    break
    return total


class Dispatcher:
    def __init__(self, binary, work, args):
        self.port = free_port()
        self.out = os.path.join(work, "out.jsonl")
        self.cg = os.path.join(work, "callgrind.out")
        cmd = [
            "valgrind", "--tool=callgrind", "--quiet",
            f"--callgrind-out-file={self.cg}.%p",
            binary, "dispatcher",
            "--service", "file", "--endpoint", self.out,
            "--listen", f"127.0.0.1:{self.port}",
            "--flush-interval", "100ms", "--batch-size", "1000",
            "--no-dlq",
        ] + args
        env = dict(os.environ, RUST_LOG="warn")
        self.proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL)
        wait_for(self.listening, "the dispatcher to listen", 120)

    def listening(self):
        if self.proc.poll() is not None:
            raise SystemExit(f"the dispatcher exited with {self.proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def stop(self, expect_lines):
        wait_for(lambda: lines_in(self.out) >= expect_lines, f"{expect_lines} lines")
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=300)
        got = lines_in(self.out)
        if got != expect_lines:
            raise SystemExit(f"expected {expect_lines} lines, found {got}")
        return total_ir(self.cg)


def run_ingest(binary, work, n):
    d = Dispatcher(binary, work, [])
    for start in range(0, n, 1000):
        body = ("[" + ",".join(record(i) for i in range(start, min(n, start + 1000))) + "]").encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{d.port}/v1/logs", data=body,
            headers={"content-type": "application/json"}, method="POST")
        urllib.request.urlopen(req, timeout=120).read()
    return d.stop(n)


def run_tail(binary, work, n):
    src = os.path.join(work, "in.ndjson")
    with open(src, "w") as f:
        for i in range(n):
            f.write(record(i) + "\n")
    d = Dispatcher(binary, work, ["--tail", src, "--tail-json", "--tail-from", "head",
                                  "--state-dir", os.path.join(work, "state")])
    return d.stop(n)


def run_redis(binary, work, n):
    port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"], stdout=subprocess.DEVNULL, cwd=work)
    try:
        url = f"redis://127.0.0.1:{port}/"
        wait_for(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"],
                                        capture_output=True).returncode == 0, "redis")
        subprocess.run([binary, "bench", "redis-publish", "--redis-url", url,
                        "--stream", "ipe", "--events", str(n), "--body-bytes", "2048",
                        "--max-len", str(n + 1000)], check=True, stdout=subprocess.DEVNULL)
        d = Dispatcher(binary, work, [
            "--event-bus", "redis", "--redis-url", url, "--redis-stream-key", "ipe",
            "--redis-stream-batch-size", "1000", "--queue-capacity", "20000"])
        return d.stop(n)
    finally:
        redis.terminate()
        redis.wait()


SCENARIOS = {"ingest": run_ingest, "tail": run_tail, "redis": run_redis}
SIZES = {"ingest": (10_000, 40_000), "tail": (10_000, 40_000), "redis": (4_000, 14_000)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("binary")
    p.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    p.add_argument("--small", type=int)
    p.add_argument("--large", type=int)
    a = p.parse_args()
    binary = os.path.abspath(a.binary)
    results = {}
    for name in a.scenarios:
        small, large = SIZES[name]
        small, large = a.small or small, a.large or large
        irs = []
        for n in (small, large):
            work = tempfile.mkdtemp(prefix="switchyard-ipe-")
            try:
                irs.append(SCENARIOS[name](binary, work, n))
            finally:
                shutil.rmtree(work, ignore_errors=True)
        per_event = (irs[1] - irs[0]) / (large - small)
        results[name] = {"small": small, "ir_small": irs[0], "large": large,
                         "ir_large": irs[1], "ir_per_event": round(per_event)}
        print(f"{name}: {irs[0]:,} Ir at {small} events, {irs[1]:,} Ir at {large}: "
              f"{per_event:,.0f} Ir per event", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    sys.exit(main())
