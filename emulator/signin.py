"""Password-less sign-in for the emulator: a JWT issuer it trusts, and a CA
for client certificates. Both are made at start, in the emulator's
temporary folder, with the openssl command (Python's standard library cannot
sign or verify signatures); their keys never leave that folder.

- JWTs are RS256, issued by ISSUER, with `sub` = an identity's user name.
  The emulator accepts one when the signature verifies with its key, `iss`
  is ISSUER, `aud` holds the expected audience, and `exp` is in the future.
- Client certificates are signed by the client CA; the subject's CN is an
  identity's user name. The server asks for one in every TLS handshake (it
  is optional) and trusts only this CA.
"""

import base64
import json
import os
import secrets
import ssl
import subprocess

ISSUER = "https://oidc.tpp-emulator.invalid"
AUDIENCE = "prequalify-emulator"
# Where the TLS layer hands the client certificate's subject to an endpoint.
# No header read from the wire can have this name (names never start with ':').
SUBJECT_HEADER = ":tls-client-subject"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    if not isinstance(text, str) or not text or any(c not in _B64URL for c in text):
        raise ValueError("not Base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class Signin:
    def __init__(self, folder, audience=AUDIENCE):
        self.folder = folder
        self.audience = audience
        self.jwt_key = os.path.join(folder, "jwt-signing.key")
        self.jwt_pub = os.path.join(folder, "jwt-signing.pub")
        self.client_ca = os.path.join(folder, "client-ca.pem")
        self.client_ca_key = os.path.join(folder, "client-ca.key")
        self.kid = secrets.token_hex(8)
        self._openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", self.jwt_key)
        self._openssl("pkey", "-in", self.jwt_key, "-pubout", "-out", self.jwt_pub)
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                      "-keyout", self.client_ca_key, "-out", self.client_ca, "-days", "2", "-sha256",
                      "-subj", "/CN=prequalify TPP emulator client CA",
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def _openssl(self, *args, data=None):
        r = subprocess.run(("openssl",) + args, cwd=self.folder, input=data, check=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return r.stdout

    def _scratch(self, suffix):
        return os.path.join(self.folder, "scratch-%s%s" % (secrets.token_hex(8), suffix))

    # -- JWTs ---------------------------------------------------------------

    def mint_jwt(self, sub, now, expires_in=300, aud=None, issuer=ISSUER):
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        claims = {"iss": issuer, "sub": sub, "aud": self.audience if aud is None else aud,
                  "iat": int(now), "nbf": int(now) - 5, "exp": int(now + expires_in),
                  "jti": secrets.token_hex(8)}
        signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode()))
        sig = self._openssl("dgst", "-sha256", "-sign", self.jwt_key, data=signing_input.encode("ascii"))
        return signing_input + "." + b64url(sig), claims

    def verify_jwt(self, token, now):
        """The claims of a JWT this issuer signed and that is valid now, or (None, why)."""
        parts = token.split(".") if isinstance(token, str) else []
        if len(parts) != 3:
            return None, "it is not a JWT (three Base64url parts)"
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            sig = b64url_decode(parts[2])
        except (ValueError, UnicodeDecodeError):
            return None, "it is not a JWT (three Base64url parts)"
        if b64url(sig) != parts[2] or len(sig) != 256:  # canonical, and the size of an RSA-2048 signature
            return None, "its signature does not verify with the trusted issuer's key"
        if not isinstance(header, dict) or not isinstance(claims, dict):
            return None, "its header or payload is not a JSON object"
        if header.get("alg") != "RS256":
            return None, "its algorithm %r is not trusted" % header.get("alg")
        sig_file = self._scratch(".sig")
        try:
            with open(sig_file, "wb") as f:
                f.write(sig)
            try:
                self._openssl("dgst", "-sha256", "-verify", self.jwt_pub, "-signature", sig_file,
                              data=(parts[0] + "." + parts[1]).encode("ascii"))
            except subprocess.CalledProcessError:
                return None, "its signature does not verify with the trusted issuer's key"
        finally:
            os.unlink(sig_file)
        if claims.get("iss") != ISSUER:
            return None, "its issuer %r is not trusted" % claims.get("iss")
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if self.audience not in auds:
            return None, "its audience %r is not %r" % (aud, self.audience)
        exp = claims.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, (int, float)):
            return None, "it has no exp claim"
        if now >= exp:
            return None, "it has expired"
        nbf = claims.get("nbf")
        if isinstance(nbf, (int, float)) and not isinstance(nbf, bool) and now < nbf - 60:
            return None, "it is not valid yet (nbf)"
        return claims, None

    # -- client certificates ------------------------------------------------

    def mint_client_cert(self, subject_cn):
        """A new key and a client certificate for CN=subject_cn, signed by the client CA (PEM texts)."""
        key, csr, cert, ext = (self._scratch(s) for s in (".key", ".csr", ".pem", ".ext"))
        try:
            self._openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                          "-keyout", key, "-out", csr, "-subj", "/CN=" + subject_cn.replace("/", "\\/"))
            with open(ext, "w") as f:
                f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                        "extendedKeyUsage=clientAuth\n")
            self._openssl("x509", "-req", "-in", csr, "-CA", self.client_ca, "-CAkey", self.client_ca_key,
                          "-set_serial", "0x" + secrets.token_hex(16), "-days", "2", "-sha256",
                          "-extfile", ext, "-out", cert)
            with open(cert) as f:
                cert_pem = f.read()
            with open(key) as f:
                key_pem = f.read()
            return cert_pem, key_pem
        finally:
            for p in (key, csr, cert, ext):
                if os.path.exists(p):
                    os.unlink(p)

    def ask_for_client_certs(self, ctx):
        """Make a server SSLContext ask for an optional client certificate from the client CA."""
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(self.client_ca)


def peer_subject(sock):
    """The CN of the verified client certificate on a TLS socket, or None."""
    getpeercert = getattr(sock, "getpeercert", None)
    if getpeercert is None:
        return None
    try:
        cert = getpeercert()
    except ValueError:
        return None
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None
