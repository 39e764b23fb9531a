#!/usr/bin/python3
"""Integration tests of resumable S3 multipart uploads, end to end through
embeddb-agent: s3rver (npm) behind the project's SigV4-checking front
(S3Front in test_snapshot_upload.py, which checks the signature and payload
hash of every request, multipart ones included, and itself implements
ListParts and AbortMultipartUpload on s3rver's state, because s3rver 3.7.1
answers both with 405 and no S3 server on npm or Debian 12 does better).

Snapshots of about 13 MiB of incompressible tensors go up in parts of
upload.part_size 5 MiB (S3's minimum, also --check-config's), three parts
each. Covered:
  - the link cut after one part (the server stops answering; the part in
    flight is lost): the upload resumes from the first unconfirmed part,
    re-sending at most that part (the bytes of every UploadPart the front
    received are counted), while a ListParts that lies (claims parts never
    sent) gets them sent anyway; the zstd object that lands unpacks with
    `zstd -d` into the snapshot's exact tar, and with `tar --zstd`;
  - the agent killed with SIGKILL after the server stored a part but
    before the agent heard of it: after a restart ListParts shows the part
    with our MD5 as its ETag and nothing is sent twice;
  - a STATE whose measure lies (another level's figures): found out by
    the plan's SHA-256, measured again, the object lands whole;
  - a plan (UPLOAD) whose part 2 hash changed under the agent, with parts
    that end where no readahead piece does: part 2 is cut short (never
    sent whole), planned again, and every part the server confirmed is
    exactly its range of the object (nothing read past a part's end);
  - a lying server: UploadPart answered 200 without an ETag (the part is
    not taken as confirmed) and CompleteMultipartUpload answered 200 with
    an <Error> body, twice (the snapshot is never marked uploaded meanwhile);
  - a snapshot refused (403) halfway is marked failed, and one dropped by
    the flash budget (drop_oldest) in the middle of its upload is deleted:
    both multipart uploads are aborted, none is left on the server; the
    failed one's key also has five stray uploads, listed by the front two a
    page (ListMultipartUploads followed by its markers), all aborted, and
    another key's upload the prefix lists is left alone;
  - servers whose ListMultipartUploads pages lie (truncated without a
    marker, a marker that never moves, markers that move forever): each
    walk ends, at 100 pages at the most, and says so;
  - a power cut through the fault vfs (tests/agent/mp_powercut.c) before
    each mutating file call of an upload: the upload goes on after the
    reboot, the object lands whole, at most one part more was received.
Usage: test_multipart_upload.py BUILD_DIR REPO_ROOT
"""
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import unittest
import urllib.parse

import paho.mqtt.publish as publish

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_snapshot_upload as tsu  # noqa: E402
from test_snapshot_upload import DEVICE, UploadTest, snapshots  # noqa: E402
from tls_servers import proc_bytes, sanitized, wait_for  # noqa: E402

PART = 5 << 20
ERROR_200 = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\n<Error><Code>InternalError</Code>"
             b"<Message>We encountered an internal error. Please try again.</Message></Error>")


class MultipartTest(UploadTest):
    def sealed_random_snapshot(self, mib=13, before_seal=lambda: None):
        """Publishes `mib` MiB of random 16 KiB tensors (incompressible,
        so a compressed object is multipart too), calls before_seal once
        they are stored, and seals them."""
        n = (mib << 20) // (16 << 10)
        msgs = [{"topic": "big/a", "qos": 1, "payload": os.urandom(16 << 10)} for _ in range(n)]
        for i in range(0, n, 200):
            publish.multiple(msgs[i:i + 200], hostname="127.0.0.1", port=self.broker.port)
        wait_for(lambda: self.agent.stat("stored") >= n, timeout=60, what="the tensors stored")
        before_seal()
        self.agent.seal()

    def mp_conf(self, port, extra=""):
        return self.s3_conf(port) + f"  part_size: 5MiB\n{extra}"

    def object_of(self, port, snap, suffix):
        key = f"fleet/{DEVICE}/{snap['name']}{suffix}"
        return self.s3_client(port).get_object(Bucket="snaps", Key=key)["Body"].read()

    def assert_tar_is_the_snapshot(self, tar, snap):
        state = self.state_of(snap["name"])
        self.assertEqual(len(tar), int(state["tar_bytes"]))
        self.assertEqual(hashlib.sha256(tar).hexdigest(), state["tar_sha256"])

    def test_link_cut_resumes_from_the_first_unconfirmed_part_zstd(self):
        port = self.s3rver()
        front, st = self.front, {"parts": 0, "down": False, "lied": 0}

        def after(method, path, status):
            if method == "PUT" and "partNumber=" in path and status == 200:
                st["parts"] += 1
                st["down"] = st["parts"] == 1  # the link goes after the first part

        def hook(method, path, body):
            if st["down"]:
                return "cut"
            if method == "GET" and "uploadId=" in path and not st["lied"]:
                # Part 1 as it is, and parts 2 and 3 (never stored) with
                # the right sizes and ETags it cannot know.
                st["lied"] += 1
                up = os.path.join(front.data, "snaps", "._S3rver_uploads",
                                  re.search(r"uploadId=(\w+)", path).group(1))
                with open(os.path.join(up, "1.md5")) as f:
                    md5 = f.read()
                size = int(self.state_of(snapshots(self.agent.store)[0]["name"])["object_bytes"])
                parts = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>&quot;{e}&quot;</ETag>"
                                f"<Size>{z}</Size></Part>" for n, e, z in
                                ((1, md5, PART), (2, "ab" * 16, PART),
                                 (3, "ab" * 16, size - 2 * PART)))
                return (200, {}, ("<ListPartsResult><IsTruncated>false</IsTruncated>" + parts +
                                  "</ListPartsResult>").encode())
            return None
        front.after, front.hook = after, hook
        self.start_agent(upload=self.mp_conf(port, "  compression: zstd\n  level: 1\n"))
        self.sealed_random_snapshot()
        self.wait_counter("upload_retries", 2)
        self.assertEqual(st["parts"], 1)
        st["down"] = False
        self.wait_state("uploaded")
        snap = snapshots(self.agent.store)[0]
        state = self.state_of(snap["name"])
        obj = self.object_of(port, snap, ".tar.zst")
        self.assertEqual(len(obj), int(state["object_bytes"]))
        self.assertGreater(len(obj), 2 * PART)  # three parts
        self.assertEqual(hashlib.sha256(obj).hexdigest(), state["object_sha256"])
        tar = subprocess.run(["zstd", "-d", "-c"], input=obj, capture_output=True, check=True)
        self.assert_tar_is_the_snapshot(tar.stdout, snap)
        listing = subprocess.run(["tar", "--zstd", "-tf", "-"], input=obj, capture_output=True,
                                 check=True).stdout.decode().split()
        self.assertIn(f"{snap['name']}/MANIFEST.json", listing)
        # The bytes the server took: the object once, plus at most the part
        # in flight when the link went.
        self.assertLessEqual(front.part_bytes(), len(obj) + PART)
        self.assertEqual(st["lied"], 1)
        self.assertEqual(front.uploads(), [])
        self.assertFalse(os.path.exists(os.path.join(self.agent.store, "snapshots", snap["name"],
                                                     "UPLOAD")))

    def test_a_lying_measure_never_makes_a_prefix_the_object(self):
        # STATE claims level 3 with level 1's figures (a previous run's, a
        # library upgrade): the parts are planned from a stream that is not
        # the measured one; the plan's SHA-256 finds it out, the agent
        # measures again, and the object that lands is the whole snapshot.
        port = self.s3rver()
        self.start_agent(upload=self.mp_conf(port, "  compression: zstd\n  level: 1\n"))
        self.sealed_random_snapshot()
        self.wait_state("uploaded")
        self.assertEqual(self.agent.stop(), 0)
        snap = snapshots(self.agent.store)[0]
        path = os.path.join(self.agent.store, "snapshots", snap["name"], "STATE")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("state=uploaded", "state=sealed")
                    .replace("object=zstd:1", "object=zstd:3"))
        with open(self.agent.conf) as f:
            conf = f.read()
        with open(self.agent.conf, "w") as f:
            f.write(conf.replace("  level: 1\n", "  level: 3\n"))
        self.agent.start()
        self.wait_state("uploaded")
        self.assertRegex(self.agent.log_text(),
                         "is not the one measured|ended before its measured length")
        state = self.state_of(snap["name"])
        self.assertEqual(state["object"], "zstd:3")
        obj = self.object_of(port, snap, ".tar.zst")
        self.assertEqual(hashlib.sha256(obj).hexdigest(), state["object_sha256"])
        tar = subprocess.run(["zstd", "-d", "-c"], input=obj, capture_output=True, check=True)
        self.assert_tar_is_the_snapshot(tar.stdout, snap)

    def test_a_part_unlike_its_plan_is_never_sent_whole(self):
        # Parts are read on the readahead thread from one object shared
        # across them. Parts of 5 MiB + 4097 bytes: no part ends where a
        # readahead piece (64 KiB) or the compressor's output does, so a
        # read past a part's end would shift every later part. Part 1's
        # first send is cut, and meanwhile UPLOAD's plan gets another
        # SHA-256 for part 2 (a stream that changed since it was planned):
        # the next attempt sends part 1, finds part 2 unlike its plan at
        # its end and withholds its last piece (the front gets less than
        # its Content-Length), plans again, and the object lands. Every
        # part the server confirmed holds exactly its range of the object.
        port = self.s3rver()
        ps, front = PART + 4097, self.front
        st = {"cut": 0, "bodies": {}, "confirmed": []}

        def hook(method, path, body):
            if method != "PUT" or "partNumber=" not in path:
                return None
            if not st["cut"]:
                st["cut"] += 1
                upload = os.path.join(self.agent.store, "snapshots",
                                      snapshots(self.agent.store)[0]["name"], "UPLOAD")
                with open(upload) as f:
                    text = f.read()
                line = re.search(r"^part=2 \d+ ([0-9a-f]{64}) ", text, re.M)
                with open(upload, "w") as f:
                    f.write(text.replace(line.group(0), line.group(0).replace(
                        line.group(1), hashlib.sha256(b"another plan").hexdigest())))
                return "cut"
            st["bodies"][path] = (len(body), hashlib.sha256(body).hexdigest())
            return None

        def after(method, path, status):
            if path in st["bodies"] and status == 200:
                st["confirmed"].append((int(re.search(r"partNumber=(\d+)", path).group(1)),
                                        *st["bodies"][path]))
        front.hook, front.after = hook, after
        self.start_agent(upload=self.s3_conf(port) + f"  part_size: {ps}\n"
                         "  compression: zstd\n  level: 1\n")
        self.sealed_random_snapshot()
        wait_for(lambda: any(s["state"] in ("uploaded", "failed")
                             for s in snapshots(self.agent.store)),
                 what=lambda: f"the upload's end: {self.agent.log_text()[-3000:]}")
        snap = snapshots(self.agent.store)[0]
        self.assertEqual(snap["state"], "uploaded", snap)  # a 403: a part sent unlike its hash
        state = self.state_of(snap["name"])
        obj = self.object_of(port, snap, ".tar.zst")
        self.assertEqual(hashlib.sha256(obj).hexdigest(), state["object_sha256"])
        self.assertGreater(len(obj), 2 * ps)  # three parts
        self.assertEqual(self.agent.log_text().count("came out different from its plan"), 1)
        # Part 2 of the tampered plan: sent, never whole, never confirmed.
        short = [(p, got, want) for m, p, got, want in front.received
                 if m == "PUT" and "partNumber=" in p and got != want]
        self.assertEqual(len(short), 1, front.received)
        self.assertIn("partNumber=2&", short[0][0])
        self.assertLess(short[0][1], short[0][2])
        # Part 1 twice (the tampered plan's upload, then the new one), then
        # parts 2 and 3: each exactly its range of the object.
        self.assertEqual([n for n, _, _ in st["confirmed"]], [1, 1, 2, 3])
        for n, length, sha in st["confirmed"]:
            piece = obj[(n - 1) * ps:n * ps]
            self.assertEqual((length, sha), (len(piece), hashlib.sha256(piece).hexdigest()), n)
        wait_for(lambda: front.uploads() == [], what=lambda: f"the first upload aborted: "
                 f"{front.uploads()}")

    def test_sigkill_after_a_stored_part_sends_nothing_twice(self):
        port = self.s3rver()
        front, st = self.front, {"parts": 0}

        def after(method, path, status):
            if method == "PUT" and "partNumber=" in path and status == 200:
                st["parts"] += 1
                if st["parts"] == 2:  # stored, but the agent never hears of it
                    self.agent.proc.send_signal(signal.SIGKILL)
        front.after = after
        self.start_agent(upload=self.mp_conf(port))
        self.sealed_random_snapshot()
        wait_for(lambda: self.agent.proc.poll() is not None, timeout=60,
                 what=lambda: f"the agent killed: {self.agent.log_text()[-3000:]}")
        self.agent.logf.close()
        self.assertEqual(snapshots(self.agent.store)[0]["state"], "uploading")
        self.agent.start()
        self.wait_state("uploaded")
        snap = snapshots(self.agent.store)[0]
        tar = self.object_of(port, snap, ".tar")
        self.assert_tar_is_the_snapshot(tar, snap)
        self.assertEqual(front.part_bytes(), len(tar))  # not one byte twice
        self.assertEqual(front.uploads(), [])

    def rss(self):
        return proc_bytes(self.agent.proc.pid, "VmRSS")

    def test_lying_server_never_makes_an_upload(self):
        port = self.s3rver()
        st = {"no_etag": 0, "error_200": 0, "states": [], "rss": []}

        def hook(method, path, body):
            st["rss"].append(self.rss())  # on every request, the agent waiting for the answer
            if method == "PUT" and "partNumber=1&" in path and not st["no_etag"]:
                st["no_etag"] += 1
                return (200, {}, b"")  # "stored", without an ETag (and it was not)
            if method == "POST" and "uploadId=" in path and st["error_200"] < 2:
                st["error_200"] += 1
                st["states"] += [s["state"] for s in snapshots(self.agent.store)]
                return (200, {"Content-Type": "application/xml"}, ERROR_200)
            return None
        self.front.hook = hook
        self.start_agent(upload=self.mp_conf(port))
        self.sealed_random_snapshot(before_seal=lambda: st.update(idle=self.rss()))
        self.wait_state("uploaded")
        # Memory stays flat: no part is held (parts of 5 MiB, object 13 MiB).
        print(f"RSS idle {st['idle'] >> 10} KiB, uploading at most {max(st['rss']) >> 10} KiB",
              file=sys.stderr)
        if not sanitized(self.agent.proc.pid):
            self.assertLess(max(st["rss"]) - st["idle"], 2 << 20)
        self.assertEqual((st["no_etag"], st["error_200"]), (1, 2))
        self.assertNotIn("uploaded", st["states"])
        self.assertIn("CompleteMultipartUpload answered HTTP 200 with error InternalError",
                      self.agent.log_text())
        self.assertIn("without a usable ETag", self.agent.log_text())
        snap = snapshots(self.agent.store)[0]
        self.assert_tar_is_the_snapshot(self.object_of(port, snap, ".tar"), snap)

    def test_failed_snapshot_leaves_no_multipart_upload(self):
        # Refused (403) at part 2: the snapshot is marked failed and its
        # upload aborted, and so are five strays of its key (uploads whose
        # Create answer was lost) that the server lists two a page, while
        # an upload of another key the prefix also lists stays.
        port = self.s3rver()
        self.front.max_uploads = 2
        st = {"parts": 0, "strays": [], "other": None}

        def hook(method, path, body):
            if method == "PUT" and "partNumber=" in path:
                st["parts"] += 1
                if st["parts"] == 2:
                    key = urllib.parse.unquote(path.split("?")[0].split("/", 2)[2])
                    s3 = self.s3_client(port)
                    st["strays"] = [s3.create_multipart_upload(Bucket="snaps", Key=key)
                                    ["UploadId"] for _ in range(5)]
                    st["other"] = s3.create_multipart_upload(Bucket="snaps", Key=key + ".x")[
                        "UploadId"]
                    s3.close()
                    return (403, {}, b"<Error><Code>AccessDenied</Code></Error>")
            return None
        self.front.hook = hook
        self.start_agent(upload=self.mp_conf(port))
        self.sealed_random_snapshot()
        self.wait_state("failed")
        self.assertIn("403", snapshots(self.agent.store)[0]["error"])
        wait_for(lambda: self.front.uploads() == [st["other"]] and not [
            n for n in os.listdir(os.path.join(self.agent.store, "snapshots"))
            if n.startswith(".abort-")], what=lambda: f"the uploads aborted: "
            f"{self.front.uploads()}\n{self.agent.log_text()[-3000:]}")
        aborted = {urllib.parse.parse_qs(p.split("?")[1])["uploadId"][0]
                   for m, p, n in self.front.requests if m == "DELETE"}
        self.assertLessEqual(set(st["strays"]), aborted)
        self.assertNotIn(st["other"], aborted)
        # The listing was walked page by page, each page's markers from the
        # page before (the front checked every request's signature).
        pages = [urllib.parse.parse_qs(p.split("?")[1], keep_blank_values=True)
                 for m, p, n in self.front.requests if m == "GET" and "uploads" in p]
        self.assertGreaterEqual(sum("upload-id-marker" in q for q in pages), 2)
        self.assertTrue(all(int(q["max-uploads"][0]) <= 1000 for q in pages))

    def test_a_lying_uploads_listing_is_not_followed_forever(self):
        # Before each CreateMultipartUpload the agent lists its key's
        # uploads. Three servers lie about the pages, one walk each (Create
        # answers 503 twice, so there are three): truncated without a
        # marker, a marker that never moves, markers that move forever.
        # Each walk ends (after one page, two, and the bound of 100), says
        # why in the log, and the upload goes on.
        port = self.s3rver()
        st = {"creates": 0, "walks": [[], [], []]}

        def hook(method, path, body):
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query, keep_blank_values=True)
            if method == "POST" and "uploads" in q:
                st["creates"] += 1
                return (503, {}, b"<Error><Code>SlowDown</Code></Error>") \
                    if st["creates"] < 3 else None
            if method == "GET" and "uploads" in q and st["creates"] < 3:
                walk = st["walks"][st["creates"]]
                walk.append(q.get("upload-id-marker", [""])[0])
                key = tsu.xml_escape(q["prefix"][0])
                nxt = ["", "same", f"m{len(walk)}"][st["creates"]]
                nxt = nxt and (f"<NextKeyMarker>{key}</NextKeyMarker>"
                               f"<NextUploadIdMarker>{nxt}</NextUploadIdMarker>")
                return (200, {}, ("<ListMultipartUploadsResult><IsTruncated>true</IsTruncated>"
                                  + nxt + "</ListMultipartUploadsResult>").encode())
            return None
        self.front.hook = hook
        self.start_agent(upload=self.mp_conf(port))
        self.sealed_random_snapshot(mib=6)
        self.wait_state("uploaded")
        self.assertEqual(st["walks"][0], [""])
        self.assertEqual(st["walks"][1], ["", "same"])
        self.assertEqual(st["walks"][2], [""] + [f"m{n}" for n in range(1, 100)])
        log = self.agent.log_text()
        self.assertIn("page 1 is truncated but names no next marker", log)
        self.assertIn("page 2 is truncated but repeats its NextUploadIdMarker", log)
        self.assertIn("still truncated after 100 pages", log)
        self.assertEqual(self.front.uploads(), [])

    def test_snapshot_dropped_by_the_budget_leaves_no_multipart_upload(self):
        # Part 1 of every upload is taken, every later part refused with a
        # 503 (retried), so no snapshot is ever uploaded and the flash budget
        # (drop_oldest) deletes the oldest, in the middle of its multipart
        # upload: its upload must be aborted on the server.
        port = self.s3rver()

        def hook(method, path, body):
            if method == "PUT" and "partNumber=" in path and "partNumber=1&" not in path:
                return (503, {}, b"<Error><Code>SlowDown</Code></Error>")
            return None
        self.front.hook = hook
        self.start_agent(storage="  max_disk: 16MiB\n  on_full: drop_oldest",
                         snapshot="  max_bytes: 6MiB\n  keep: 0", upload=self.mp_conf(port))
        n, first = (30 << 20) // (16 << 10), (12 << 20) // (16 << 10)
        msgs = [{"topic": "big/a", "qos": 1, "payload": os.urandom(16 << 10)} for _ in range(n)]

        def publish_range(lo, hi):
            for i in range(lo, hi, 200):
                publish.multiple(msgs[i:min(i + 200, hi)], hostname="127.0.0.1",
                                 port=self.broker.port)
        # Within the budget first, until the oldest snapshot's upload holds
        # a part on the server (else a slow agent could drop it before its
        # upload began, and no abort would be tested); then past it.
        publish_range(0, first)
        wait_for(lambda: any(m == "PUT" and "partNumber=1&" in p
                             for m, p, _ in self.front.requests), timeout=60,
                 what=lambda: f"a first part sent: {self.agent.log_text()[-3000:]}")
        publish_range(first, n)
        wait_for(lambda: self.agent.stat("snapshots_dropped") >= 1, timeout=60,
                 what=lambda: f"a snapshot dropped: {self.agent.status()}")
        ups = os.path.join(self.tmp, "s3data", "snaps", "._S3rver_uploads")

        def orphans():
            """Uploads on the server of a snapshot that is gone (with parts
            or without: one whose CreateMultipartUpload a deletion cancelled
            in flight is found by ListMultipartUploads), and aborts still
            queued."""
            names = {s["name"] for s in snapshots(self.agent.store)}
            gone = []
            for up in self.front.uploads():
                try:
                    with open(os.path.join(ups, up, "key")) as f:
                        key = f.read()
                    parts = [n for n in os.listdir(os.path.join(ups, up)) if n.isdigit()]
                except OSError:
                    continue  # aborted meanwhile
                if key.split("/")[-1].split(".")[0] not in names:
                    gone.append(f"{key} ({len(parts)} parts)")
            return gone + [n for n in os.listdir(os.path.join(self.agent.store, "snapshots"))
                           if n.startswith(".abort-")]
        wait_for(lambda: not orphans(), timeout=30, what=lambda: f"no orphaned upload: "
                 f"{orphans()}\n{self.agent.log_text()[-3000:]}")
        self.assertTrue(any(m == "DELETE" for m, p, n in self.front.requests))
        self.assertIn("aborted", self.agent.log_text())

    def test_power_cut_at_every_call_resends_at_most_one_part(self):
        """mp_powercut (tests/agent) runs the upload worker over the fault
        vfs, cuts the power right before its Nth mutating file call (STATE,
        UPLOAD and their syncs, renames and directory syncs), reboots on
        what the disk kept and uploads again; once for every N. Each time:
        the object lands equal to the snapshot's tar, the server received
        at most one part more than the object, and no upload is left
        behind (one whose CreateMultipartUpload answer the cut kept from
        being recorded is listed and aborted before the next Create)."""
        port = self.s3rver()
        self.start_agent()  # no upload section: the snapshot stays sealed
        self.sealed_random_snapshot(mib=7)
        self.wait_state("sealed")
        self.assertEqual(self.agent.stop(), 0)
        snap = snapshots(self.agent.store)[0]
        state = self.state_of(snap["name"])
        src = os.path.join(self.agent.store, "snapshots")
        exe = os.path.join(tsu.BUILD, "tests", "agent", "mp_powercut")
        s3 = self.s3_client(port)

        def run(nth):
            d = os.path.join(self.tmp, f"cut{nth}")
            shutil.copytree(src, os.path.join(d, "snapshots"), copy_function=os.link)
            r = subprocess.run([exe, os.path.join(d, "snapshots"), os.path.join(d, "shadow"),
                                str(nth), "localhost", str(port), self.pki.ca, "S3RVER",
                                f"cut{nth}", str(PART)], capture_output=True, text=True,
                               timeout=120)
            self.assertEqual(r.returncode, 0, f"cut at call {nth}: {r.stdout}{r.stderr}")
            out = dict(l.split("=") for l in r.stdout.split())
            tar = s3.get_object(Bucket="snaps", Key=f"cut{nth}/{DEVICE}/{snap['name']}.tar")
            tar = tar["Body"].read()
            self.assertEqual(hashlib.sha256(tar).hexdigest(), state["tar_sha256"], nth)
            sent = sum(n for m, p, n in self.front.requests
                       if m == "PUT" and p.startswith(f"/snaps/cut{nth}/"))
            self.assertLessEqual(sent, len(tar) + PART, f"cut at call {nth}")
            shutil.rmtree(d)
            return int(out["crashed"]), int(out["mutations"])

        crashed, calls = run(0)
        self.assertEqual(crashed, 0)
        self.assertGreater(calls, 10)
        for nth in range(1, calls + 1):
            self.assertEqual(run(nth)[0], 1, nth)
        print(f"power cut at each of {calls} calls: resumed every time", file=sys.stderr)
        # Not even an empty upload is left: one whose id the cut lost is
        # found (ListMultipartUploads) and aborted before the next Create.
        self.assertEqual(self.front.uploads(), [])
        self.assertTrue(any(m == "DELETE" for m, p, n in self.front.requests))  # there were some


def load_tests(loader, tests, pattern):
    """Only this file's tests (not the UploadTest ones they inherit)."""
    return unittest.TestSuite(MultipartTest(n) for n in sorted(vars(MultipartTest))
                              if n.startswith("test_"))


if __name__ == "__main__":
    tsu.BUILD, tsu.ROOT = sys.argv[1], sys.argv[2]
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)
