#!/usr/bin/env python3
"""Keep-alive throughput of the TPP emulator (emulator/README.md, "Performance").

Starts its own emulator (HTTPS by default, --http for plain HTTP), gets a token
through /vedauth/authorize/oauth, then sends PreQualify/Create requests over
--connections keep-alive connections spread over --procs client processes,
each request sent only after the previous reply on that connection was read
in full. Prints one line: requests, seconds, requests/s, and errors.

    python3 emulator/bench_emulator.py --http --requests 50000
    python3 emulator/bench_emulator.py --requests 50000
    python3 emulator/bench_emulator.py --client curl --requests 20000
"""

import argparse
import json
import multiprocessing
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = "/vedsdk/Flow/Actions/CodeSign/PreQualify/Create"
BODY = json.dumps({
    "Dn": "\\VED\\Code Signing\\Projects\\Sample\\Production Environment",
    "Data": "q2rFZ7Tqxo2hKc8fvJNtBkO/7qR4LHCm0mQYDJ3HjNs=",
    "Comment": "benchmark",
    "User": "local:sample-cs-user",
}).encode()


def connect(url, ca):
    u = urlsplit(url)
    s = socket.create_connection((u.hostname, u.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if u.scheme == "https":
        ctx = ssl.create_default_context(cafile=ca)
        s = ctx.wrap_socket(s, server_hostname=u.hostname)
    return s


def read_reply(sock, buf):
    """Read one reply; return (status, body, rest-of-buffer)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    head, _, buf = buf.partition(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(buf) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return status, buf[:length], buf[length:]


def worker(url, ca, token, n, out):
    host = urlsplit(url).netloc
    req = ("POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
           "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
           % (PATH, host, token, len(BODY))).encode() + BODY
    errors = 0
    s = connect(url, ca)
    buf = b""
    for _ in range(n):
        s.sendall(req)
        status, body, buf = read_reply(s, buf)
        if status != 200 or b'"Success":true' not in body:
            errors += 1
    s.close()
    out.append(errors)


def proc_main(url, ca, token, conns, per_conn, start_evt, q):
    out = []
    threads = [threading.Thread(target=worker, args=(url, ca, token, per_conn, out)) for _ in range(conns)]
    start_evt.wait()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    q.put(sum(out) + (conns - len(out)) * per_conn)


def get_token(url, ca):
    s = connect(url, ca)
    body = json.dumps({"client_id": "prequalify", "username": "approver",
                       "password": "approver-pass-1", "scope": "codesign:approve"}).encode()
    s.sendall(("POST /vedauth/authorize/oauth HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Content-Length: %d\r\n\r\n" % len(body)).encode() + body)
    status, data, _ = read_reply(s, b"")
    s.close()
    if status != 200:
        raise SystemExit("oauth failed: %d %s" % (status, data))
    return json.loads(data)["access_token"]


def run_curl(url, ca, token, total, parallel):
    """The same batch through `curl --parallel` (libcurl, one process): (seconds, errors)."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        body = os.path.join(d, "body.json")
        with open(body, "wb") as f:
            f.write(BODY)
        cfg = os.path.join(d, "curl.cfg")
        with open(cfg, "w") as f:
            f.write('header = "Authorization: Bearer %s"\nheader = "Content-Type: application/json"\n'
                    'data-binary = "@%s"\n' % (token, body))
            f.write(('url = "%s%s"\noutput = "/dev/null"\n' % (url, PATH)) * total)
        cmd = ["curl", "-s", "--parallel", "--parallel-max", str(parallel), "-K", cfg, "-w", "%{http_code}\n"]
        if ca:
            cmd[1:1] = ["--cacert", ca]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False, text=True).stdout
        dt = time.perf_counter() - t0
    codes = out.split()
    return dt, total - codes.count("200")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--http", action="store_true", help="plain HTTP (default HTTPS)")
    p.add_argument("--requests", type=int, default=50000)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--procs", type=int, default=2, help="client processes")
    p.add_argument("--client", choices=("python", "curl"), default="python",
                   help="python: raw keep-alive sockets in --procs processes; "
                        "curl: one `curl --parallel --parallel-max CONNECTIONS` run")
    p.add_argument("--url", help="use a running emulator instead of starting one")
    p.add_argument("--ca", default="", help="its CA file (with --url)")
    a = p.parse_args()
    emu = None
    if a.url:
        url, ca = a.url, a.ca
    else:
        cmd = [sys.executable, os.path.join(HERE, "tpp_emulator.py"), "--port", "0"]
        if a.http:
            cmd.append("--http")
        emu = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = emu.stdout.readline().split()
        url = line[1].split("=", 1)[1]
        ca = line[2].split("=", 1)[1]
    try:
        token = get_token(url, ca)
        if a.client == "curl":
            dt, errors = run_curl(url, ca, token, a.requests, a.connections)
            print("%s client=curl requests=%d parallel=%d seconds=%.2f req/s=%.0f errors=%d"
                  % (urlsplit(url).scheme.upper(), a.requests, a.connections, dt, a.requests / dt, errors))
            return 1 if errors else 0
        per_proc = [a.connections // a.procs + (1 if i < a.connections % a.procs else 0) for i in range(a.procs)]
        per_conn = a.requests // a.connections
        total = per_conn * a.connections
        start = multiprocessing.Event()
        q = multiprocessing.Queue()
        procs = [multiprocessing.Process(target=proc_main, args=(url, ca, token, c, per_conn, start, q))
                 for c in per_proc if c]
        for pr in procs:
            pr.start()
        time.sleep(0.5)  # let the client processes set up their threads before the clock starts
        t0 = time.perf_counter()
        start.set()
        errors = sum(q.get() for _ in procs)
        dt = time.perf_counter() - t0
        for pr in procs:
            pr.join()
        print("%s client=python requests=%d connections=%d seconds=%.2f req/s=%.0f errors=%d"
              % (urlsplit(url).scheme.upper(), total, a.connections, dt, total / dt, errors))
        return 1 if errors else 0
    finally:
        if emu is not None:
            emu.terminate()
            emu.wait()


if __name__ == "__main__":
    sys.exit(main())
