"""A real OCI registry on loopback for tests, with images that carry real vLLM metadata.

The registry is Debian's ``docker-registry`` (distribution 2.8) with storage in a temp dir. Images
are built with ``buildah from scratch`` + ``buildah config`` + ``buildah commit`` (no base image, no
network) in a private vfs store under the temp dir, so nothing touches the host's container storage,
and pushed with ``buildah push`` / ``buildah manifest push --all`` (the same containers/image code
as ``skopeo copy``). Multi-platform images are pushed as an OCI index or a Docker manifest list,
optionally with a BuildKit-style attestation entry (``unknown/unknown``), so clients meet an index
first, as on Docker Hub.

Authentication: ``LocalRegistry(tmpdir, auth="token")`` runs the registry with ``auth: token`` and a
small token server written here (stdlib HTTP server on loopback) that issues RS256 JWTs like Docker
Hub's ``auth.docker.io/token``: anonymous tokens grant ``pull`` on public repositories, a known user
(Basic auth to the token server) gets ``pull,push`` everywhere. The registry verifies the JWTs against
a self-signed certificate generated at start (python ``cryptography``, a dependency of
ansible-core). Token auth was chosen over ``htpasswd`` because it is the flow Docker Hub and the
usual public registries use (401 + ``WWW-Authenticate: Bearer realm=...,service=...,scope=...``), and
because it runs over plain http on loopback (htpasswd would need TLS).
"""

import base64
import concurrent.futures
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = [
    "ImageBuilder",
    "LocalRegistry",
    "RegistryToolsMissing",
    "TokenServer",
    "VLLM_IMAGES",
    "missing_registry_tools",
    "nvidia_require_cuda",
]

REQUIRED_TOOLS = ("docker-registry", "buildah", "skopeo")


class RegistryToolsMissing(RuntimeError):
    """docker-registry, buildah or skopeo is not installed."""


def missing_registry_tools():
    """Names of the required tools that are not on PATH."""
    return [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]


# --- Real image metadata ---------------------------------------------------------------------------
#
# NVIDIA_REQUIRE_CUDA of NVIDIA's CUDA base images. The strings are generated from brand and branch
# lists because they are long; each generator reproduces the upstream value character for character
# (checked against these files when this was written):
#   12.4.1: gitlab.com/nvidia/container-images/cuda dist/12.4.1/ubuntu2204/base/Dockerfile
#           (GitHub copy: taehun-kmu/FMCL-Docker, same path)
#   12.8.1: dist/12.8.1/ubuntu2004/base/Dockerfile (GitHub mirror pranavmishra90/nvidia-container-images-cuda;
#           the value comes from the version's platform data and is the same for every distro)
#   12.9.1: dist/12.9.1/ubuntu2204/base/Dockerfile (same mirror)
_BRANDS_12_4 = ("tesla", "unknown", "nvidia", "nvidiartx", "geforce", "geforcertx", "quadro", "quadrortx", "titan",
                "titanrtx")
_BRANDS_12_8 = ("unknown", "grid", "tesla", "nvidia", "quadro", "quadrortx", "nvidiartx", "vapps", "vpc", "vcs",
                "vws", "cloudgaming")


def nvidia_require_cuda(cuda, branches, brands):
    """``cuda>=X.Y brand=B,driver>=N,driver<N+1 ...`` in NVIDIA's order (branch-major, then brand)."""
    parts = ["cuda>=%s" % cuda]
    for branch in branches:
        for brand in brands:
            parts.append("brand=%s,driver>=%d,driver<%d" % (brand, branch, branch + 1))
    return " ".join(parts)


_REQUIRE = {
    "12.4.1": nvidia_require_cuda("12.4", (470, 525, 535), _BRANDS_12_4),
    "12.8.1": nvidia_require_cuda("12.8", (470, 535, 550, 560, 565), _BRANDS_12_8),
    "12.9.1": nvidia_require_cuda("12.9", (535, 550, 560, 565, 570), _BRANDS_12_8),
}
# NV_CUDA_CUDART_VERSION and the PATH / LD_LIBRARY_PATH layout of the same Dockerfiles: 12.4 images
# still carry the nvidia-docker v1 paths (/usr/local/nvidia), 12.8+ do not.
_CUDART = {"12.4.1": "12.4.127-1", "12.8.1": "12.8.90-1", "12.9.1": "12.9.79-1"}
_NVARCH = {"amd64": "x86_64", "arm64": "sbsa"}
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Labels: nvidia/cuda sets `LABEL maintainer="NVIDIA CORPORATION <cudatools@nvidia.com>"` (same
# Dockerfiles); org.opencontainers.image.ref.name / .version are inherited from the ubuntu:22.04
# base image (Canonical's images label themselves "ubuntu" / "22.04"): in vLLM's images the OCI
# version label is the Ubuntu release, not vLLM's. Read the vLLM version from the tag.
_LABELS = {
    "maintainer": "NVIDIA CORPORATION <cudatools@nvidia.com>",
    "org.opencontainers.image.ref.name": "ubuntu",
    "org.opencontainers.image.version": "22.04",
}
# Entrypoints: vLLM's docker/Dockerfile (vllm-openai stage) used
# `ENTRYPOINT ["python3", "-m", "vllm.entrypoints.openai.api_server"]` through 2025 (read at
# vllm-project/vllm docker/Dockerfile, CUDA_VERSION=12.8.1 era); later releases start `vllm serve`
# (not verified against the v0.12.0 / v0.15.1 tags: treat as representative).
_ENTRY_API_SERVER = ["python3", "-m", "vllm.entrypoints.openai.api_server"]
_ENTRY_SERVE = ["vllm", "serve"]


def cuda_image_env(cuda_version, arch="amd64"):
    """The environment of a vLLM image built on NVIDIA's CUDA ``cuda_version`` base (12.4.1, 12.8.1, 12.9.1)."""
    major_minor = ".".join(cuda_version.split(".")[:2])
    old_layout = major_minor == "12.4"
    env = {
        "PATH": ("/usr/local/nvidia/bin:/usr/local/cuda/bin:" if old_layout else "/usr/local/cuda/bin:")
        + _SYSTEM_PATH,
        "NVARCH": _NVARCH[arch],
        "NVIDIA_REQUIRE_CUDA": _REQUIRE[cuda_version],
        "NV_CUDA_CUDART_VERSION": _CUDART[cuda_version],
        "CUDA_VERSION": cuda_version,
        "LD_LIBRARY_PATH": "/usr/local/nvidia/lib:/usr/local/nvidia/lib64" if old_layout else "/usr/local/cuda/lib64",
        "NVIDIA_VISIBLE_DEVICES": "all",
        "NVIDIA_DRIVER_CAPABILITIES": "compute,utility",
        # vLLM's docker/Dockerfile: vllm-base and vllm-openai-base stages.
        "DEBIAN_FRONTEND": "noninteractive",
        "UV_HTTP_TIMEOUT": "500",
        "VLLM_USAGE_SOURCE": "production-docker-image",
    }
    if old_layout:
        env["NV_CUDA_COMPAT_PACKAGE"] = "cuda-compat-12-4"
    return env


def _vllm_image(tag, cuda_version, layout, arches, entrypoint):
    return {
        "repository": "vllm/vllm-openai",
        "tag": tag,
        "cuda_version": cuda_version,
        # layout: docker-v2 (single Docker v2 manifest), oci (single OCI manifest), oci-index or
        # docker-list (multi-platform), with "attestation" an unknown/unknown entry like BuildKit's.
        "layout": layout,
        "platforms": [
            {
                "arch": arch,
                "env": cuda_image_env(cuda_version, arch),
                "labels": dict(_LABELS),
                "entrypoint": list(entrypoint),
            }
            for arch in arches
        ],
    }


# The images of the reference deployments (docs/reference-deployments.md). CUDA versions: vLLM's Dockerfile
# `ARG CUDA_VERSION` at each tag, as plugins/module_utils/compat_data.py records them with sources
# (v0.5.5-v0.8.5.post1: CUDA 12.4.1, vllm#17901; v0.9.0: 12.8.1 after PR #16859; v0.12.0 / v0.15.1:
# 12.9.1). Layouts mimic Docker Hub: older tags as a plain manifest, newer ones as multi-platform
# indexes with BuildKit attestations.
VLLM_IMAGES = {
    "v0.5.5": _vllm_image("v0.5.5", "12.4.1", "docker-v2", ["amd64"], _ENTRY_API_SERVER),
    "v0.8.5.post1": _vllm_image("v0.8.5.post1", "12.4.1", "oci-index+attestation", ["amd64"], _ENTRY_API_SERVER),
    "v0.9.0": _vllm_image("v0.9.0", "12.8.1", "oci-index+attestation", ["amd64"], _ENTRY_API_SERVER),
    "v0.12.0": _vllm_image("v0.12.0", "12.9.1", "docker-list", ["amd64", "arm64"], _ENTRY_SERVE),
    "v0.15.1": _vllm_image("v0.15.1", "12.9.1", "oci-index+attestation", ["amd64", "arm64"], _ENTRY_SERVE),
}


# --- Building images -------------------------------------------------------------------------------


def _run(cmd, timeout=60, env=None):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError("%s failed (exit %s): %s" % (" ".join(cmd[:6]), proc.returncode, proc.stderr.strip()))
    return proc.stdout.strip()


class ImageBuilder:
    """Builds scratch images carrying only metadata, in a private buildah store under ``workdir``.

    Each distinct image spec is built once (``build`` returns the cached local name on repeats), so a
    session can push the same images to several registries cheaply.
    """

    def __init__(self, workdir):
        self.workdir = os.path.abspath(str(workdir))
        os.makedirs(self.workdir, exist_ok=True)
        self._base = [
            "buildah",
            "--root", os.path.join(self.workdir, "storage"),
            "--runroot", os.path.join(self.workdir, "run"),
            "--storage-driver", "vfs",
        ]
        self._built = {}
        self._lists = {}
        self._lock = threading.Lock()
        self._key_locks = {}

    def buildah(self, *args, timeout=60):
        return _run(self._base + [str(a) for a in args], timeout=timeout)

    def _key_lock(self, key):
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def build(self, env=None, labels=None, arch="amd64", os_name="linux", variant=None, entrypoint=None, cmd=None):
        """Local image name (``localhost/img-<hash>``) of a scratch image with this config.

        Thread-safe: different specs build in parallel, the same spec is built once."""
        spec = {
            "env": dict(env or {}),
            "labels": dict(labels or {}),
            "arch": arch,
            "os": os_name,
            "variant": variant,
            "entrypoint": list(entrypoint) if entrypoint is not None else None,
            "cmd": list(cmd) if cmd is not None else None,
        }
        key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]
        with self._key_lock("img-" + key):
            if key in self._built:
                return self._built[key]
            name = "localhost/img-%s:latest" % key
            args = ["config", "--arch", arch, "--os", os_name]
            if variant:
                args += ["--variant", variant]
            for k, v in spec["env"].items():
                args += ["--env", "%s=%s" % (k, v)]
            for k, v in spec["labels"].items():
                args += ["--label", "%s=%s" % (k, v)]
            if entrypoint is not None:
                args += ["--entrypoint", json.dumps(list(entrypoint))]
            if cmd is not None:
                args += ["--cmd", json.dumps(list(cmd))]
            container = self.buildah("from", "--name", "work-%s" % key, "scratch")
            self.buildah(*(args + [container]))
            self.buildah("commit", "--quiet", "--rm", "--identity-label=false", container, name)
            self._built[key] = name
            return name

    def _build_platform(self, plat):
        return self.build(
            env=plat.get("env"),
            labels=plat.get("labels"),
            arch=plat.get("arch", "amd64"),
            os_name=plat.get("os", "linux"),
            variant=plat.get("variant"),
            entrypoint=plat.get("entrypoint"),
            cmd=plat.get("cmd"),
        )

    def build_many(self, platforms, workers=4):
        """Build several platform dicts (keys of ``build``) in parallel; their local names, in order."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(self._build_platform, platforms))

    def build_list(self, platforms, attestation=False):
        """Local manifest list holding one image per platform dict (keys of ``build``); with
        ``attestation`` a BuildKit-style provenance entry (platform unknown/unknown, annotated
        ``vnd.docker.reference.type=attestation-manifest``) that clients must skip.
        LocalRegistry.push_index adds its ``vnd.docker.reference.digest`` once pushed digests are known."""
        key = hashlib.sha256(json.dumps([platforms, attestation], sort_keys=True).encode()).hexdigest()[:20]
        with self._key_lock("list-" + key):
            if key in self._lists:
                return self._lists[key]
            images = self.build_many(platforms)
            name = "localhost/list-%s:latest" % key
            self.buildah("manifest", "create", name)
            for image, plat in zip(images, platforms):
                self.buildah("manifest", "add", "--arch", plat.get("arch", "amd64"), "--os", plat.get("os", "linux"),
                             *(["--variant", plat["variant"]] if plat.get("variant") else []), name, image)
            if attestation:
                att = self.build(labels={"attestation.for": images[0]}, arch="amd64")
                self.buildah("manifest", "add", "--arch", "unknown", "--os", "unknown",
                             "--annotation", "vnd.docker.reference.type=attestation-manifest", name, att)
            self._lists[key] = name
            return name

    def push(self, image, destination, fmt="oci", creds=None):
        """Push a local image to ``docker://destination``; the pushed manifest's digest."""
        digestfile = os.path.join(self.workdir, "digest-%s" % uuid.uuid4().hex)
        args = ["push", "--quiet", "--tls-verify=false", "--format", fmt, "--digestfile", digestfile]
        if creds:
            args += ["--creds", creds]
        self.buildah(*(args + [image, "docker://" + destination]))
        return self._read_digest(digestfile)

    def push_list(self, name, destination, fmt="oci", creds=None):
        digestfile = os.path.join(self.workdir, "digest-%s" % uuid.uuid4().hex)
        args = ["manifest", "push", "--all", "--quiet", "--tls-verify=false", "--format", fmt,
                "--digestfile", digestfile]
        if creds:
            args += ["--creds", creds]
        self.buildah(*(args + [name, "docker://" + destination]))
        return self._read_digest(digestfile)

    @staticmethod
    def _read_digest(path):
        with open(path, encoding="utf-8") as handle:
            digest = handle.read().strip()
        os.unlink(path)
        return digest

    def cleanup(self):
        """Remove the private store (vfs: plain directories, no mounts)."""
        shutil.rmtree(self.workdir, ignore_errors=True)


# --- Token server ----------------------------------------------------------------------------------


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def libtrust_key_id(public_key):
    """The ``kid`` distribution's token auth expects: libtrust's KeyID of the certificate's key.

    base32 of the first 240 bits of sha256(DER SubjectPublicKeyInfo), in 12 groups of 4 joined by ':'.
    """
    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode("ascii").rstrip("=")
    return ":".join(encoded[i:i + 4] for i in range(0, len(encoded), 4))


class TokenServer:
    """A Docker-Hub-like token endpoint: ``GET /token?service=...&scope=repository:x:pull``.

    Anonymous callers get ``pull`` on repositories not in ``private_repos``; a caller with valid Basic
    credentials (``users``) gets ``pull`` and ``push`` everywhere; wrong credentials get 401 like
    Docker Hub. ``requests`` records ``(account, scopes, granted)`` of every token issued.
    """

    def __init__(self, workdir, service="local-registry", issuer="baremetal-gpu-test-token-server",
                 users=None, private_repos=(), host="127.0.0.1", token_ttl=300):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.workdir = str(workdir)
        self.service = service
        self.issuer = issuer
        self.users = dict(users or {})
        self.private_repos = set(private_repos)
        self.host = host
        self.token_ttl = token_ttl
        self.requests = []
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)])
        now = datetime.now(timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        os.makedirs(self.workdir, exist_ok=True)
        self.cert_path = os.path.join(self.workdir, "token-signer.crt")
        with open(self.cert_path, "wb") as handle:
            handle.write(cert.public_bytes(serialization.Encoding.PEM))
        self.kid = libtrust_key_id(self._key.public_key())
        self._server = None
        self._thread = None
        self.realm = None

    def issue(self, account, access):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        claims = {
            "iss": self.issuer,
            "sub": account or "",
            "aud": self.service,
            "exp": now + self.token_ttl,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = "%s.%s" % (
            _b64url(json.dumps(header, separators=(",", ":")).encode()),
            _b64url(json.dumps(claims, separators=(",", ":")).encode()),
        )
        signature = self._key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(signature)

    def _grant(self, account, scopes):
        access = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) < 3 or parts[0] != "repository":
                continue
            name, actions = ":".join(parts[1:-1]), parts[-1].split(",")
            if account:
                allowed = {"pull", "push", "*"}
            elif name in self.private_repos:
                allowed = set()
            else:
                allowed = {"pull"}
            access.append({"type": "repository", "name": name, "actions": [a for a in actions if a in allowed]})
        return access

    def start(self):
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _send(self, status, doc, extra=None):
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                if url.path != "/token":
                    self._send(404, {"details": "not found"})
                    return
                query = urllib.parse.parse_qs(url.query)
                if query.get("service", [""])[0] != server_self.service:
                    self._send(400, {"details": "unknown service %r" % query.get("service", [""])[0]})
                    return
                account = None
                auth = self.headers.get("Authorization", "")
                if auth.lower().startswith("basic "):
                    try:
                        user, _colon, password = base64.b64decode(auth[6:]).decode().partition(":")
                    except (ValueError, UnicodeDecodeError):
                        user, password = "", None
                    if server_self.users.get(user) != password:
                        self._send(401, {"details": "incorrect username or password"},
                                   {"WWW-Authenticate": 'Basic realm="%s"' % server_self.realm})
                        return
                    account = user
                scopes = []
                for item in query.get("scope", []):
                    scopes.extend(item.split(" "))
                access = server_self._grant(account, scopes)
                token = server_self.issue(account, access)
                server_self.requests.append((account, scopes, access))
                self._send(200, {
                    "token": token,
                    "access_token": token,
                    "expires_in": server_self.token_ttl,
                    "issued_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                })

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self.realm = "http://%s:%d/token" % (self.host, self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="token-server", daemon=True)
        self._thread.start()
        return self.realm

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


# --- The registry ----------------------------------------------------------------------------------


def _free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class LocalRegistry:
    """``docker-registry`` on a free loopback port with storage under ``tmpdir``.

    ``auth="token"`` adds the token server (``token_server``, user ``username``/``password``, and
    ``private_repos`` that anonymous callers cannot pull). ``address`` is ``127.0.0.1:PORT``,
    ``url`` ``http://127.0.0.1:PORT``, ``mirrors`` the ``registry_mirrors`` mapping that sends
    ``docker.io`` here.
    """

    def __init__(self, tmpdir, auth=None, builder=None, username="tester", password="s3cret-pass",
                 private_repos=("private/vllm-openai",), host="127.0.0.1"):
        if auth not in (None, "token"):
            raise ValueError("auth must be None or 'token', got %r" % (auth,))
        self.tmpdir = os.path.abspath(str(tmpdir))
        self.auth = auth
        self.host = host
        self.username = username if auth else None
        self.password = password if auth else None
        self.private_repos = tuple(private_repos) if auth else ()
        self._own_builder = builder is None
        self.builder = builder or ImageBuilder(os.path.join(self.tmpdir, "build"))
        self.token_server = None
        self.address = None
        self.url = None
        self.pushed = {}
        self.vllm_images = {}
        self._proc = None
        self._log = None

    # lifecycle

    def start(self, timeout=15.0):
        missing = missing_registry_tools()
        if missing:
            raise RegistryToolsMissing("not on PATH: %s" % ", ".join(missing))
        os.makedirs(self.tmpdir, exist_ok=True)
        if self.auth == "token" and self.token_server is None:
            self.token_server = TokenServer(
                os.path.join(self.tmpdir, "token"),
                users={self.username: self.password},
                private_repos=self.private_repos,
                host=self.host,
            )
            self.token_server.start()
        last_error = None
        for _attempt in range(3):
            port = _free_port(self.host)
            try:
                self._launch(port, timeout)
                return self.address
            except RuntimeError as exc:  # port taken between probe and bind: try another
                last_error = exc
        self.stop()
        raise last_error

    def _config(self, port):
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": os.path.join(self.tmpdir, "data")},
                        "delete": {"enabled": True}},
            "http": {"addr": "%s:%d" % (self.host, port), "secret": uuid.uuid4().hex},
        }
        if self.token_server is not None:
            config["auth"] = {"token": {
                "realm": self.token_server.realm,
                "service": self.token_server.service,
                "issuer": self.token_server.issuer,
                "rootcertbundle": self.token_server.cert_path,
            }}
        return config

    def _launch(self, port, timeout):
        config_path = os.path.join(self.tmpdir, "config.yml")
        with open(config_path, "w", encoding="utf-8") as handle:
            json.dump(self._config(port), handle)  # JSON is YAML
        log_path = os.path.join(self.tmpdir, "registry.log")
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            ["docker-registry", "serve", config_path],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        url = "http://%s:%d" % (self.host, port)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._reap()
                raise RuntimeError("docker-registry exited (%s): %s" % (self._proc.returncode, self.logs()[-2000:]))
            try:
                with urllib.request.urlopen(url + "/v2/", timeout=1) as resp:
                    status = resp.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except (urllib.error.URLError, OSError):
                status = None
            if status in (200, 401):
                self.address = "%s:%d" % (self.host, port)
                self.url = url
                return
            time.sleep(0.02)
        self._terminate()
        raise RuntimeError("docker-registry did not answer on %s within %ss: %s" % (url, timeout, self.logs()[-2000:]))

    def _terminate(self):
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        self._reap()

    def _reap(self):
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self):
        """Stop the registry (and token server); the data stays until the temp dir goes."""
        self._terminate()
        self._proc = None
        if self.token_server is not None:
            self.token_server.stop()
            self.token_server = None
        self.address = None
        self.url = None

    def cleanup(self):
        self.stop()
        if self._own_builder:
            self.builder.cleanup()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.cleanup()

    @property
    def running(self):
        return self._proc is not None and self._proc.poll() is None

    @property
    def mirrors(self):
        return {"docker.io": self.url}

    @property
    def creds(self):
        return "%s:%s" % (self.username, self.password) if self.username else None

    def logs(self):
        try:
            with open(os.path.join(self.tmpdir, "registry.log"), encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError:
            return ""

    # pushing

    def push_image(self, repo, tag, env=None, labels=None, arch="amd64", os_name="linux", variant=None,
                   entrypoint=None, cmd=None, fmt="oci"):
        """Push a single-platform image; ``fmt`` ``oci`` or ``v2s2`` (Docker v2). Returns its digest."""
        image = self.builder.build(env, labels, arch, os_name, variant, entrypoint, cmd)
        digest = self.builder.push(image, "%s/%s:%s" % (self.address, repo, tag), fmt, self.creds)
        self.pushed["%s:%s" % (repo, tag)] = digest
        return digest

    def push_index(self, repo, tag, images, fmt="oci", attestation=False):
        """Push a multi-platform image: ``images`` is a list of dicts with ``arch`` (and ``env``,
        ``labels``, ``variant``, ``os``, ``entrypoint``, ``cmd``). ``fmt`` ``oci`` gives an OCI index,
        ``v2s2`` a Docker manifest list. ``attestation`` adds a BuildKit-style ``unknown/unknown``
        entry. Returns the index digest."""
        name = self.builder.build_list(images, attestation)
        digest = self.builder.push_list(name, "%s/%s:%s" % (self.address, repo, tag), fmt, self.creds)
        if attestation and fmt == "oci":
            # Point the attestation at the image it describes, as BuildKit does; digests change on
            # push, so the index is completed here and put back under the tag.
            _ctype, index = self.get_manifest(repo, digest)
            for entry in index["manifests"]:
                if entry.get("annotations", {}).get("vnd.docker.reference.type") == "attestation-manifest":
                    entry["annotations"]["vnd.docker.reference.digest"] = index["manifests"][0]["digest"]
            digest = self.put_manifest(repo, tag, index)
        self.pushed["%s:%s" % (repo, tag)] = digest
        return digest

    def _bearer(self, repo, actions):
        access = [{"type": "repository", "name": repo, "actions": list(actions)}]
        return "Bearer " + self.token_server.issue(self.username, access)

    def put_manifest(self, repo, reference, manifest):
        """PUT a manifest (dict with ``mediaType``) through the distribution API; returns its digest."""
        body = json.dumps(manifest, separators=(",", ":")).encode()
        req = urllib.request.Request(
            "%s/v2/%s/manifests/%s" % (self.url, repo, reference), data=body, method="PUT",
            headers={"Content-Type": manifest["mediaType"]},
        )
        if self.token_server is not None:
            req.add_header("Authorization", self._bearer(repo, ("pull", "push")))
        with urllib.request.urlopen(req, timeout=10) as resp:
            digest = resp.headers["Docker-Content-Digest"]
        if digest != "sha256:" + hashlib.sha256(body).hexdigest():
            raise RuntimeError("registry stored %s under another digest (%s)" % (repo, digest))
        return digest

    def delete_blob(self, repo, digest):
        """DELETE a blob (storage deletion is enabled), e.g. to prove a client did not need it."""
        req = urllib.request.Request("%s/v2/%s/blobs/%s" % (self.url, repo, digest), method="DELETE")
        if self.token_server is not None:
            req.add_header("Authorization", self._bearer(repo, ("*",)))
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status

    def push_vllm_images(self, tags=None):
        """Push the VLLM_IMAGES (all, or ``tags``), in parallel; returns {tag: spec + "digest", "reference"}."""
        tags = list(tags or VLLM_IMAGES)
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            digests = list(pool.map(self._push_vllm_image, tags))
        for tag, digest in zip(tags, digests):
            spec = VLLM_IMAGES[tag]
            self.vllm_images[tag] = dict(spec, digest=digest, reference="%s:%s" % (spec["repository"], tag))
        return self.vllm_images

    def _push_vllm_image(self, tag):
        spec = VLLM_IMAGES[tag]
        layout = spec["layout"]
        if layout in ("docker-v2", "oci"):
            plat = spec["platforms"][0]
            return self.push_image(
                spec["repository"], tag, plat["env"], plat["labels"], plat["arch"],
                entrypoint=plat["entrypoint"], fmt="v2s2" if layout == "docker-v2" else "oci",
            )
        return self.push_index(
            spec["repository"], tag, spec["platforms"],
            fmt="v2s2" if layout.startswith("docker-list") else "oci",
            attestation=layout.endswith("+attestation"),
        )

    def get_manifest(self, repo, reference, accept=None):
        """(content type, parsed manifest) straight from the registry, for assertions in tests."""
        req = urllib.request.Request(
            "%s/v2/%s/manifests/%s" % (self.url, repo, reference),
            headers={"Accept": accept or ", ".join([
                "application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.docker.distribution.manifest.v2+json",
            ])},
        )
        if self.token_server is not None:
            req.add_header("Authorization", self._bearer(repo, ("pull",)))
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.headers.get("Content-Type"), json.loads(resp.read())
