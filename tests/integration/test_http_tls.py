#!/usr/bin/python3
"""The agent's HTTPS upload client (agent/http.c, through the http_put
driver) against real nginx on free loopback ports: uploads land byte for
byte, and each way a connection can fail comes back as its own error class
with words saying why -- refused, untrusted CA, wrong host name, missing
client certificate, server errors, early refusals, stalls and short bodies.
Against hostile servers (tls_servers.HostileServer): an answer given before
the body arrived is reported as early; a 1xx flood, a trickled or a missing
response end at the response timeout; a cancel (SIGTERM to http_put) ends a
request stuck in connect, handshake, body or response at once.

Usage: test_http_tls.py HTTP_PUT REPO_ROOT
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tls_servers import (FullBacklog, HostileServer, Nginx, StalledServer, make_pki,  # noqa: E402
                         syn_sent_to, unbufferable_bytes, wait_for)

HTTP_PUT = None
SENDQ_RECORDS = None  # from agent/sendq.h
EXIT = {"ECONNECT": 3, "ETIMEDOUT": 4, "ETLS": 5, "EIO": 6, "EPROTO": 7, "EBODY": 8,
        "ECANCELED": 9}
SECRET = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101, Signature=0123secret4567"

# Echoes what the server received, to check the request head on the wire.
ECHO_CONF = ('        location /echo/ { return 200 '
             '"host=$http_host ua=$http_user_agent x=$http_x_embeddb_test '
             'cl=$http_content_length conn=$http_connection\\n"; }')


class Result:
    def __init__(self, proc, seconds):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr
        self.seconds = seconds
        self.fields = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)

    def __repr__(self):
        return f"rc={self.rc} out={self.out!r} err={self.err!r}"


class HttpTlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="embeddb-http-")
        cls.pki = make_pki(os.path.join(cls.tmp, "pki"), "main")
        cls.other = make_pki(os.path.join(cls.tmp, "pki-other"), "other")
        # Same CA as the client trusts, but for neither localhost nor 127.0.0.1.
        cls.wrong_name = cls.pki.issue("otherhost",
                                       "subjectAltName=DNS:otherhost,IP:127.0.0.2")
        cls.data = os.path.join(cls.tmp, "data.bin")
        with open(cls.data, "wb") as f:
            f.write(os.urandom(3 * 1024 * 1024 + 4097))
        cls.size = os.path.getsize(cls.data)
        # Larger than all the socket buffering between us and a server that
        # stopped reading: such a body can only be cut short.
        cls.big = os.path.join(cls.tmp, "big.bin")
        with open(cls.big, "wb") as f:
            f.write(os.urandom(max(16 << 20, unbufferable_bytes())))
        cls.big_size = os.path.getsize(cls.big)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()

    def nginx(self, **kw):
        web = Nginx(self.tmp, self.pki, **kw)
        self.servers.append(web)
        return web.start()

    def args(self, port, path, host="localhost", ca=None, extra=(), data=None):
        args = [HTTP_PUT, "--host", host, "--port", str(port), "--path", path,
                "--file", data or self.data, "--connect-timeout-ms", "5000",
                "--io-timeout-ms", "10000", *extra]
        if "--insecure" not in extra:
            args += ["--ca", ca or self.pki.ca]
        return args

    def put(self, port, path, host="localhost", ca=None, extra=(), data=None, timeout=60):
        t0 = time.monotonic()
        proc = subprocess.run(self.args(port, path, host, ca, extra, data), capture_output=True,
                              text=True, timeout=timeout)
        return Result(proc, time.monotonic() - t0)

    def assert_status(self, r, status):
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.fields.get("status"), str(status), r)

    def assert_error(self, r, cls, *words):
        self.assertEqual(r.rc, EXIT[cls], r)
        self.assertEqual(r.fields.get("error"), cls, r)
        for w in words:
            self.assertIn(w, r.err, r)
        self.assertNotIn("secret", r.out + r.err)

    def same_as_data(self, path):
        with open(path, "rb") as a, open(self.data, "rb") as b:
            return a.read() == b.read()

    def same_bytes(self, got):
        with open(self.data, "rb") as b:
            return got == b.read()

    # ---- success paths ----

    def test_upload_stores_exactly_the_bytes_sent(self):
        web = self.nginx()
        r = self.put(web.port, "/bucket/snap/0001.tar")
        self.assert_status(r, 201)
        self.assertEqual(int(r.fields["bytes_sent"]), self.size)
        self.assertEqual(r.fields["early"], "0")
        self.assertTrue(self.same_as_data(web.object_path("/bucket/snap/0001.tar")))
        r = self.put(web.port, "/bucket/snap/0001.tar")  # replacing: 204
        self.assert_status(r, 204)
        self.assertTrue(self.same_as_data(web.object_path("/bucket/snap/0001.tar")))

    def test_body_of_more_than_one_record_goes_through_the_bounded_sender_queue(self):
        # agent/sendq.h: a body of more than one 16 KiB record is queued for
        # a sender thread, at most SENDQ_RECORDS records at once.
        web = self.nginx()
        one = os.path.join(self.tmp, "one-record.bin")
        for size, piped in ((16384, False), (16385, True)):
            with open(one, "wb") as f:
                f.write(os.urandom(size))
            r = self.put(web.port, f"/rec-{size}.bin", data=one)
            self.assert_status(r, 201)
            self.assertEqual(int(r.fields["bytes_sent"]), size)
            self.assertEqual(r.fields["pipe_depth"] != "0", piped, r)
        r = self.put(web.port, "/piped.bin")
        self.assert_status(r, 201)
        self.assertTrue(1 <= int(r.fields["pipe_depth"]) <= SENDQ_RECORDS, r)
        self.assertTrue(self.same_as_data(web.object_path("/piped.bin")))
        # A server that stops reading: the queue fills to its bound, no
        # further, and bytes_sent counts only what reached the kernel.
        with StalledServer(self.pki.server_cert, self.pki.server_key) as s:
            r = self.put(s.port, "/x", data=self.big, extra=("--io-timeout-ms", "1000"),
                         timeout=30)
        self.assert_error(r, "ETIMEDOUT", "sending the body", "no progress for 1000 ms")
        self.assertEqual(int(r.fields["pipe_depth"]), SENDQ_RECORDS, r)
        self.assertLess(int(r.fields["bytes_sent"]), self.big_size)
        self.assertIn(f"after {r.fields['bytes_sent']} of {self.big_size} bytes", r.err)

    def test_ip_literal_host_is_checked_against_ip_san(self):
        web = self.nginx()
        r = self.put(web.port, "/by-ip.bin", host="127.0.0.1")
        self.assert_status(r, 201)
        self.assertTrue(self.same_as_data(web.object_path("/by-ip.bin")))

    def test_request_head_carries_host_agent_length_and_extra_headers(self):
        web = self.nginx(extra_conf=ECHO_CONF)
        r = self.put(web.port, "/echo/x", extra=("--header", "X-Embeddb-Test: hello world"))
        self.assert_status(r, 200)
        self.assertEqual(r.fields["body"],
                         f"host=localhost:{web.port} ua=embeddb-agent/0.1 x=hello world "
                         f"cl={self.size} conn=close")

    def test_header_with_crlf_is_refused_before_connecting(self):
        r = self.put(1, "/x", extra=("--header", "X-A: 1\r\nX-B: 2"))
        self.assertEqual(r.rc, 2, r)
        self.assertIn("control character", r.err)

    # ---- servers that are down or say no ----

    def test_refused_connection_then_restarted_server_succeeds(self):
        web = self.nginx()
        web.stop()
        r = self.put(web.port, "/retry.bin", extra=("--header", f"Authorization: {SECRET}"))
        self.assert_error(r, "ECONNECT", f"localhost:{web.port}", "refused")
        self.assertLess(r.seconds, 5)
        web.start()
        r = self.put(web.port, "/retry.bin")
        self.assert_status(r, 201)
        self.assertTrue(self.same_as_data(web.object_path("/retry.bin")))

    def test_unresolvable_host_is_econnect(self):
        r = self.put(443, "/x", host="no-such-host.invalid")
        self.assert_error(r, "ECONNECT", "no-such-host.invalid:443", "does not resolve")

    def test_server_error_location_yields_500_and_its_body(self):
        web = self.nginx()
        r = self.put(web.port, Nginx.FAIL500 + "x")
        self.assert_status(r, 500)
        self.assertEqual(r.fields["body"], "injected failure")
        r = self.put(web.port, Nginx.DENY403 + "x")
        self.assert_status(r, 403)

    def test_early_refusal_is_reported_without_sending_the_whole_body(self):
        # nginx refuses a body over 1 KiB as soon as it has the head (413),
        # then goes on reading to discard the body, so how much of it went
        # out first is up to the scheduler: only the outcome is checked ...
        web = self.nginx()
        r = self.put(web.port, Nginx.SMALL + "big.bin")
        self.assert_status(r, 413)
        self.assertFalse(os.path.exists(web.object_path(Nginx.SMALL + "big.bin")))
        # ... and against a refuser that reads nothing more, the client could
        # never finish the body: it must stop and report the 413 as early.
        with HostileServer(self.pki, "answer", after=0, status=413) as s:
            r = self.put(s.port, "/x", data=self.big)
        self.assert_status(r, 413)
        self.assertEqual(r.fields["early"], "1", r)
        self.assertLess(int(r.fields["bytes_sent"]), self.big_size)

    # ---- servers that answer before they have the body ----

    def test_2xx_before_any_body_byte_is_reported_as_early(self):
        with HostileServer(self.pki, "answer", after=0, status=200) as s:
            r = self.put(s.port, "/x", data=self.big)
        self.assert_status(r, 200)
        self.assertEqual(r.fields["early"], "1", r)
        self.assertLess(int(r.fields["bytes_sent"]), self.big_size)

    def test_2xx_after_256_KiB_of_a_large_body_is_reported_as_early(self):
        with HostileServer(self.pki, "answer", after=256 << 10, status=201) as s:
            r = self.put(s.port, "/x", data=self.big)
            self.assertGreaterEqual(s.received, 256 << 10)
        self.assert_status(r, 201)
        self.assertEqual(r.fields["early"], "1", r)
        self.assertLess(int(r.fields["bytes_sent"]), self.big_size)

    def test_whole_body_then_2xx_is_not_early(self):
        with HostileServer(self.pki, "honest") as s:
            r = self.put(s.port, "/x", data=self.big)
            self.assertEqual(len(s.bodies), 1)
            self.assertEqual(len(s.bodies[0]), self.big_size)
        self.assert_status(r, 201)
        self.assertEqual(r.fields["early"], "0", r)
        self.assertEqual(int(r.fields["bytes_sent"]), self.big_size)

    def test_unasked_100_continue_does_not_stop_the_body(self):
        with HostileServer(self.pki, "continue") as s:
            r = self.put(s.port, "/x")
            self.assertEqual(len(s.bodies), 1)
            self.assertTrue(self.same_bytes(s.bodies[0]))
        self.assert_status(r, 201)
        self.assertEqual(r.fields["early"], "0", r)
        self.assertEqual(r.fields["interim"], "1", r)
        self.assertEqual(int(r.fields["bytes_sent"]), self.size)

    # ---- servers that never finish answering: the response timeout ----

    def test_endless_1xx_flood_ends_at_the_response_timeout(self):
        with HostileServer(self.pki, "flood") as s:
            r = self.put(s.port, "/x", extra=("--response-timeout-ms", "1500"))
        self.assert_error(r, "ETIMEDOUT", "waiting for the response", "response timeout of 1500 ms")
        self.assertGreater(int(re.search(r"(\d+) interim", r.err).group(1)), 0, r)

    def test_response_trickled_within_io_timeout_ends_at_the_response_timeout(self):
        with HostileServer(self.pki, "trickle", interval=0.05) as s:
            r = self.put(s.port, "/x", extra=("--response-timeout-ms", "1500"))
        self.assert_error(r, "ETIMEDOUT", "waiting for the response", "response timeout of 1500 ms")

    def test_silent_server_ends_at_the_response_timeout_before_io_timeout(self):
        with HostileServer(self.pki, "stall_response") as s:
            r = self.put(s.port, "/x", extra=("--response-timeout-ms", "1500"))
        self.assert_error(r, "ETIMEDOUT", "waiting for the response", "response timeout of 1500 ms")

    # ---- a cancel ends a request wherever it waits ----

    def test_cancel_ends_a_request_stuck_anywhere(self):
        cases = [
            ("connect", lambda: FullBacklog(), lambda s: syn_sent_to(s.port), "connecting"),
            ("handshake", lambda: HostileServer(self.pki, "stall_handshake"),
             lambda s: s.engaged.is_set(), "TLS handshake"),
            ("body", lambda: HostileServer(self.pki, "stall_body", after=256 << 10),
             lambda s: s.engaged.is_set(), "sending the body"),
            ("response", lambda: HostileServer(self.pki, "stall_response"),
             lambda s: s.engaged.is_set(), "waiting for the response"),
            ("1xx flood", lambda: HostileServer(self.pki, "flood"),
             lambda s: s.engaged.is_set(), "waiting for the response"),
            ("trickle", lambda: HostileServer(self.pki, "trickle"),
             lambda s: s.engaged.is_set(), "waiting for the response"),
        ]
        slow = ("--connect-timeout-ms", "120000", "--io-timeout-ms", "120000",
                "--response-timeout-ms", "120000")
        for name, make, engaged, words in cases:
            with self.subTest(name):
                srv = make().start()
                self.servers.append(srv)
                p = subprocess.Popen(self.args(srv.port, "/x", extra=slow, data=self.big),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                try:
                    wait_for(lambda: engaged(srv) or p.poll() is not None, timeout=30,
                             what=f"the request to reach its {name}")
                    if p.poll() is not None:
                        self.fail(f"http_put ended before the {name}: {p.communicate()}")
                    t0 = time.monotonic()
                    p.send_signal(signal.SIGTERM)
                    out, err = p.communicate(timeout=20)
                    took = time.monotonic() - t0
                finally:
                    if p.poll() is None:
                        p.kill()
                        p.wait()
                print(f"  cancel during {name}: request ended {took * 1000:.0f} ms after SIGTERM",
                      file=sys.stderr)
                self.assertEqual(p.returncode, EXIT["ECANCELED"], out + err)
                self.assertIn("error=ECANCELED", out)
                self.assertIn(words, err)
                self.assertIn("cancelled", err)
                self.assertLess(took, 10)  # vs 120 s timeouts: the cancel ended it

    # ---- TLS verification ----

    def test_certificate_from_another_ca_is_refused(self):
        web = self.nginx(cert=self.other.server_cert, key=self.other.server_key)
        r = self.put(web.port, "/evil.bin", extra=("--header", f"Authorization: {SECRET}"))
        self.assert_error(r, "ETLS", f"localhost:{web.port}", "verification failed",
                          "not trusted", self.pki.ca)
        self.assertEqual(r.fields.get("bytes_sent"), "0")
        self.assertFalse(os.path.exists(web.object_path("/evil.bin")))

    def test_insecure_skips_verification(self):
        web = self.nginx(cert=self.other.server_cert, key=self.other.server_key)
        r = self.put(web.port, "/insecure.bin", extra=("--insecure",))
        self.assert_status(r, 201)
        self.assertTrue(self.same_as_data(web.object_path("/insecure.bin")))

    def test_certificate_for_another_host_name_is_refused(self):
        cert, key = self.wrong_name
        web = self.nginx(cert=cert, key=key)
        for host in ("localhost", "127.0.0.1"):  # a DNS name, and an IP vs IP:127.0.0.2
            r = self.put(web.port, "/wrong.bin", host=host)
            self.assert_error(r, "ETLS", "verification failed", "host name mismatch", host)
            self.assertNotIn("not trusted", r.err)
        self.assertFalse(os.path.exists(web.object_path("/wrong.bin")))

    def test_server_requiring_client_certificate(self):
        web = self.nginx(require_client_cert=True)
        r = self.put(web.port, "/mtls.bin",
                     extra=("--cert", self.pki.client_cert, "--key", self.pki.client_key))
        self.assert_status(r, 201)
        self.assertTrue(self.same_as_data(web.object_path("/mtls.bin")))
        os.unlink(web.object_path("/mtls.bin"))
        # nginx completes the handshake without one, then refuses the request
        r = self.put(web.port, "/mtls.bin")
        self.assert_status(r, 400)
        self.assertIn("No required SSL certificate", r.fields["body"] + r.out)
        r = self.put(web.port, "/mtls.bin",
                     extra=("--cert", self.other.client_cert, "--key", self.other.client_key))
        self.assert_status(r, 400)
        self.assertFalse(os.path.exists(web.object_path("/mtls.bin")))

    def test_bad_client_key_is_a_setting_error_naming_the_file(self):
        r = self.put(1, "/x", extra=("--cert", self.pki.client_cert, "--key",
                                     self.other.client_key))
        self.assertEqual(r.rc, 2, r)
        self.assertIn(self.other.client_key, r.err)
        r = self.put(1, "/x", ca=os.path.join(self.tmp, "missing.pem"))
        self.assertEqual(r.rc, 2, r)
        self.assertIn("missing.pem", r.err)

    # ---- stalls and short bodies ----

    def test_stalled_server_hits_io_timeout_in_handshake(self):
        with StalledServer() as s:
            r = self.put(s.port, "/x", extra=("--io-timeout-ms", "1000"), timeout=30)
        self.assert_error(r, "ETIMEDOUT", "handshake", f"localhost:{s.port}")
        self.assertGreater(r.seconds, 0.9)
        self.assertLess(r.seconds, 5)

    def test_server_stalled_after_handshake_hits_io_timeout(self):
        with StalledServer(self.pki.server_cert, self.pki.server_key) as s:
            r = self.put(s.port, "/x", extra=("--io-timeout-ms", "1000"), timeout=30)
        self.assert_error(r, "ETIMEDOUT", f"localhost:{s.port}", "1000 ms")
        self.assertGreater(r.seconds, 0.9)
        self.assertLess(r.seconds, 5)

    def test_body_source_shorter_than_content_length_is_ebody(self):
        web = self.nginx()
        r = self.put(web.port, "/short.bin", extra=("--length", str(self.size + 100)))
        self.assert_error(r, "EBODY", f"ended after {self.size} of {self.size + 100}")
        self.assertFalse(os.path.exists(web.object_path("/short.bin")))


if __name__ == "__main__":
    HTTP_PUT = os.path.abspath(sys.argv.pop(1))
    with open(os.path.join(sys.argv.pop(1), "agent", "sendq.h")) as h:  # REPO_ROOT
        SENDQ_RECORDS = int(re.search(r"#define SENDQ_RECORDS (\d+)", h.read()).group(1))
    unittest.main(verbosity=2)
