"""The cluster's PKI, generated at start as k3s generates it on a new server.

- A server CA (`k3s-server-ca@<unix time>`) that signs the API server's serving certificate
  (CN `k3s`, SANs `kubernetes`, `kubernetes.default`, `kubernetes.default.svc`,
  `kubernetes.default.svc.cluster.local`, `localhost`, 127.0.0.1, ::1, 10.43.0.1 and the bind address).
- A client CA (`k3s-client-ca@<unix time>`) that signs client certificates; the admin's is
  CN `system:admin`, O `system:masters`, as in /etc/rancher/k3s/k3s.yaml.
- A service-account signing key (`service.key`).

Keys are ECDSA P-256 (k3s' choice, and cheap enough to make per test). The PEM files live in a
private temporary directory removed by `cleanup()`. `trusted_context(url)` is this process's
trust store: the client-side SSL context for a running fake API server at `url`, so components
started with only a URL (the kubelet simulator) verify it like a node verifies its server.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import ssl
import tempfile
import threading
import time
from typing import Dict, Iterable, List, Optional, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVICE_HOSTNAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                     "kubernetes.default.svc.cluster.local", "localhost")
SERVICE_IPS = ("127.0.0.1", "::1", "10.43.0.1")
VALIDITY = datetime.timedelta(days=365)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, organizations: Iterable[str] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    return x509.Name(attributes + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class CertificateAuthority:
    def __init__(self, common_name: str) -> None:
        self.key = _key()
        now = datetime.datetime.now(datetime.timezone.utc)
        subject = _name(common_name)
        self.cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + 10 * VALIDITY)
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                                  key_cert_sign=True, content_commitment=False,
                                                  data_encipherment=False, key_agreement=False, crl_sign=False,
                                                  encipher_only=False, decipher_only=False), critical=True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                                    critical=False)
                     .sign(self.key, hashes.SHA256()))

    @property
    def pem(self) -> bytes:
        return _pem_cert(self.cert)

    def issue(self, common_name: str, organizations: Iterable[str] = (), server: bool = False,
              hostnames: Iterable[str] = (), ips: Iterable[str] = ()) -> Tuple[bytes, bytes]:
        """(certificate PEM, key PEM) signed by this CA, for a server or a client."""
        key = _key()
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (x509.CertificateBuilder().subject_name(_name(common_name, organizations))
                   .issuer_name(self.cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, key_cert_sign=False,
                                                content_commitment=False, data_encipherment=False,
                                                key_agreement=False, crl_sign=False, encipher_only=False,
                                                decipher_only=False), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                         else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                                  critical=False))
        if server:
            names: List[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
            names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return _pem_cert(cert), _pem_key(key)


class ClusterPKI:
    """Everything TLS a fake cluster needs, written under one private directory."""

    def __init__(self, bind_host: str = "127.0.0.1") -> None:
        stamp = int(time.time())
        self.server_ca = CertificateAuthority(f"k3s-server-ca@{stamp}")
        self.client_ca = CertificateAuthority(f"k3s-client-ca@{stamp}")
        ips = list(SERVICE_IPS)
        try:
            if bind_host not in ("0.0.0.0", "::") and str(ipaddress.ip_address(bind_host)) not in ips:
                ips.append(bind_host)
        except ValueError:  # a hostname
            pass
        hostnames = list(SERVICE_HOSTNAMES)
        if bind_host not in hostnames and not _is_ip(bind_host):
            hostnames.append(bind_host)
        self.serving_cert, self.serving_key = self.server_ca.issue("k3s", ("k3s",), server=True,
                                                                   hostnames=hostnames, ips=ips)
        self.admin_cert, self.admin_key = self.client_ca.issue("system:admin", ("system:masters",))
        self.service_account_key = _key()
        self.directory = tempfile.mkdtemp(prefix="fake-kube-pki-")
        self.ca_file = self._write("server-ca.crt", self.server_ca.pem)
        self.client_ca_file = self._write("client-ca.crt", self.client_ca.pem)
        self.serving_cert_file = self._write("serving-kube-apiserver.crt", self.serving_cert + self.server_ca.pem)
        self.serving_key_file = self._write("serving-kube-apiserver.key", self.serving_key)

    def _write(self, name: str, data: bytes) -> str:
        path = os.path.join(self.directory, name)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
            handle.write(data)
        return path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.serving_cert_file, self.serving_key_file)
        context.load_verify_locations(cafile=self.client_ca_file)
        context.verify_mode = ssl.CERT_OPTIONAL  # client certificates or bearer tokens
        context.set_alpn_protocols(["http/1.1"])
        return context

    def client_context(self, cert: Optional[bytes] = None, key: Optional[bytes] = None) -> ssl.SSLContext:
        """Trusts the server CA; presents a client certificate when given one."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if cert is not None and key is not None:
            cert_file = self._write(f"client-{os.getpid()}-{id(cert)}.crt", cert)
            key_file = self._write(f"client-{os.getpid()}-{id(cert)}.key", key)
            context.load_cert_chain(cert_file, key_file)
        return context

    def cleanup(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def peer_identity(peercert: Optional[dict]) -> Optional[Tuple[str, List[str]]]:
    """(CN, [O...]) of a verified client certificate as `ssl` reports it, or None."""
    if not peercert:
        return None
    common_name, organizations = None, []
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                common_name = value
            elif key == "organizationName":
                organizations.append(value)
    return (common_name, organizations) if common_name else None


_TRUST: Dict[str, ClusterPKI] = {}
_TRUST_LOCK = threading.Lock()


def trust(url: str, pki: ClusterPKI) -> None:
    with _TRUST_LOCK:
        _TRUST[url.rstrip("/")] = pki


def distrust(url: str) -> None:
    with _TRUST_LOCK:
        _TRUST.pop(url.rstrip("/"), None)


def trusted_context(url: str) -> Optional[ssl.SSLContext]:
    """The client SSL context for a fake API server running in this process at `url` (None: unknown)."""
    with _TRUST_LOCK:
        pki = _TRUST.get(url.rstrip("/"))
    return pki.client_context() if pki is not None else None
