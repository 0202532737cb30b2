"""Authorization: Bearer <JWT> (issue 8): HS256 and RS256 verified with OpenSSL; expired,
not yet valid, wrong audience, wrong key, alg none and HS256 signed with the RSA public key
are refused with the 401 envelope. Tokens are built by hand (hmac) and with the openssl CLI."""
import base64
import hashlib
import hmac
import json
import subprocess
import time

import pytest
import requests

from apihelpers import assert_error

SECRET = "jwt-test-secret-0123456789abcdef"
AUD = "sandboxd-tests"


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(claims, alg="HS256", key=SECRET.encode(), sign=None):
    head = b64u(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64u(json.dumps(claims).encode())
    msg = f"{head}.{body}".encode()
    if sign:
        sig = sign(msg)
    elif alg == "HS256":
        sig = hmac.new(key, msg, hashlib.sha256).digest()
    else:
        sig = b""
    return f"{head}.{body}.{b64u(sig)}"


@pytest.fixture(scope="module")
def rsa(tmp_path_factory):
    d = tmp_path_factory.mktemp("jwt")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", str(d / "priv.pem")], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(d / "priv.pem"), "-pubout",
                    "-out", str(d / "pub.pem")], check=True, capture_output=True)
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", str(d / "other.pem")], check=True, capture_output=True)
    # ES256: two P-256 keys; ec.pem is published in a JWKS (kid "ec-1"), ec-other.pem is not.
    for name in ("ec.pem", "ec-other.pem"):
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-out", str(d / name)],
                       check=True, capture_output=True)
    spki = subprocess.run(["openssl", "pkey", "-in", str(d / "ec.pem"), "-pubout", "-outform",
                           "DER"], check=True, capture_output=True).stdout
    point = spki[-65:]
    assert point[0] == 4
    (d / "jwks.json").write_text(json.dumps({"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "ec-1", "use": "sig",
         "x": b64u(point[1:33]), "y": b64u(point[33:])}]}))
    return d


def rs256(priv):
    def sign(msg):
        return subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(priv)], input=msg,
                              check=True, capture_output=True).stdout
    return sign


def _der_ints(der):
    """The two INTEGERs of a DER ECDSA-Sig-Value."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7f)
    out = []
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        out.append(int.from_bytes(der[i + 2:i + 2 + n], "big"))
        i += 2 + n
    return out


def es256(priv, der=False):
    """ES256 signer: JWS wants raw r||s (32 bytes each), openssl gives DER."""
    def sign(msg):
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(priv)], input=msg,
                             check=True, capture_output=True).stdout
        if der:
            return sig
        r, s = _der_ints(sig)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return sign


@pytest.fixture(scope="module")
def jd(start_daemon, rsa):
    return start_daemon("sandboxd-jwt", {"SANDBOXD_JWT_HS256_SECRET": SECRET,
                                         "SANDBOXD_JWT_PUBLIC_KEY_FILE": str(rsa / "pub.pem"),
                                         "SANDBOXD_JWT_JWKS_FILE": str(rsa / "jwks.json"),
                                         "SANDBOXD_JWT_AUDIENCE": AUD,
                                         "SANDBOXD_JWT_LEEWAY": "5s"})


@pytest.fixture
def org_id(jd):
    import uuid
    r = requests.post(jd.base + "/api/v1/register",
                      json={"email": f"j-{uuid.uuid4().hex[:10]}@example.com",
                            "organization_name": "JWT " + uuid.uuid4().hex[:8]}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["organization"]["id"]


def call(jd, tok):
    return requests.get(jd.base + "/api/v1/sandboxes",
                        headers={"Authorization": f"Bearer {tok}"}, timeout=30)


def claims(org_id, **over):
    now = int(time.time())
    c = {"sub": "user-1", "org_id": org_id, "role": "member", "aud": AUD, "iat": now,
         "exp": now + 300}
    c.update(over)
    return c


def test_valid_hs256_and_rs256(jd, org_id, rsa):
    r = call(jd, token(claims(org_id)))
    assert r.status_code == 200, r.text
    assert call(jd, token(claims(org_id), alg="RS256",
                          sign=rs256(rsa / "priv.pem"))).status_code == 200


@pytest.mark.parametrize("case", ["expired", "not_yet_valid", "wrong_audience", "wrong_key",
                                  "wrong_rsa_key", "alg_none", "hs256_with_rsa_public_key",
                                  "unknown_org", "garbage"])
def test_refused(jd, org_id, rsa, case):
    now = int(time.time())
    if case == "expired":
        tok = token(claims(org_id, exp=now - 60))
    elif case == "not_yet_valid":
        tok = token(claims(org_id, nbf=now + 120))
    elif case == "wrong_audience":
        tok = token(claims(org_id, aud="someone-else"))
    elif case == "wrong_key":
        tok = token(claims(org_id), key=b"not-the-secret")
    elif case == "wrong_rsa_key":
        tok = token(claims(org_id), alg="RS256", sign=rs256(rsa / "other.pem"))
    elif case == "alg_none":
        tok = token(claims(org_id), alg="none")
    elif case == "hs256_with_rsa_public_key":
        tok = token(claims(org_id), key=(rsa / "pub.pem").read_bytes())
    elif case == "unknown_org":
        import uuid
        tok = token(claims(str(uuid.uuid4())))
    else:
        tok = "a.b.c"
    r = call(jd, tok)
    assert_error(r, 401)


def es_token(claims, priv, kid="ec-1", der=False):
    head = {"alg": "ES256", "typ": "JWT"}
    if kid:
        head["kid"] = kid
    h = b64u(json.dumps(head).encode())
    body = b64u(json.dumps(claims).encode())
    msg = f"{h}.{body}".encode()
    return f"{h}.{body}.{b64u(es256(priv, der)(msg))}"


def test_es256_from_jwks(jd, org_id, rsa):
    """ES256 with a P-256 key from the JWKS: the raw r||s signature is accepted (with and
    without kid); a DER signature, another P-256 key, an unknown kid, an expired token and
    RS256/HS256 headers over the EC signature are refused with 401."""
    assert call(jd, es_token(claims(org_id), rsa / "ec.pem")).status_code == 200
    assert call(jd, es_token(claims(org_id), rsa / "ec.pem", kid=None)).status_code == 200
    now = int(time.time())
    refused = [
        es_token(claims(org_id), rsa / "ec.pem", der=True),
        es_token(claims(org_id), rsa / "ec-other.pem"),
        es_token(claims(org_id), rsa / "ec.pem", kid="ec-2"),
        es_token(claims(org_id, exp=now - 60), rsa / "ec.pem"),
        es_token(claims(org_id, aud="someone-else"), rsa / "ec.pem"),
        token(claims(org_id), alg="RS256", sign=es256(rsa / "ec.pem")),
        token(claims(org_id), alg="HS256", key=(rsa / "jwks.json").read_bytes()),
    ]
    for tok in refused:
        assert_error(call(jd, tok), 401)
