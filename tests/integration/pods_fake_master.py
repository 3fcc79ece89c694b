#!/usr/bin/env python3
"""End-to-end check of the agent's pod worker against Podman with a tiny
fake master (stdlib only). Not a ctest test (needs root and the Podman
engine from ../shared/engine/podman-engine.sh up); run by hand:

    python3 tests/integration/pods_fake_master.py BUILD_DIR

It serves /node_service_pods/list from a mutable pod list, records every
agent call, and walks through: create + start with name/labels/env,
set_state with rev, wait_for_port, logs, health checks, a killed
container restarted with backoff, a new revision (recreate), a bad image
(precise pull error), notify_update coalescing, and pod removal.
"""

import base64
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wsproto as wp  # noqa: E402

SOCK = "/run/podman/podman.sock"
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SID = "5a1000000000000000000001"
SID2 = "5a1000000000000000000002"
SID3 = "5a1000000000000000000003"


def engine(method, path):
    """One call to the engine with curl; returns (status, json or text)."""
    out = subprocess.run(
        ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-X", method,
         "--unix-socket", SOCK, "http://d/v1.41" + path],
        capture_output=True, text=True, timeout=60).stdout
    body, _, code = out.rpartition("\n")
    try:
        return int(code), json.loads(body) if body else None
    except ValueError:
        return int(code), body


def our_containers():
    f = urllib.parse.quote(json.dumps({"label": ["io.kontena.service.id"]}))
    return engine("GET", "/containers/json?all=1&filters=" + f)[1]


def pod(sid, name, n, rev, srev, cmd, desired="running", image="busybox",
        **extra):
    p = {
        "id": "%s/%d" % (sid, n), "desired_state": desired,
        "service_id": sid, "service_name": name, "service_revision": srev,
        "instance_number": n, "image_name": image, "deploy_rev": rev,
        "cmd": cmd, "env": ["A=1", "KONTENA_SERVICE_ID=" + sid],
        "secrets": [{"name": "PASS", "type": "env", "value": "s3"}],
        "labels": {"io.kontena.service.id": sid,
                   "io.kontena.service.name": name,
                   "io.kontena.grid.name": "test"},
        "stop_grace_period": 1, "hostname": "%s-%d" % (name, n),
        "ports": [], "volumes": [],
    }
    p.update(extra)
    return p


class Master:
    def __init__(self):
        self.lock = threading.Lock()
        self.pods = []
        self.calls = []  # (time, method, params)
        self.conn = None
        self.lists = 0
        self.list_delay = 0.0
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(4)
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            c, _ = self.srv.accept()
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def send(self, c, payload, opcode=wp.OP_BINARY):
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([n])
        elif n < 65536:
            head += bytes([126]) + struct.pack(">H", n)
        else:
            head += bytes([127]) + struct.pack(">Q", n)
        with self.lock:
            c.sendall(head + payload)

    def serve(self, c):
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += c.recv(4096)
        head, _, buf = buf.partition(b"\r\n\r\n")
        key = [ln.split(b":", 1)[1].strip() for ln in head.split(b"\r\n")
               if ln.lower().startswith(b"sec-websocket-key")][0]
        acc = base64.b64encode(hashlib.sha1(key + GUID).digest())
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc +
                  b"\r\n\r\n")
        self.conn = c
        msg = b""
        while True:
            while True:
                if len(buf) >= 2:
                    n = buf[1] & 0x7f
                    off = 2
                    if n == 126:
                        if len(buf) < 4:
                            n = None
                        else:
                            n, off = struct.unpack(">H", buf[2:4])[0], 4
                    elif n == 127:
                        if len(buf) < 10:
                            n = None
                        else:
                            n, off = struct.unpack(">Q", buf[2:10])[0], 10
                    if n is not None and len(buf) >= off + 4 + n:
                        break
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            op = buf[0] & 0x0f
            fin = buf[0] & 0x80
            mask = buf[off:off + 4]
            data = bytes(b ^ mask[i % 4] for i, b in
                         enumerate(buf[off + 4:off + 4 + n]))
            buf = buf[off + 4 + n:]
            if op == wp.OP_PING:
                self.send(c, data, wp.OP_PONG)
                continue
            if op == wp.OP_CLOSE:
                return
            msg += data
            if not fin:
                continue
            m, msg = wp.unpack(msg), b""
            threading.Thread(target=self.handle, args=(c, m),
                             daemon=True).start()

    def handle(self, c, m):
        if m[0] == 0:
            _, msgid, method, params = m
        else:
            _, method, params = m
            msgid = None
        with self.lock:
            self.calls.append((time.monotonic(), method, params))
        result = {}
        if method == "/node_service_pods/list":
            with self.lock:
                self.lists += 1
                pods = json.loads(json.dumps(self.pods))
            time.sleep(self.list_delay)
            result = {"service_pods": pods}
        if msgid is not None:
            self.send(c, wp.response(msgid, None, result))

    def notify_update(self, reason="deploy"):
        self.send(self.conn, wp.notify("/service_pods/notify_update", [reason]))

    def set_pods(self, pods):
        with self.lock:
            self.pods = pods

    def calls_of(self, method, since=0.0):
        with self.lock:
            return [p for t, mth, p in self.calls if mth == method and t >= since]


def wait(what, fn, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError("timed out: " + what)


def states_for(m, sid, since=0.0):
    return [p[1] for p in m.calls_of("/node_service_pods/set_state", since)
            if p[1]["service_id"] == sid]


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build-podw"
    for ct in our_containers() or []:
        engine("DELETE", "/containers/%s?force=1&v=1" % ct["Id"])
    m = Master()
    log = open("/tmp/podw-agent.log", "w")
    env = dict(os.environ, KONTENA_URI="ws://127.0.0.1:%d" % m.port,
               KONTENA_TOKEN="t", KONTENA_NODE_ID="n1",
               KONTENA_NODE_NAME="n1", DOCKER_HOST="unix://" + SOCK,
               KONTENA_PODS_INTERVAL="3", LOG_LEVEL="debug")
    web = pod(SID, "web", 1, "2026-11-25 12:00:00 UTC", 1,
              ["httpd", "-f", "-p", "8080", "-h", "/etc"],
              wait_for_port=8080)
    web["labels"].update({"io.kontena.health_check.protocol": "http",
                          "io.kontena.health_check.port": "8080",
                          "io.kontena.health_check.uri": "/hostname",
                          "io.kontena.health_check.interval": "2",
                          "io.kontena.health_check.initial_delay": "1",
                          "io.kontena.health_check.timeout": "2"})
    talker = pod(SID2, "talk", 1, "2026-11-25 12:00:00 UTC", 1,
                 ["sh", "-c", "i=0; while true; do echo line $i; "
                  "echo err $i >&2; i=$((i+1)); sleep 0.2; done"])
    m.set_pods([web, talker])
    agent = subprocess.Popen([os.path.join(build, "kontena-agent")], env=env,
                             stdout=log, stderr=subprocess.STDOUT)
    ok = False
    try:
        # 1. created with the right name, labels and env; running + rev.
        ct = wait("web-1 running", lambda: [c for c in our_containers()
                                            if "/web-1" in c["Names"] or
                                            "web-1" in c["Names"]])[0]
        _, ins = engine("GET", "/containers/web-1/json")
        assert ins["State"]["Running"], ins["State"]
        labels = ins["Config"]["Labels"]
        assert labels["io.kontena.service.id"] == SID, labels
        assert labels["io.kontena.container.deploy_rev"] == web["deploy_rev"]
        assert "PASS=s3" in ins["Config"]["Env"], ins["Config"]["Env"]
        assert "A=1" in ins["Config"]["Env"]
        st = wait("set_state running web",
                  lambda: [s for s in states_for(m, SID)
                           if s["state"] == "running"])
        assert st[0]["rev"] == web["deploy_rev"], st
        assert st[0]["instance_number"] == 1
        print("ok 1 create/start, labels/env, set_state running rev", st[0])
        # wait_for_port was probed before the report
        lg = open("/tmp/podw-agent.log").read()
        assert "port 8080 is open" in lg, "no port wait in the log"
        print("ok 2 wait_for_port")
        # 3. containers/save + cleanup on connect, logs, health
        assert m.calls_of("/containers/cleanup"), "no cleanup"
        wait("save", lambda: m.calls_of("/containers/save"))
        batch = wait("log_batch", lambda: m.calls_of("/containers/log_batch"))
        lines = [e for b in batch for e in b[0]]
        assert any(e["data"].startswith("line ") and e["type"] == "stdout"
                   for e in lines), lines[:3]
        assert any(e["data"].startswith("err ") and e["type"] == "stderr"
                   for e in lines), lines[:3]
        print("ok 3 save/cleanup/log_batch (%d lines)" % len(lines))
        h = wait("health", lambda: m.calls_of("/containers/health"))
        assert h[0][0]["status"] == "healthy", h
        print("ok 4 health", h[0][0])
        # 5. killed -> restarted by the agent with backoff
        t0 = time.monotonic()
        engine("POST", "/containers/web-1/kill?signal=SIGKILL")
        wait("restarted", lambda: engine("GET", "/containers/web-1/json")[1]
             ["State"]["Running"] and time.monotonic() - t0 > 0.5, 20)
        print("ok 5 restarted after %.1f s" % (time.monotonic() - t0))
        # 6. new revision -> recreated
        old_id = engine("GET", "/containers/web-1/json")[1]["Id"]
        web2 = json.loads(json.dumps(web))
        web2["service_revision"] = 2
        web2["deploy_rev"] = "2026-11-25 12:05:00 UTC"
        web2["env"].append("B=2")
        t1 = time.monotonic()
        m.set_pods([web2, talker])
        m.notify_update()
        st = wait("running rev 2", lambda: [s for s in states_for(m, SID, t1)
                                            if s["rev"] == web2["deploy_rev"]
                                            and s["state"] == "running"])
        ins = engine("GET", "/containers/web-1/json")[1]
        assert ins["Id"] != old_id and "B=2" in ins["Config"]["Env"]
        print("ok 6 recreated on the new revision in %.1f s"
              % (time.monotonic() - t1))
        # 7. bad image -> precise error, never a hang
        bad = pod(SID3, "bad", 1, "2026-11-25 12:06:00 UTC", 1, ["true"],
                  image="busybox:nope")
        t2 = time.monotonic()
        m.set_pods([web2, talker, bad])
        m.notify_update()
        st = wait("bad image state", lambda: states_for(m, SID3, t2))
        assert st[0]["state"] == "missing" and "pull failed" in st[0]["error"], st
        print("ok 7 bad image:", st[0]["error"])
        # 8. notify coalescing: a slow list, three notifies -> 2 pulls
        m.list_delay = 1.0
        time.sleep(0.5)
        n0 = m.lists
        for _ in range(3):
            m.notify_update()
            time.sleep(0.05)
        time.sleep(2.8)
        m.list_delay = 0.0
        print("ok 8 notify x3 during a slow pull -> %d pulls" % (m.lists - n0))
        assert m.lists - n0 <= 3, m.lists - n0
        # 9. stopped -> stopped; removed -> container removed + destroy
        t3 = time.monotonic()
        talk_stopped = dict(talker, desired_state="stopped")
        m.set_pods([web2, talk_stopped])
        m.notify_update()
        wait("talk stopped", lambda: [s for s in states_for(m, SID2, t3)
                                      if s["state"] == "stopped"])
        print("ok 9 stopped")
        m.set_pods([])
        m.notify_update()
        wait("all removed", lambda: our_containers() == [], 30)
        wait("destroy", lambda: [e for e in m.calls_of("/containers/event", t3)
                                 if e[0]["status"] == "destroy"])
        print("ok 10 removed, destroy events sent")
        ok = True
    finally:
        agent.terminate()
        try:
            agent.wait(10)
        except subprocess.TimeoutExpired:
            agent.kill()
        log.close()
        if not ok:
            print(open("/tmp/podw-agent.log").read()[-6000:])
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
