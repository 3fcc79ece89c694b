"""A raw WebSocket client and a minimal MessagePack codec for testing the
agent protocol (spec kontena-master.md section 4). Python 3 standard
library only.

* pack(value) / unpack(bytes): MessagePack for nil, bool, int, float, str,
  bin (bytes), array (list/tuple) and map (dict). unpack() is strict: a
  truncated value, trailing bytes, ext types or 0xc1 raise MsgpackError.
* WSClient: TCP socket, HTTP/1.1 upgrade with custom headers, masked client
  frames (any opcode, fragmentation, raw bytes), frames read one by one or
  assembled into messages (pings answered automatically unless told not
  to), close frames with code and reason.
* connect_agent(): the handshake of an agent (Kontena-* headers) returning
  the client after the 101; recv_message() returns decoded RPC arrays.
"""

import base64
import datetime
import hashlib
import os
import select
import socket
import struct
import time

# ==== MessagePack ====


class MsgpackError(ValueError):
    pass


def pack(v):
    """Encodes v (None, bool, int, float, str, bytes, list/tuple, dict)."""
    out = bytearray()
    _pack(v, out)
    return bytes(out)


def _pack(v, out):
    if v is None:
        out.append(0xc0)
    elif v is True:
        out.append(0xc3)
    elif v is False:
        out.append(0xc2)
    elif isinstance(v, int):
        if 0 <= v <= 0x7f:
            out.append(v)
        elif -32 <= v < 0:
            out.append(v & 0xff)
        elif 0 <= v <= 0xff:
            out += b"\xcc" + struct.pack(">B", v)
        elif 0 <= v <= 0xffff:
            out += b"\xcd" + struct.pack(">H", v)
        elif 0 <= v <= 0xffffffff:
            out += b"\xce" + struct.pack(">I", v)
        elif 0 <= v <= 0xffffffffffffffff:
            out += b"\xcf" + struct.pack(">Q", v)
        elif -0x80 <= v < 0:
            out += b"\xd0" + struct.pack(">b", v)
        elif -0x8000 <= v < 0:
            out += b"\xd1" + struct.pack(">h", v)
        elif -0x80000000 <= v < 0:
            out += b"\xd2" + struct.pack(">i", v)
        elif -0x8000000000000000 <= v < 0:
            out += b"\xd3" + struct.pack(">q", v)
        else:
            raise MsgpackError("integer out of range: %d" % v)
    elif isinstance(v, float):
        out += b"\xcb" + struct.pack(">d", v)
    elif isinstance(v, str):
        b = v.encode("utf-8", "surrogatepass")
        n = len(b)
        if n < 32:
            out.append(0xa0 | n)
        elif n <= 0xff:
            out += b"\xd9" + struct.pack(">B", n)
        elif n <= 0xffff:
            out += b"\xda" + struct.pack(">H", n)
        else:
            out += b"\xdb" + struct.pack(">I", n)
        out += b
    elif isinstance(v, (bytes, bytearray)):
        n = len(v)
        if n <= 0xff:
            out += b"\xc4" + struct.pack(">B", n)
        elif n <= 0xffff:
            out += b"\xc5" + struct.pack(">H", n)
        else:
            out += b"\xc6" + struct.pack(">I", n)
        out += bytes(v)
    elif isinstance(v, (list, tuple)):
        n = len(v)
        if n < 16:
            out.append(0x90 | n)
        elif n <= 0xffff:
            out += b"\xdc" + struct.pack(">H", n)
        else:
            out += b"\xdd" + struct.pack(">I", n)
        for e in v:
            _pack(e, out)
    elif isinstance(v, dict):
        n = len(v)
        if n < 16:
            out.append(0x80 | n)
        elif n <= 0xffff:
            out += b"\xde" + struct.pack(">H", n)
        else:
            out += b"\xdf" + struct.pack(">I", n)
        for k, e in v.items():
            _pack(k, out)
            _pack(e, out)
    else:
        raise MsgpackError("cannot pack %r" % type(v))


def unpack(data):
    """Decodes exactly one value from data (bytes)."""
    v, off = unpack_from(data, 0)
    if off != len(data):
        raise MsgpackError("%d trailing bytes" % (len(data) - off))
    return v


def unpack_from(data, off, depth=0):
    """Decodes one value at off; returns (value, new offset)."""
    if depth > 512:
        raise MsgpackError("nesting too deep")

    def take(n):
        nonlocal off
        if off + n > len(data):
            raise MsgpackError("truncated")
        b = data[off:off + n]
        off += n
        return b

    b = take(1)[0]
    if b <= 0x7f:
        return b, off
    if b >= 0xe0:
        return b - 0x100, off
    if 0x80 <= b <= 0x8f:
        return _map(data, off, b & 0x0f, depth)
    if 0x90 <= b <= 0x9f:
        return _array(data, off, b & 0x0f, depth)
    if 0xa0 <= b <= 0xbf:
        return _str(take(b & 0x1f)), off
    if b == 0xc0:
        return None, off
    if b == 0xc2:
        return False, off
    if b == 0xc3:
        return True, off
    if b in (0xc4, 0xc5, 0xc6):
        n = struct.unpack(">" + "BHI"[b - 0xc4], take(1 << (b - 0xc4)))[0]
        return bytes(take(n)), off
    if b == 0xca:
        return struct.unpack(">f", take(4))[0], off
    if b == 0xcb:
        return struct.unpack(">d", take(8))[0], off
    if 0xcc <= b <= 0xcf:
        n = 1 << (b - 0xcc)
        return struct.unpack(">" + "BHIQ"[b - 0xcc], take(n))[0], off
    if 0xd0 <= b <= 0xd3:
        n = 1 << (b - 0xd0)
        return struct.unpack(">" + "bhiq"[b - 0xd0], take(n))[0], off
    if b in (0xd9, 0xda, 0xdb):
        n = struct.unpack(">" + "BHI"[b - 0xd9], take(1 << (b - 0xd9)))[0]
        return _str(take(n)), off
    if b in (0xdc, 0xdd):
        n = struct.unpack(">" + "HI"[b - 0xdc], take(2 << (b - 0xdc)))[0]
        return _array(data, off, n, depth)
    if b in (0xde, 0xdf):
        n = struct.unpack(">" + "HI"[b - 0xde], take(2 << (b - 0xde)))[0]
        return _map(data, off, n, depth)
    if b == 0xc1:
        raise MsgpackError("invalid byte 0xc1")
    raise MsgpackError("ext type 0x%02x not supported" % b)


def _str(b):
    return bytes(b).decode("utf-8", "replace")


def _array(data, off, n, depth):
    if n > len(data) - off:
        raise MsgpackError("array length exceeds the data")
    out = []
    for _ in range(n):
        v, off = unpack_from(data, off, depth + 1)
        out.append(v)
    return out, off


def _map(data, off, n, depth):
    if n > len(data) - off:
        raise MsgpackError("map length exceeds the data")
    out = {}
    for _ in range(n):
        k, off = unpack_from(data, off, depth + 1)
        v, off = unpack_from(data, off, depth + 1)
        if isinstance(k, (list, dict)):
            k = repr(k)
        out[k] = v
    return out, off


# ==== RPC frames (spec 4.3) ====

REQUEST, RESPONSE, NOTIFY = 0, 1, 2


def request(msgid, method, params):
    return pack([REQUEST, msgid, method, list(params)])


def response(msgid, error, result):
    return pack([RESPONSE, msgid, error, result])


def notify(method, params):
    return pack([NOTIFY, method, list(params)])


# ==== WebSocket ====

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xa
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WSError(Exception):
    pass


class WSClosed(WSError):
    """The peer closed: code/reason from its close frame (code None when
    the TCP connection ended without one)."""

    def __init__(self, code, reason=""):
        WSError.__init__(self, "closed with %s %r" % (code, reason))
        self.code = code
        self.reason = reason


class WSTimeout(WSError):
    pass


def format_time(t=None):
    """Kontena-Connected-At text for epoch seconds t (default now):
    "YYYY-MM-DD HH:MM:SS.nnnnnnnnnZ" in UTC."""
    if t is None:
        t = time.time()
    ns = int(round(t * 1e9))
    secs, frac = divmod(ns, 10 ** 9)
    d = datetime.datetime.fromtimestamp(secs, datetime.timezone.utc)
    return d.strftime("%Y-%m-%d %H:%M:%S") + ".%09dZ" % frac


class WSClient:
    """One client connection. Use connect() or connect_agent()."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.status = None
        self.status_line = None
        self.headers = {}
        self.body = b""
        self.close_code = None  # from the peer's close frame
        self.close_reason = None
        self.closed = False  # a close frame arrived or the TCP ended
        self.close_sent = False
        self.auto_pong = True
        self.pings = []  # payloads of pings received
        self.pongs = []  # payloads of pongs received
        self.frames_log = []  # (opcode, payload) of data frames

    # -- handshake

    @classmethod
    def connect(cls, host, port, path="/", headers=None, timeout=10.0,
                key=None):
        """Opens a TCP connection and sends the upgrade; reads the answer
        head. Raises WSError when the answer is not 101 (status, headers
        and body are still kept on the exception's .client)."""
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c = cls(sock)
        key = key or base64.b64encode(os.urandom(16)).decode()
        lines = ["GET %s HTTP/1.1" % path, "Host: %s:%d" % (host, port),
                 "Upgrade: websocket", "Connection: Upgrade",
                 "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
        for k, v in (headers or {}).items():
            if v is not None:
                lines.append("%s: %s" % (k, v))
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in c.buf:
            c._fill(deadline)
        head, _, rest = c.buf.partition(b"\r\n\r\n")
        c.buf = rest
        hl = head.decode("latin-1").split("\r\n")
        c.status_line = hl[0]
        parts = hl[0].split(" ", 2)
        c.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        for line in hl[1:]:
            k, _, v = line.partition(":")
            k = k.strip().lower()
            c.headers[k] = c.headers[k] + ", " + v.strip() if k in c.headers else v.strip()
        if c.status != 101:
            err = WSError("upgrade answered %r" % c.status_line)
            err.client = c
            raise err
        want = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        if c.headers.get("sec-websocket-accept") != want:
            err = WSError("bad Sec-WebSocket-Accept %r" % c.headers.get("sec-websocket-accept"))
            err.client = c
            raise err
        return c

    # -- low level

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise WSTimeout("timed out waiting for data")
        r, _, _ = select.select([self.sock], [], [], left)
        if not r:
            raise WSTimeout("timed out waiting for data")
        try:
            chunk = self.sock.recv(1 << 16)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.closed = True
            raise WSClosed(self.close_code, self.close_reason or "")
        self.buf += chunk

    def _need(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)

    def send_raw(self, data):
        self.sock.sendall(data)

    @staticmethod
    def build_frame(opcode, payload=b"", fin=True, mask=True, rsv=0,
                    mask_key=None):
        """One frame's bytes (client frames are masked)."""
        payload = bytes(payload)
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload)
        mbit = 0x80 if mask else 0
        if n < 126:
            head = struct.pack(">BB", b0, mbit | n)
        elif n <= 0xffff:
            head = struct.pack(">BBH", b0, mbit | 126, n)
        else:
            head = struct.pack(">BBQ", b0, mbit | 127, n)
        if not mask:
            return head + payload
        key = mask_key or os.urandom(4)
        masked = bytes(b ^ key[i & 3] for i, b in enumerate(payload)) \
            if n < 4096 else _mask_fast(payload, key)
        return head + key + masked

    def send_frame(self, opcode, payload=b"", fin=True, mask=True, rsv=0):
        self.send_raw(self.build_frame(opcode, payload, fin, mask, rsv))

    def send_binary(self, data):
        self.send_frame(OP_BINARY, data)

    def send_text(self, text):
        self.send_frame(OP_TEXT, text.encode() if isinstance(text, str) else text)

    def send_fragmented(self, data, pieces, opcode=OP_BINARY):
        """data as a message of `pieces` frames (continuations after the
        first), with a ping between the first two when pieces > 1."""
        size = max(1, -(-len(data) // pieces))
        chunks = [data[i:i + size] for i in range(0, len(data), size)] or [b""]
        for i, ch in enumerate(chunks):
            self.send_frame(opcode if i == 0 else OP_CONT, ch,
                            fin=(i == len(chunks) - 1))
            if i == 0 and len(chunks) > 1:
                self.send_frame(OP_PING, b"mid")

    def send_ping(self, payload=b""):
        self.send_frame(OP_PING, payload)

    def send_pong(self, payload=b""):
        self.send_frame(OP_PONG, payload)

    def send_close(self, code=1000, reason=""):
        payload = b"" if code is None else struct.pack(">H", code) + reason.encode()
        self.send_frame(OP_CLOSE, payload)
        self.close_sent = True

    def recv_frame(self, timeout=5.0):
        """Reads one frame: (fin, opcode, payload). Raises WSTimeout or
        WSClosed (TCP end). Close frames are returned, and recorded."""
        deadline = time.monotonic() + timeout
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7f
        off = 2
        if n == 126:
            self._need(4, deadline)
            n = struct.unpack(">H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._need(10, deadline)
            n = struct.unpack(">Q", self.buf[2:10])[0]
            off = 10
        key = None
        if b1 & 0x80:
            self._need(off + 4, deadline)
            key = self.buf[off:off + 4]
            off += 4
        self._need(off + n, deadline)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        if key:
            payload = _mask_fast(payload, key)
        fin, opcode = bool(b0 & 0x80), b0 & 0x0f
        if opcode == OP_CLOSE:
            self.closed = True
            if len(payload) >= 2:
                self.close_code = struct.unpack(">H", payload[:2])[0]
                self.close_reason = payload[2:].decode("utf-8", "replace")
            else:
                self.close_code = 1005
                self.close_reason = ""
        return fin, opcode, payload

    def recv_data(self, timeout=5.0):
        """The next data message (opcode, bytes), assembled from
        fragments; answers pings (auto_pong), records pongs. On a close
        frame: answers it and raises WSClosed."""
        deadline = time.monotonic() + timeout
        parts, first_op = [], None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WSTimeout("no message within %.1fs" % timeout)
            fin, op, payload = self.recv_frame(left)
            if op == OP_PING:
                self.pings.append(payload)
                if self.auto_pong:
                    self.send_pong(payload)
                continue
            if op == OP_PONG:
                self.pongs.append(payload)
                continue
            if op == OP_CLOSE:
                if not self.close_sent:
                    try:
                        self.send_close(self.close_code if self.close_code != 1005 else 1000)
                    except OSError:
                        pass
                raise WSClosed(self.close_code, self.close_reason)
            if op in (OP_TEXT, OP_BINARY):
                first_op = op
                parts = [payload]
            elif op == OP_CONT:
                parts.append(payload)
            if fin:
                data = b"".join(parts)
                self.frames_log.append((first_op, data))
                return first_op, data

    def recv_message(self, timeout=5.0):
        """The next binary message decoded from MessagePack (an RPC array
        for the agent protocol)."""
        op, data = self.recv_data(timeout)
        if op != OP_BINARY:
            raise WSError("expected a binary message, got opcode %s: %r" % (op, data[:200]))
        return unpack(data)

    def wait_close(self, timeout=5.0):
        """Reads (and drops) messages until the peer's close frame; returns
        its code (None when the TCP connection ended without one). Raises
        WSTimeout when nothing closes within timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WSTimeout("no close within %.1fs" % timeout)
            try:
                self.recv_data(left)
            except WSClosed as e:
                return e.code

    def expect_eof(self, timeout=5.0):
        """True when the server ends the TCP connection within timeout."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._fill(deadline)
                self.buf = b""
        except WSClosed:
            return True
        except WSTimeout:
            return False

    def is_open(self, wait=0.2):
        """False when a close frame or EOF is pending/seen."""
        if self.closed:
            return False
        try:
            while True:
                fin, op, payload = self.recv_frame(wait)
                if op == OP_CLOSE:
                    return False
                if op == OP_PING and self.auto_pong:
                    self.send_pong(payload)
        except WSTimeout:
            return True
        except WSClosed:
            return False

    def abort(self):
        """Ends the TCP connection without a close frame."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def _mask_fast(payload, key):
    n = len(payload)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


# ==== Agent helpers ====


def agent_headers(grid_token=None, node_token=None, node_id=None,
                  name=None, version="1.5.0", labels=None,
                  connected_at=None):
    """The Kontena-* handshake headers; None leaves a header out.
    connected_at: epoch seconds (float) or ready text; default now."""
    if connected_at is None:
        connected_at = format_time()
    elif not isinstance(connected_at, str):
        connected_at = format_time(connected_at)
    h = {"Kontena-Node-Id": node_id, "Kontena-Node-Name": name,
         "Kontena-Version": version, "Kontena-Connected-At": connected_at,
         "Kontena-Grid-Token": grid_token, "Kontena-Node-Token": node_token}
    if labels is not None:
        h["Kontena-Node-Labels"] = ",".join(labels) if not isinstance(labels, str) else labels
    return h


def connect_agent(port, grid_token=None, node_token=None, node_id=None,
                  name=None, version="1.5.0", labels=None,
                  connected_at=None, host="127.0.0.1", extra_headers=None,
                  timeout=10.0):
    """An agent's WebSocket connection on "/" after the 101 answer."""
    h = agent_headers(grid_token, node_token, node_id, name, version,
                      labels, connected_at)
    if extra_headers:
        h.update(extra_headers)
    return WSClient.connect(host, port, "/", h, timeout=timeout)


def random_node_id():
    """A Docker engine id: 12 groups of 4 [A-Z0-9] joined by ':'."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    raw = os.urandom(48)
    return ":".join("".join(alphabet[b % 36] for b in raw[i:i + 4])
                    for i in range(0, 48, 4))
