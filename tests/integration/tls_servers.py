"""Reusable fixtures for tests that talk TLS to real servers on loopback.

Stdlib only (Debian's /usr/bin/python3) plus the `openssl` and `nginx`
commands. Nothing here mocks a protocol: the servers are real nginx
processes (or, for timeouts, a listener that never answers).

    pki = make_pki(tmp, "ca")          # test CA + server + client certificates
    with Nginx(tmp, pki) as web:       # HTTPS + WebDAV PUT on a free port
        ...PUT https://localhost:{web.port}/a/b...
        open(web.object_path("/a/b"), "rb")

    with HostileServer(pki, "answer", after=0) as bad:   # 200 before the body
        ...bad.engaged.wait(); bad.received...

Every process started here is stopped when its context exits, on stop(),
and at interpreter exit (atexit) as a last resort; nginx runs in its own
process group so that even a hung master takes its workers with it.
"""
import atexit
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

__all__ = ["Pki", "make_pki", "free_port", "wait_for", "nginx_binary", "Nginx",
           "StalledServer", "HostileServer", "FullBacklog", "syn_sent_to",
           "unbufferable_bytes"]

_live = set()  # started servers not yet stopped


@atexit.register
def _stop_all():
    for srv in list(_live):
        try:
            srv.stop()
        except Exception:  # noqa: BLE001 -- best effort at exit
            pass


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=15.0, what="condition"):
    """Polls pred() until it is true; AssertionError naming `what` after
    timeout s (`what` may be a callable, called then: the state at the
    time of failure, not at the start)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for "
                         f"{what() if callable(what) else what}")


def read_status(store):
    """The agent's live counters: STORE/agent.status as a dict of strings
    ({} until the agent has written it)."""
    try:
        with open(os.path.join(store, "agent.status")) as f:
            return dict(line.strip().split("=", 1) for line in f if "=" in line)
    except OSError:
        return {}


def proc_bytes(pid, key):
    """A memory figure of process pid from /proc/PID/status (VmRSS,
    VmHWM, ...), in bytes; 0 if it has none."""
    with open(f"/proc/{pid}/status") as f:
        return next((int(l.split()[1]) << 10 for l in f if l.startswith(key + ":")), 0)


def sanitized(pid):
    """Whether process pid runs under ASan or TSan (gcc links them as
    shared libraries), which hold freed memory: no RSS bound applies."""
    with open(f"/proc/{pid}/maps") as f:
        maps = f.read()
    return "libasan" in maps or "libtsan" in maps


def _can_connect(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


class Pki:
    """A test CA in `dir` and the certificates it issued (all PEM paths):
    ca / ca_key, server_cert / server_key (localhost + 127.0.0.1 unless told
    otherwise), client_cert / client_key (extendedKeyUsage clientAuth).
    issue() makes more certificates from the same CA."""

    def __init__(self, d, name):
        self.dir = d
        self.name = name
        self.ca = os.path.join(d, "ca.pem")
        self.ca_key = os.path.join(d, "ca.key")

    def _ossl(self, *args):
        r = subprocess.run(["openssl", *args], capture_output=True, text=True, cwd=self.dir)
        if r.returncode:
            raise RuntimeError(f"openssl {' '.join(args)}: {r.stderr}")

    def issue(self, stem, ext, cn=None):
        """Issues STEM.pem / STEM.key with the x509v3 extension line `ext`
        (e.g. "subjectAltName=DNS:otherhost"); returns (cert, key) paths."""
        key, csr, cert = (os.path.join(self.dir, f"{stem}.{x}") for x in ("key", "csr", "pem"))
        extfile = os.path.join(self.dir, f"{stem}.ext")
        with open(extfile, "w") as f:
            f.write(ext + "\n")
        self._ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn or stem}",
                   "-keyout", key, "-out", csr)
        self._ossl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
                   "-CAcreateserial", "-days", "2", "-extfile", extfile, "-out", cert)
        return cert, key


def make_pki(d, name="ca", server_san="DNS:localhost,IP:127.0.0.1"):
    """Creates directory d with a fresh CA (CN "embeddb test NAME") and its
    server and client certificates. Another call with another directory
    gives an unrelated CA. Returns a Pki."""
    os.makedirs(d, exist_ok=True)
    pki = Pki(d, name)
    pki._ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
              f"/CN=embeddb test {name}", "-keyout", pki.ca_key, "-out", pki.ca)
    pki.server_cert, pki.server_key = pki.issue("server", f"subjectAltName={server_san}",
                                                cn="server")
    pki.client_cert, pki.client_key = pki.issue("client", "extendedKeyUsage=clientAuth",
                                                cn="client")
    return pki


def nginx_binary():
    """$NGINX, else nginx on PATH, else /usr/sbin/nginx (not on a user's PATH)."""
    return os.environ.get("NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"


def _nginx_without():
    """The http modules this nginx was built without (their temp-path
    directives would be unknown)."""
    try:
        v = subprocess.run([nginx_binary(), "-V"], capture_output=True, text=True).stderr
    except OSError:
        return set()
    return {m for m in ("proxy", "fastcgi", "uwsgi", "scgi")
            if f"--without-http_{m}_module" in v}


class Nginx:
    """nginx serving HTTPS on 127.0.0.1:port with WebDAV PUT into `root`.

    Fixed locations for failure tests:
      /fail500/...  answers 500 (body "injected failure")
      /deny403/...  answers 403
      /small/...    accepts PUT bodies up to 1 KiB, else 413
    require_client_cert: ssl_verify_client on against the pki's CA (nginx
    then answers 400 to a client without a certificate). cert/key override
    the pki's server certificate. extra_conf is pasted into the server block.
    """

    FAIL500 = "/fail500/"
    DENY403 = "/deny403/"
    SMALL = "/small/"

    def __init__(self, tmpdir, pki, require_client_cert=False, cert=None, key=None,
                 extra_conf="", port=None):
        self.dir = os.path.join(tmpdir, f"nginx-{id(self):x}")
        self.root = os.path.join(self.dir, "www")
        for sub in ("www", "body", "logs", "tmp"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        self.port = port or free_port()
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.error_log = os.path.join(self.dir, "logs", "error.log")
        self.access_log = os.path.join(self.dir, "logs", "access.log")
        self.proc = None
        d = self.dir
        temp = "".join(f"    {m}_temp_path {d}/tmp/{m};\n"
                       for m in ("proxy", "fastcgi", "uwsgi", "scgi")
                       if m not in _nginx_without())
        client = (f"        ssl_client_certificate {pki.ca};\n        ssl_verify_client on;\n"
                  if require_client_cert else "")
        with open(self.conf, "w") as f:
            f.write(f"""{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
pid {d}/nginx.pid;
error_log {self.error_log} info;
events {{ worker_connections 256; }}
http {{
    log_format embeddb '$remote_addr "$request" $status $request_length '
                       '$ssl_protocol $ssl_cipher "$http_user_agent"';
    access_log {self.access_log} embeddb;
    client_body_temp_path {d}/body;
{temp}    server {{
        listen 127.0.0.1:{self.port} ssl;
        server_name localhost;
        ssl_certificate {cert or pki.server_cert};
        ssl_certificate_key {key or pki.server_key};
{client}        root {self.root};
        client_max_body_size 0;
        location / {{
            dav_methods PUT DELETE;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
        }}
        location {self.FAIL500} {{ return 500 "injected failure\\n"; }}
        location {self.DENY403} {{ return 403; }}
        location {self.SMALL} {{
            client_max_body_size 1k;
            dav_methods PUT;
            create_full_put_path on;
        }}
{extra_conf}
    }}
}}
""")

    def start(self):
        """Starts nginx and waits until it accepts connections."""
        self.proc = subprocess.Popen(
            [nginx_binary(), "-c", self.conf, "-p", self.dir, "-e", self.error_log,
             "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        _live.add(self)
        try:
            wait_for(lambda: self.proc.poll() is not None or _can_connect(self.port),
                     what=f"nginx to listen on {self.port}")
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.proc.stderr.read().decode()}"
                                   f"{self.log()}")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        """Stops nginx (SIGTERM, then SIGKILL to its process group); idempotent."""
        if self.proc:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=10)
            try:  # orphaned workers, should the master have died first
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if self.proc.stderr:
                self.proc.stderr.close()
            self.proc = None
        _live.discard(self)

    def restart(self):
        self.stop()
        return self.start()

    def object_path(self, url_path):
        """Where a PUT to url_path landed on disk."""
        return os.path.join(self.root, url_path.lstrip("/"))

    def log(self):
        try:
            with open(self.error_log) as f:
                return f.read()
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class StalledServer:
    """A listener on 127.0.0.1:port that accepts and then never answers.

    Plain TCP by default: a TLS client hangs in its handshake. With cert and
    key it completes the TLS handshake, then neither reads nor writes, so a
    client stalls sending a large body or waiting for a response."""

    def __init__(self, cert=None, key=None):
        self.port = free_port()
        self.ctx = None
        if cert:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(cert, key)
        self.sock = None
        self.conns = []
        self.stopping = threading.Event()
        self.thread = None

    def start(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        _live.add(self)
        return self

    def _serve(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            if self.ctx:
                try:
                    conn.settimeout(10)
                    conn = self.ctx.wrap_socket(conn, server_side=True)
                except (OSError, ssl.SSLError):
                    conn.close()
                    continue
            self.conns.append(conn)  # held open, never read

    def stop(self):
        self.stopping.set()
        if self.thread:
            self.thread.join(timeout=5)
            self.thread = None
        for c in self.conns:
            c.close()
        self.conns = []
        if self.sock:
            self.sock.close()
            self.sock = None
        _live.discard(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class HostileServer:
    """An HTTPS server on 127.0.0.1:port that breaks the rules the ways an
    uploader must survive. Per connection it completes the TLS handshake,
    reads the request head, then per `mode`:

      "stall_handshake" no TLS at all: waits for the client's first bytes
                        (its ClientHello), then says nothing
      "answer"          reads `after` body bytes, sends a final `status`
                        (Content-Length: 0), then reads nothing more and
                        holds the connection open until stopped
      "stall_body"      reads `after` body bytes, then nothing, ever
      "stall_response"  reads the whole body (Content-Length), then says nothing
      "flood"           reads the whole body, then sends "HTTP/1.1 100
                        Continue" heads as fast as the client takes them
      "trickle"         reads the whole body, then a 200 head one byte every
                        `interval` seconds, never finishing it
      "continue"        sends "100 Continue" before reading, then reads the
                        whole body and answers 201 (legal, if unasked for)
      "honest"          reads the whole body and answers 201

    Its sockets have a small receive buffer (64 KiB, set before listen), so
    the kernel cannot read on its behalf: once it stops reading, a client
    cannot finish a body much larger than that plus its own send buffer (a
    few MiB at most), and any answer it gets is one given before the server
    had the body. `mode` may be changed between connections.

    State for tests to wait on: `engaged` (an Event) is set once a
    connection reached its mode's point (answered, stalled, flooding,
    trickling, done); `received` is the body bytes read on the latest
    connection, `connections` the count accepted, `answered_after` the body
    bytes read before each "answer", `bodies` the complete bodies received
    ("continue", "honest")."""

    RCVBUF = 64 * 1024

    def __init__(self, pki, mode, after=0, status=200, interval=0.05):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(pki.server_cert, pki.server_key)
        self.mode, self.after, self.status, self.interval = mode, after, status, interval
        self.port = None
        self.engaged = threading.Event()
        self.received = 0
        self.connections = 0
        self.bodies = []
        self.answered_after = []
        self.stopping = threading.Event()
        self.sock = None
        self.lock = threading.Lock()
        self.conns = []
        self.threads = []

    def start(self, port=None):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.RCVBUF)
        self.sock.bind(("127.0.0.1", port or 0))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        t = threading.Thread(target=self._serve, daemon=True)
        t.start()
        self.threads.append(t)
        _live.add(self)
        return self

    def _serve(self):
        while not self.stopping.is_set():
            try:
                raw, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.connections += 1
            t = threading.Thread(target=self._handle, args=(raw,), daemon=True)
            t.start()
            self.threads.append(t)

    def _handle(self, raw):
        mode = self.mode
        with self.lock:
            self.conns.append(raw)
        try:
            raw.settimeout(30)
            if mode == "stall_handshake":
                raw.recv(1, socket.MSG_PEEK)
                self.engaged.set()
                self.stopping.wait()
                return
            conn = self.ctx.wrap_socket(raw, server_side=True)
            with self.lock:
                self.conns.append(conn)
            head, body = self._read_head(conn)
            m = re.search(rb"\r\ncontent-length: *(\d+)", head, re.I)
            length = int(m.group(1)) if m else 0
            if mode == "continue":
                conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            self._read_body(conn, body, self.after if mode in ("answer", "stall_body") else length)
            if mode == "answer":
                self.answered_after.append(len(body))
                conn.sendall(f"HTTP/1.1 {self.status} Whatever\r\nContent-Length: 0\r\n\r\n"
                             .encode())
            elif mode == "flood":
                self.engaged.set()
                while not self.stopping.is_set():
                    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n" * 64)
            elif mode == "trickle":
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Trickle: ")
                self.engaged.set()
                while not self.stopping.wait(self.interval):
                    conn.sendall(b"a")
            elif mode in ("continue", "honest"):
                self.bodies.append(bytes(body))
                conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
            self.engaged.set()
            self.stopping.wait()  # hold the connection, reading nothing
        except (OSError, ssl.SSLError, ValueError):
            pass

    def _read_head(self, conn):
        buf = bytearray()
        while b"\r\n\r\n" not in buf:
            chunk = conn.recv(4096)
            if not chunk or len(buf) > 65536:
                raise ValueError("no request head")
            buf += chunk
        end = buf.index(b"\r\n\r\n") + 4
        self.received = len(buf) - end
        return bytes(buf[:end]), bytearray(buf[end:])

    def _read_body(self, conn, body, n):
        while len(body) < n:
            chunk = conn.recv(min(65536, n - len(body)))
            if not chunk:
                raise ValueError("the client closed")
            body += chunk
            self.received = len(body)

    def stop(self):
        self.stopping.set()
        if self.sock:
            self.sock.close()
            self.sock = None
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()
            self.conns = []
        for t in self.threads:
            t.join(timeout=5)
        self.threads = []
        _live.discard(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def unbufferable_bytes():
    """A body size no client can hand to the kernel in full while the
    server (HostileServer) reads nothing: twice the most a sender's buffer
    may autotune to (net.ipv4.tcp_wmem, 4 MiB by default) plus the server's
    receive buffer. Kernel settings, not machine speed, decide it."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            wmem = int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        wmem = 4 << 20
    return 2 * (wmem + 4 * HostileServer.RCVBUF)


def syn_sent_to(port):
    """1 when some socket on this host is in SYN_SENT towards 127.0.0.1:port
    (a connect the peer's kernel has not answered), from /proc/net/tcp."""
    want = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/tcp") as f:
            return any(l.split()[2] == want and l.split()[3] == "02" for l in list(f)[1:])
    except OSError:
        return False


class FullBacklog:
    """A listener on 127.0.0.1:port that never accepts, its accept queue
    already full (backlog 0 and one connection waiting in it), so Linux
    drops every further SYN: a client's connect hangs until its own
    timeout, as behind a black-holing firewall."""

    def __init__(self, port=None):
        self.sock = None
        self.filler = None
        self.port = port

    def start(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port or 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.filler = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        _live.add(self)
        return self

    def stop(self):
        for s in (self.filler, self.sock):
            if s:
                s.close()
        self.filler = self.sock = None
        _live.discard(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
