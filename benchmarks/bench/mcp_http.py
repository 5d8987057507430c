"""MCP over Streamable HTTP with nothing but a socket: the client side of
the raw HTTP driver (drivers.KilnHTTP).

One McpHttpClient is one MCP session on one keep-alive HTTP/1.1
connection: initialize (kiln's answer names the Mcp-Session-Id), then
notifications/initialized, then JSON-RPC requests POSTed one at a time,
each answered with application/json.  No progress is asked for, so no
answer is an event stream.  The responses are parsed here rather than by
http.client so that many clients can be driven from one thread, each
socket read when a selector says it is readable (pipeline()).
"""
import json
import selectors
import socket
import time
import urllib.parse

ACCEPT = "application/json, text/event-stream"
# kiln closes a connection idle for --http-timeout (30 s by default); one
# idle for longer than this is replaced before it is used again.
IDLE_RECONNECT_S = 10.0


class HttpError(RuntimeError):
    """kiln's answer was not the JSON-RPC response expected."""


class McpHttpClient:
    def __init__(self, url, token=None, protocol="2025-06-18", client_name="kiln-benchmarks"):
        parts = urllib.parse.urlsplit(url)
        self.host, self.port, self.path = parts.hostname, parts.port, parts.path
        self.protocol = protocol
        self.headers = {"Host": f"{self.host}:{self.port}", "Accept": ACCEPT, "Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.sock = None
        self.closing = False  # the server said it closes the connection after its response
        self.buf = bytearray()
        self.last_used = 0.0
        self.next_id = 0
        self._connect()
        status, headers, reply = self.exchange({
            "jsonrpc": "2.0", "id": self._id(), "method": "initialize",
            "params": {"protocolVersion": protocol, "capabilities": {},
                       "clientInfo": {"name": client_name, "version": "0"}}})
        self.session_id = headers.get("mcp-session-id")
        if status != 200 or not self.session_id or "result" not in reply:
            raise HttpError(f"initialize: HTTP {status}, Mcp-Session-Id {self.session_id!r}: {str(reply)[:500]}")
        self.headers["Mcp-Session-Id"] = self.session_id
        self.headers["MCP-Protocol-Version"] = reply["result"]["protocolVersion"]
        status, _, _ = self.exchange({"jsonrpc": "2.0", "method": "notifications/initialized"})
        if status != 202:
            raise HttpError(f"notifications/initialized: HTTP {status}, expected 202")

    # -- the connection ------------------------------------------------------
    def _connect(self):
        if self.sock is not None:
            self.sock.close()
        self.sock = socket.create_connection((self.host, self.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf.clear()
        self.closing = False
        self.last_used = time.monotonic()

    def _id(self):
        self.next_id += 1
        return self.next_id

    def encode(self, msg, method="POST"):
        """MSG (a dict, or None for no body) as the bytes of one HTTP request."""
        body = json.dumps(msg).encode() if msg is not None else b""
        head = f"{method} {self.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
        return (head + f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1") + body

    def will_reconnect(self):
        """Whether the next send() opens a new connection: the server
        closes this one (nginx does after keepalive_requests), or it was
        idle long enough for the server to have closed it."""
        return not self.buf and (self.closing or time.monotonic() - self.last_used > IDLE_RECONNECT_S)

    def send(self, msg, method="POST"):
        """Sends one request; its response is read by receive() or take()."""
        if self.will_reconnect():
            self._connect()
        self.sock.sendall(self.encode(msg, method))
        self.last_used = time.monotonic()

    def take(self):
        """The next whole response in the buffer as (status, headers, body
        bytes), or None while it has not all arrived."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = self.buf[:end].decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers:
            # kiln answers every request this client makes with a length;
            # an event stream would mean it was sent one it did not ask for.
            raise HttpError(f"HTTP {status} without Content-Length ({headers.get('content-type')}): {lines}")
        if headers.get("connection", "").lower() == "close":
            self.closing = True
        length = int(headers["content-length"])
        if len(self.buf) < end + 4 + length:
            return None
        body = bytes(self.buf[end + 4:end + 4 + length])
        del self.buf[:end + 4 + length]
        return status, headers, body

    def feed(self):
        """Reads what the socket has (it must be readable) into the buffer."""
        data = self.sock.recv(1 << 16)
        if not data:
            raise HttpError("kiln closed the connection")
        self.buf += data

    def receive(self):
        """Blocks for the next response: (status, headers, JSON body or None)."""
        while (r := self.take()) is None:
            self.feed()
        self.last_used = time.monotonic()
        status, headers, body = r
        return status, headers, json.loads(body) if body else None

    def exchange(self, msg, method="POST"):
        self.send(msg, method)
        return self.receive()

    # -- JSON-RPC ------------------------------------------------------------
    def request(self, method, params):
        """The JSON-RPC request METHOD as a dict with a fresh id."""
        return {"jsonrpc": "2.0", "id": self._id(), "method": method, "params": params}

    def check(self, want, status, reply):
        """REPLY's result, if it answers request id WANT with HTTP 200 and no error."""
        if status != 200 or not isinstance(reply, dict) or reply.get("id") != want or "error" in reply:
            raise HttpError(f"HTTP {status}: unexpected reply to request {want}: {str(reply)[:500]}")
        return reply["result"]

    def call(self, method, params):
        msg = self.request(method, params)
        status, _, reply = self.exchange(msg)
        return self.check(msg["id"], status, reply)

    def close(self):
        """Ends the MCP session (DELETE) and the connection."""
        try:
            self.exchange(None, method="DELETE")
        except (OSError, HttpError):
            pass
        finally:
            self.sock.close()


def pipeline(clients, make_request, seconds, on_reply):
    """One request in flight per client, the next sent as soon as the
    previous response arrives, for SECONDS; every socket read from one
    selector.  MAKE_REQUEST(i) is client i's next JSON-RPC request (a dict);
    ON_REPLY(i, result, t0, now) is called for each answer.  Returns when
    the last request sent before the end is answered."""
    sel = selectors.DefaultSelector()
    sent = {}
    try:
        start = time.perf_counter()
        end = start + seconds
        for i, c in enumerate(clients):
            msg = make_request(i)
            sent[i] = (msg["id"], time.perf_counter())
            c.send(msg)
            sel.register(c.sock, selectors.EVENT_READ, i)
        while sent:
            for key, _ in sel.select():
                i = key.data
                c = clients[i]
                c.feed()
                while sent.get(i) and (r := c.take()) is not None:
                    now = time.perf_counter()
                    want, t0 = sent.pop(i)
                    status, _, body = r
                    on_reply(i, c.check(want, status, json.loads(body)), t0, now)
                    if now < end:
                        msg = make_request(i)
                        sent[i] = (msg["id"], time.perf_counter())
                        if c.will_reconnect():
                            sel.unregister(c.sock)
                            c.send(msg)
                            sel.register(c.sock, selectors.EVENT_READ, i)
                        else:
                            c.send(msg)
        return start
    finally:
        sel.close()
