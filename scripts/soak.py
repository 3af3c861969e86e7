#!/usr/bin/env python3
"""Soak test driver for `scripts/soak` (stdlib only).

Runs a release dispatcher with a disk buffer for SECONDS of mixed ingest
(HTTP, a tailed file with rotation by rename, syslog over TCP and UDP) into
a local HTTP sink that fails in bursts, kills it with SIGKILL every
KILL_EVERY seconds and restarts it at once on the same ports and
directories. At the end it restarts the dispatcher once more with the sink
healthy, waits until everything accepted has arrived, stops it with SIGTERM
and checks: every event answered 202 and every tailed line must have reached
the sink (dead-lettered events are counted apart). Syslog has no
application-level acknowledgement, so its delivery ratio is reported but
is not part of the bar.

    soak.py SECONDS KILL_EVERY          # the driver (binary from $SWITCHYARD)
    soak.py sink PORT OUT_FILE CTL_FILE  # the bursty sink (started by the driver)
"""

import collections
import http.client
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

# Every event carries one token `sk<kind><n>z`: h = HTTP, t = tailed line,
# s = syslog TCP, u = syslog UDP.
TOKEN = re.compile(r"sk([htsu])(\d+)z")

# The sink's failure pattern, in seconds of its own clock: healthy, then a
# burst of failures, repeating. A 33 s cycle against kills every 60 s puts
# each kill at a different point of the cycle.
HEALTHY_S = 22
BURST_S = 11

# Every process the driver started, so that an interrupted run leaves none behind.
CHILDREN = []


# ---------------------------------------------------------------- the sink


def run_sink(port, out_path, ctl_path):
    """A threaded HTTP server standing in for the http sink's endpoint.

    A batch answered 200 has each of its events' tokens appended to
    OUT_FILE (flushed before the answer, so a record survives whatever the
    dispatcher does next). During a burst it answers 503 (mostly), 500, or
    closes the connection without an answer. Once CTL_FILE exists it is
    healthy for good (the final drain).
    """
    lock = threading.Lock()
    out = open(out_path, "a", buffering=1)
    start = time.monotonic()
    stats = collections.Counter()

    def in_burst():
        if os.path.exists(ctl_path):
            return False
        return (time.monotonic() - start) % (HEALTHY_S + BURST_S) >= HEALTHY_S

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            if n > 64 << 20:
                self.send_error(413)
                return
            body = self.rfile.read(n)
            if in_burst():
                roll = random.random()
                if roll < 0.1:
                    # No answer at all: the client sees a closed connection.
                    stats["closed"] += 1
                    self.close_connection = True
                    return
                status = 500 if roll < 0.25 else 503
                stats[status] += 1
                self.send_response(status)
                if status == 503:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            try:
                events = json.loads(body)
            except ValueError:
                stats[400] += 1
                self.send_response(400)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            tokens = []
            for event in events if isinstance(events, list) else [events]:
                m = TOKEN.search(json.dumps(event))
                tokens.append(m.group(0) if m else "-")
            with lock:
                out.write("".join(t + "\n" for t in tokens))
                out.flush()
            stats[200] += 1
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()
    print("sink answers: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.items(), key=str)), file=sys.stderr)


# ---------------------------------------------------------------- helpers


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def mib(kib):
    return "-" if kib is None else f"{kib / 1024:.1f} MiB"


class Dispatcher:
    """The dispatcher process, restarted on the same ports and directories."""

    def __init__(self, binary, args, log_path):
        self.binary, self.args, self.log_path = binary, args, log_path
        self.proc = None
        self.starts = 0

    def start(self, listen):
        log = open(self.log_path, "a")
        log.write(f"--- start {self.starts} at {time.strftime('%H:%M:%S')}\n")
        log.flush()
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        self.proc = subprocess.Popen([self.binary, "dispatcher", *self.args],
                                     stdout=log, stderr=log, env=env)
        CHILDREN.append(self.proc)
        log.close()
        self.starts += 1
        # Up once /health answers (bounded: a dispatcher that does not come up
        # within 30 s fails the run).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"soak: the dispatcher exited at start (status {self.proc.returncode}); see its log:\n"
                         + tail_of(self.log_path))
            try:
                c = http.client.HTTPConnection(*listen, timeout=1)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        sys.exit("soak: the dispatcher did not answer /health within 30 s; see its log:\n" + tail_of(self.log_path))

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def term(self, timeout=60):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "killed after 60 s"


def log_summary(path, top=8):
    """The dispatcher's WARN/ERROR lines over all its runs, grouped by target
    and the start of the message: shows that retries and the breaker worked."""
    line_re = re.compile(r"^\S+\s+(WARN|ERROR)\s+(\S+?):? ([^;=]*)")
    groups = collections.Counter()
    try:
        with open(path, errors="replace") as f:
            for line in f:
                m = line_re.match(line)
                if m:
                    groups[f"{m.group(1)} {m.group(2)} {m.group(3).strip()[:60]}"] += 1
    except OSError:
        pass
    return "\n".join(f"  {n:6d}  {k}" for k, n in groups.most_common(top)) or "  (none)"


def tail_of(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------- the load


class Load:
    """Four producers on their own threads, each recording what counts."""

    def __init__(self, listen, tail_dir, syslog_tcp, syslog_udp):
        self.listen, self.tail_dir = listen, tail_dir
        self.syslog_tcp, self.syslog_udp = syslog_tcp, syslog_udp
        self.stop = threading.Event()
        self.t0 = time.monotonic()
        # token -> seconds since the start, when it counted (202 / written).
        self.accepted = {}
        self.tailed = {}
        self.syslog_sent = {"s": 0, "u": 0}
        self.http = collections.Counter()
        self.rotations = 0
        self.threads = [threading.Thread(target=f, daemon=True)
                        for f in (self.http_loop, self.tail_loop, self.tcp_loop, self.udp_loop)]

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def now(self):
        return time.monotonic() - self.t0

    def http_loop(self, batch=100, rate=1000):
        """JSON arrays to /v1/logs; only a 202 makes the ids accepted. Ids of
        a request that failed are never sent again (new ids next time)."""
        n, conn = 0, None
        while not self.stop.is_set():
            began = time.monotonic()
            ids = [f"skh{n + i}z" for i in range(batch)]
            n += batch
            body = json.dumps([{"msg": f"soak http {t}", "level": "info", "labels": {"soak": "http"}}
                               for t in ids])
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(*self.listen, timeout=30)
                conn.request("POST", "/v1/logs", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                self.http[resp.status] += 1
                if resp.status == 202:
                    t = self.now()
                    for i in ids:
                        self.accepted[i] = t
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                self.http["connection error"] += 1
                if conn is not None:
                    conn.close()
                conn = None
                self.stop.wait(0.1)
            self.stop.wait(max(0.0, batch / rate - (time.monotonic() - began)))
        if conn is not None:
            conn.close()

    def tail_loop(self, rate=300, rotate_every=45):
        """Lines appended to app.log; every ROTATE_EVERY seconds app.log is
        renamed to app.log.<k> (kept: the glob follows it to its end) and a
        new app.log starts. A line counts once written and flushed."""
        path = os.path.join(self.tail_dir, "app.log")
        f = open(path, "a")
        n, last_rotation = 0, time.monotonic()
        while not self.stop.is_set():
            if time.monotonic() - last_rotation >= rotate_every:
                f.close()
                self.rotations += 1
                os.rename(path, f"{path}.{self.rotations}")
                f = open(path, "a")
                last_rotation = time.monotonic()
            lines = [f"skt{n + i}z" for i in range(10)]
            f.write("".join(f"soak tail {t} level=info\n" for t in lines))
            f.flush()
            t = self.now()
            for i in lines:
                self.tailed[i] = t
            n += 10
            self.stop.wait(10 / rate)
        f.close()

    def tcp_loop(self, rate=100):
        """RFC 5424 syslog over TCP, newline-delimited; a message counts as
        sent once sendall returned (no application-level ack)."""
        n, sock = 0, None
        while not self.stop.is_set():
            try:
                if sock is None:
                    sock = socket.create_connection(self.syslog_tcp, timeout=5)
                msgs = [f"sks{n + i}z" for i in range(10)]
                sock.sendall("".join(f"<14>1 - soakhost soak - - - soak syslog {m}\n" for m in msgs).encode())
                self.syslog_sent["s"] += 10
                n += 10
            except OSError:
                if sock is not None:
                    sock.close()
                sock = None
                n += 10  # those ids may be half sent: never reuse them
            self.stop.wait(10 / rate)
        if sock is not None:
            sock.close()

    def udp_loop(self, rate=50):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        n = 0
        while not self.stop.is_set():
            try:
                sock.sendto(f"<14>1 - soakhost soak - - - soak udp sku{n}z".encode(), self.syslog_udp)
                self.syslog_sent["u"] += 1
            except OSError:
                pass
            n += 1
            self.stop.wait(1 / rate)
        sock.close()


# ---------------------------------------------------------------- the driver


def read_delivered(path):
    counts = collections.Counter()
    with open(path) as f:
        for line in f:
            counts[line.strip()] += 1
    return counts


def dlq_tokens(binary, dlq_dir):
    """Tokens of the events in the dead-letter queue (`switchyard dlq`)."""
    if not os.path.isdir(dlq_dir):
        return set(), 0
    out = subprocess.run([binary, "dlq", "list", "--dir", dlq_dir], capture_output=True, text=True)
    ids = [line.split()[0] for line in out.stdout.splitlines()[1:] if line.split() and line.split()[0].isdigit()]
    tokens = set()
    for i in ids[:5000]:
        show = subprocess.run([binary, "dlq", "show", "--dir", dlq_dir, i], capture_output=True, text=True)
        tokens.update(m.group(0) for m in TOKEN.finditer(show.stdout))
    return tokens, len(ids)


def main(seconds, kill_every):
    binary = os.path.abspath(os.environ.get("SWITCHYARD", "./target/release/switchyard"))
    if not os.access(binary, os.X_OK):
        sys.exit(f"soak: no dispatcher binary at {binary}: build it with `cargo build --release` or set SWITCHYARD")
    work = tempfile.mkdtemp(prefix="soak.")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("soak: interrupted"))
    try:
        return run(binary, work, seconds, kill_every)
    finally:
        for child in CHILDREN:
            if child.poll() is None:
                child.kill()
                child.wait()
        if os.environ.get("SOAK_KEEP"):
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(binary, work, seconds, kill_every):
    tail_dir = os.path.join(work, "tail")
    os.makedirs(tail_dir)
    delivered_path = os.path.join(work, "delivered")
    ctl_path = os.path.join(work, "sink-healthy")
    dlq_dir = os.path.join(work, "dlq")
    listen = ("127.0.0.1", free_port())
    sink_port = free_port()
    syslog_tcp = ("127.0.0.1", free_port())
    syslog_udp = ("127.0.0.1", free_port(socket.SOCK_DGRAM))

    sink = subprocess.Popen([sys.executable, os.path.abspath(__file__), "sink", str(sink_port), delivered_path,
                             ctl_path], stderr=open(os.path.join(work, "sink.log"), "w"))
    CHILDREN.append(sink)
    args = [
        "--listen", f"{listen[0]}:{listen[1]}",
        "--buffer-type", "disk", "--buffer-dir", os.path.join(work, "buffer"),
        "--state-dir", os.path.join(work, "state"),
        "--tail", os.path.join(tail_dir, "app.log*"),
        "--syslog-tcp", f"{syslog_tcp[0]}:{syslog_tcp[1]}",
        "--syslog-udp", f"{syslog_udp[0]}:{syslog_udp[1]}",
        "--service", "http", "--endpoint", f"http://127.0.0.1:{sink_port}/batch",
        "--sink-option", "timeout=10s",
        "--batch-size", "500", "--flush-interval", "200ms",
        # A burst lasts 10 s; retries (and the breaker's waits, which spend
        # none) must outlast it so that nothing is dead-lettered.
        "--retry-attempts", "1000", "--retry-backoff", "200ms",
        "--breaker-timeout", "3s",
        "--dlq-dir", dlq_dir,
    ]
    dispatcher = Dispatcher(binary, args, os.path.join(work, "dispatcher.log"))

    # RSS of whichever dispatcher process runs, every second: (t, start#, KiB).
    samples, sampling = [], threading.Event()

    def sample():
        while not sampling.wait(1.0):
            proc = dispatcher.proc
            if proc is not None and proc.poll() is None:
                kib = rss_kib(proc.pid)
                if kib is not None:
                    samples.append((time.monotonic() - t0, dispatcher.starts, kib))

    # The sink must listen before the dispatcher's first batch.
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", sink_port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)

    t0 = time.monotonic()
    dispatcher.start(listen)
    threading.Thread(target=sample, daemon=True).start()
    load = Load(listen, tail_dir, syslog_tcp, syslog_udp)
    load.start()
    kills, kill_times = 0, []
    end = t0 + seconds
    next_kill = t0 + kill_every if kill_every > 0 else float("inf")
    print(f"soak: {seconds} s, " + (f"SIGKILL every {kill_every} s" if kill_every else "no SIGKILL") + f"; sink {HEALTHY_S} s healthy / {BURST_S} s failing",
          flush=True)
    last_report = t0
    while time.monotonic() < end:
        time.sleep(0.2)
        if dispatcher.proc.poll() is not None:
            sys.exit(f"soak: the dispatcher died by itself (status {dispatcher.proc.returncode}):\n"
                     + tail_of(dispatcher.log_path))
        now = time.monotonic()
        if now >= next_kill and now < end - 5:
            dispatcher.kill9()
            kills += 1
            kill_times.append(now - t0)
            dispatcher.start(listen)
            next_kill += kill_every
        if now - last_report >= 30:
            last_report = now
            rss = samples[-1][2] if samples else None
            print(f"t={now - t0:4.0f}s accepted={len(load.accepted)} tailed={len(load.tailed)} "
                  f"http={dict(load.http)} kills={kills} rss={mib(rss)}", flush=True)
    load_end = time.monotonic() - t0
    load.finish()

    # Final drain: the sink healthy for good, one more SIGKILL and restart,
    # then wait until every accepted id and tailed line has arrived.
    open(ctl_path, "w").close()
    dispatcher.kill9()
    kills += 1
    kill_times.append(time.monotonic() - t0)
    dispatcher.start(listen)
    must = set(load.accepted) | set(load.tailed)
    drain_began = time.monotonic()
    drain_timeout = 120 + seconds / 5
    seen, pos = set(), 0
    while time.monotonic() - drain_began < drain_timeout:
        with open(delivered_path) as f:
            f.seek(pos)
            chunk = f.read()
            # Only whole lines: a batch is being appended while we read.
            cut = chunk.rfind("\n") + 1
            pos += len(chunk[:cut].encode())
            seen.update(chunk[:cut].split())
        if must <= seen:
            break
        time.sleep(1)
    drain_s = time.monotonic() - drain_began
    # Give syslog over UDP/TCP and duplicates a moment to settle as well.
    time.sleep(3)
    status = dispatcher.term()
    sampling.set()
    sink.send_signal(signal.SIGTERM)
    sink.wait(30)

    delivered = read_delivered(delivered_path)
    dead, dlq_records = dlq_tokens(binary, dlq_dir)
    by_kind = collections.Counter()
    for tok in delivered:
        m = TOKEN.fullmatch(tok)
        by_kind[m.group(1) if m else "?"] += 1
    lost = [t for t in must if t not in delivered and t not in dead]
    lost_dlq = [t for t in must if t not in delivered and t in dead]
    dup_ids = [t for t, c in delivered.items() if c > 1]
    dup_copies = sum(c - 1 for c in delivered.values())
    unacked = sum(1 for t in delivered if t.startswith("skh") and t not in load.accepted)

    first_min = [s for s in samples if s[0] <= 60]
    last_min = [s for s in samples if load_end - 60 <= s[0] <= load_end]
    peak = max(samples, key=lambda s: s[2]) if samples else None
    rss_1m = first_min[-1][2] if first_min else None
    rss_end = last_min[-1][2] if last_min else None

    print()
    print(f"duration: {load_end:.0f} s of load, drain {drain_s:.1f} s, kills (SIGKILL) {kills}, "
          f"dispatcher starts {dispatcher.starts}, final SIGTERM exit {status}")
    print(f"http: requests {dict(load.http)}")
    print(f"accepted (HTTP 202): {len(load.accepted)}")
    print(f"tailed lines: {len(load.tailed)} (rotations by rename: {load.rotations})")
    print(f"delivered unique: {len(delivered)} (http {by_kind['h']}, tail {by_kind['t']}, syslog tcp {by_kind['s']}, "
          f"syslog udp {by_kind['u']}, unrecognised {by_kind['?']})")
    print(f"delivered but never answered 202 (request cut by a kill or answered 503): {unacked}")
    print(f"lost (accepted or tailed, never delivered, not dead-lettered): {len(lost)}")
    print(f"duplicated: {len(dup_ids)} ids delivered more than once ({dup_copies} extra copies)")
    print(f"dead-lettered: {dlq_records} records in the DLQ; accepted/tailed ids only there: {len(lost_dlq)}")
    for kind, name in (("s", "tcp"), ("u", "udp")):
        sent = load.syslog_sent[kind]
        ratio = by_kind[kind] / sent if sent else 0
        print(f"syslog {name}: sent {sent}, delivered {by_kind[kind]} ({ratio:.2%}; no ack, not in the bar)")
    if peak:
        print(f"peak RSS: {mib(peak[2])} (dispatcher start #{peak[1]}, t={peak[0]:.0f} s)")
    print(f"RSS at ~1 min: {mib(rss_1m)}; at the end of the load: {mib(rss_end)}; "
          + (f"ratio {rss_end / rss_1m:.3f} ({'within' if abs(rss_end / rss_1m - 1) <= 0.10 else 'NOT within'} 10 %)"
             if rss_1m and rss_end else "ratio -"))
    if kill_every > 0:
        print(f"  (each process lives at most {kill_every} s: the two figures are of different processes)")
    per_start = collections.defaultdict(int)
    for _, start, kib in samples:
        per_start[start] = max(per_start[start], kib)
    print("peak RSS per dispatcher process: " + " ".join(f"{v / 1024:.0f}" for _, v in sorted(per_start.items()))
          + " MiB")
    if lost:
        lost.sort(key=lambda t: load.accepted.get(t, load.tailed.get(t, 0)))
        print("first lost ids (id, seconds since start when accepted/written):")
        for t in lost[:20]:
            print(f"  {t} t={load.accepted.get(t, load.tailed.get(t)):.1f}")
        print(f"kills at: {' '.join(f'{k:.0f}' for k in kill_times)} s")
        print("dispatcher log (end):\n" + tail_of(dispatcher.log_path))
    print(open(os.path.join(work, "sink.log")).read().strip())
    print("dispatcher WARN/ERROR lines, all runs:\n" + log_summary(dispatcher.log_path))
    return 1 if lost else 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "sink":
        run_sink(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        secs = int(sys.argv[1]) if len(sys.argv) > 1 else 600
        every = int(sys.argv[2]) if len(sys.argv) > 2 else 60
        sys.exit(main(secs, every))
