"""botocore's SigV4 signer as the reference for EmbedDb's (agent/sigv4.c).

botocore_authorization() returns the Authorization header botocore (Debian's
python3-botocore, the signer of the AWS CLI) produces for a request, at a
fixed time and for a given payload hash, so a test can compare it with what
the C signer or the agent's real upload sent.

What botocore does on its own, so pass headers accordingly:
  - it signs every header given, except User-Agent, Expect and
    X-Amzn-Trace-Id (never sign those in the agent either);
  - it sets X-Amz-Date from amz_date, X-Amz-Content-SHA256 from
    payload_sha256 (S3), and X-Amz-Security-Token from session_token,
    replacing any given value, and signs them;
  - it derives Host from the URL (lowercase, default port dropped) when
    headers has none;
  - S3 (service "s3", S3SigV4Auth): the URL's path is signed as it is (so it
    must be percent-encoded already) and never normalised.
"""
import datetime
from unittest import mock

try:
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
except ImportError as e:  # pragma: no cover - environment problem
    raise ImportError(f"botocore is missing ({e}): run `sh .ci/deps` (python3-botocore)") from e

_REAL_DATETIME = datetime.datetime


class _FixedClock(_REAL_DATETIME):
    """datetime.datetime whose "now" is the signing time under test."""

    fixed = None

    @classmethod
    def utcnow(cls):
        return cls.fixed

    @classmethod
    def now(cls, tz=None):
        return cls.fixed.replace(tzinfo=tz) if tz else cls.fixed


def _with_payload(base, payload_sha256):
    class Signer(base):
        def payload(self, request):
            return payload_sha256

    return Signer


def botocore_authorization(method, url, headers, payload_sha256, region, access_key,
                           secret_key, amz_date, session_token=None, service="s3"):
    """The Authorization header value botocore signs for this request.

    method "PUT"; url the full URL as sent ("https://host:9000/bucket/dev%201/k");
    headers a dict of the headers sent (names any case); payload_sha256 64
    lowercase hex digits or "UNSIGNED-PAYLOAD"; amz_date "YYYYMMDDTHHMMSSZ".
    """
    when = _REAL_DATETIME.strptime(amz_date, "%Y%m%dT%H%M%SZ")
    base = botocore.auth.S3SigV4Auth if service == "s3" else botocore.auth.SigV4Auth
    signer = _with_payload(base, payload_sha256)(
        Credentials(access_key, secret_key, session_token), service, region)
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=b"")
    _FixedClock.fixed = when
    with mock.patch.object(botocore.auth.datetime, "datetime", _FixedClock):
        signer.add_auth(request)
    # A botocore that reads the clock some other way would sign another time.
    if request.headers.get("X-Amz-Date") != amz_date:
        raise AssertionError(f"botocore signed at {request.headers.get('X-Amz-Date')!r}, "
                             f"not {amz_date!r}: the clock patch no longer applies")
    return request.headers["Authorization"]
