"""S3 failure handling (issue 4), with tests/storage/faultproxy.py between blobctl and s3rver:
a multipart part failing for good → AbortMultipartUpload is sent, the put fails, no object;
a connection dropped mid-part and transient 503 SlowDown answers are retried and the put
succeeds byte-exact."""
import hashlib
import os

import pytest

from conftest import Store, s3_args
from faultproxy import FaultProxy

MiB = 1 << 20
MP = ["--multipart-threshold", str(5 * MiB), "--part-size", str(5 * MiB)]


@pytest.fixture
def proxied(s3rver):
    p = FaultProxy(s3rver.endpoint).start()
    st = Store("s3", s3_args(s3rver, endpoint=p.endpoint) + MP + ["--max-attempts", "4"],
               server=s3rver)
    direct = Store("s3", s3_args(s3rver), server=s3rver)
    yield p, st, direct
    p.stop()


def key_of(name):
    return f"faults/{name}/{os.urandom(6).hex()}"


def test_part_failing_permanently_aborts_the_upload(proxied, tmp_path):
    p, st, direct = proxied
    data = os.urandom(12 * MiB)  # three parts
    key = key_of("perm")
    p.fail_part(2, status=500)
    e = st.errno_of("put", key, "-", "--size", str(len(data)), "--sha256",
                    hashlib.sha256(data).hexdigest(), stdin=data)
    assert e.rc != 0 and e.errno, e.stderr
    parts = p.part_uploads()
    assert parts.count(2) == 4, parts  # --max-attempts 4, then give up
    assert 3 not in parts  # nothing after the failing part
    aborts = p.aborts()
    assert len(aborts) == 1 and aborts[0], p.requests()
    assert not any(m == "POST" and "uploadId" in q for m, _, q in p.requests()), \
        "CompleteMultipartUpload must not be sent"
    assert direct.errno_of("head", key).errno == "ENOENT"
    assert key not in direct.list("faults/")
    # the fault cleared, the same put works
    p.clear()
    st.put_bytes(key, data)
    assert hashlib.sha256(direct.get_bytes(key)).hexdigest() == hashlib.sha256(data).hexdigest()


def test_transient_part_failure_and_dropped_connection_are_retried(proxied):
    p, st, direct = proxied
    data = os.urandom(11 * MiB)
    key = key_of("transient")
    p.fail_part(1, status=500, times=2)
    st.put_bytes(key, data)
    assert p.part_uploads().count(1) == 3
    assert p.aborts() == []
    assert direct.get_bytes(key) == data
    key2 = key_of("drop")
    p.clear()
    p.drop_part(3, times=1)
    st.put_bytes(key2, data)
    assert p.part_uploads().count(3) >= 2
    assert direct.get_bytes(key2) == data


def test_slow_down_is_retried(proxied):
    p, st, direct = proxied
    key = key_of("slow")
    p.slow_down(times=3)  # single PUT: three 503 SlowDown, then through (4 attempts)
    st.put_bytes(key, b"small object")
    assert direct.get_bytes(key) == b"small object"
    p.slow_down(times=2)
    assert st.get_bytes(key) == b"small object"
    # more SlowDowns than attempts: a clear error, nothing half-written
    p.slow_down(times=10)
    key2 = key_of("slow-fail")
    e = st.errno_of("put", key2, "-", "--size", "3", stdin=b"abc")
    assert e.rc != 0
    p.clear()
    assert direct.errno_of("head", key2).errno == "ENOENT"
