# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small OCI distribution client: read an image's config (env, labels) from a registry.

Standard library only (urllib), so it runs inside an Ansible module on any target host.

Covers what the compatibility checks need from Docker Hub and private registries:

* image references as Docker writes them (``vllm/vllm-openai:v0.15.1``, ``docker.io/library/x``,
  ``registry:5000/a/b@sha256:...``), Docker Hub's ``registry-1.docker.io`` endpoint, ``latest`` as
  the default tag;
* manifests of all four media types (OCI index, Docker manifest list, OCI manifest, Docker v2
  manifest); from an index the requested platform (``linux/amd64`` by default) is picked, skipping
  attestation entries (``unknown/unknown``) that BuildKit adds;
* the registry token flow (401 with ``WWW-Authenticate: Bearer realm=...,service=...,scope=...``,
  anonymous or with credentials) and Basic auth;
* every manifest and blob is checked against its sha256 digest;
* an on-disk JSON cache with a TTL (references pinned by digest never expire: their content cannot
  change);
* ``registry_mirrors`` to send a registry's traffic elsewhere (tests point ``docker.io`` at a
  local registry).

The NVIDIA helpers at the end read ``CUDA_VERSION`` and ``NVIDIA_REQUIRE_CUDA`` as the NVIDIA
container runtime (libnvidia-container) reads them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import collections
import hashlib
import json
import os
import re
import socket
import ssl
import tempfile
import time

from urllib import error as urlerror
from urllib import parse as urlparse
from urllib import request as urlrequest

from ansible_collections.baremetal.gpu.plugins.module_utils.versions import satisfies, version_tuple

DEFAULT_REGISTRY = "docker.io"
DOCKER_HUB_ENDPOINT = "registry-1.docker.io"
DEFAULT_TAG = "latest"
DEFAULT_PLATFORM = "linux/amd64"

MEDIA_TYPE_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_TYPE_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_MEDIA_TYPES = (MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_DOCKER_LIST)
IMAGE_MEDIA_TYPES = (MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST)
MANIFEST_ACCEPT = ", ".join(INDEX_MEDIA_TYPES + IMAGE_MEDIA_TYPES)

CACHE_FORMAT = 1
# Bodies larger than this are refused: manifests and image configs are a few KiB.
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
USER_AGENT = "baremetal.gpu-oci/1"

# Grammar from distribution/reference (reference/regexp.go).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_COMPONENT_RE = re.compile(r"^%s$" % _COMPONENT)
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(
    r"^(?:%s(?:\.%s)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$" % (_DOMAIN_COMPONENT, _DOMAIN_COMPONENT)
)
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_SHA256_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


class RegistryError(Exception):
    """A registry could not be read; the message says what, where and why."""

    def __init__(self, message, url=None, status=None, code=None):
        super(RegistryError, self).__init__(message)
        self.url = url
        self.status = status
        self.code = code


class ImageReference(collections.namedtuple("ImageReference", "registry repository tag digest")):
    """A parsed image reference: registry ``docker.io``, repository ``library/ubuntu``, tag, digest."""

    __slots__ = ()

    @property
    def name(self):
        """``registry/repository``, the reference without tag or digest."""
        return "%s/%s" % (self.registry, self.repository)

    @property
    def manifest_reference(self):
        """What to ask the registry's manifest endpoint for: the digest if pinned, else the tag."""
        return self.digest or self.tag

    def __str__(self):
        text = self.name
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text += "@" + self.digest
        return text


def parse_image_reference(ref):
    """Parse an image reference the way Docker does; raise ValueError naming the problem.

    ``vllm/vllm-openai:v0.15.1`` -> ImageReference("docker.io", "vllm/vllm-openai", "v0.15.1", None);
    ``ubuntu`` -> ("docker.io", "library/ubuntu", "latest", None);
    ``registry:5000/a/b@sha256:...`` -> ("registry:5000", "a/b", None, "sha256:...").
    """
    if not isinstance(ref, str):
        raise ValueError("image reference must be a string, got %s" % type(ref).__name__)
    text = ref.strip()
    if not text:
        raise ValueError("image reference is empty")
    if any(ch.isspace() for ch in text):
        raise ValueError("image reference %r contains whitespace" % ref)
    if "://" in text:
        raise ValueError("image reference %r must not carry a URL scheme" % ref)

    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise ValueError("image reference %r has a malformed digest %r" % (ref, digest))
        if digest.startswith("sha256:") and not _SHA256_RE.match(digest):
            raise ValueError(
                "image reference %r: a sha256 digest is 64 lowercase hex characters, got %r" % (ref, digest)
            )

    tag = None
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        text, tag = text[:colon], text[colon + 1:]
        if not _TAG_RE.match(tag):
            raise ValueError(
                "image reference %r has an invalid tag %r (letters, digits, '_', '.', '-'; at most 128)"
                % (ref, tag)
            )

    registry = DEFAULT_REGISTRY
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, text = first, rest
        if not _DOMAIN_RE.match(registry):
            raise ValueError("image reference %r has an invalid registry %r" % (ref, registry))
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DEFAULT_REGISTRY

    if not text:
        raise ValueError("image reference %r has no repository name" % ref)
    for component in text.split("/"):
        if not component:
            raise ValueError("image reference %r has an empty path component" % ref)
        if component.lower() != component and _COMPONENT_RE.match(component.lower()):
            raise ValueError("image reference %r: repository name must be lowercase" % ref)
        if not _COMPONENT_RE.match(component):
            raise ValueError("image reference %r has an invalid repository component %r" % (ref, component))
    if registry == DEFAULT_REGISTRY and "/" not in text:
        text = "library/" + text
    if len(registry) + 1 + len(text) > 255:
        raise ValueError("image reference %r: name is longer than 255 characters" % ref)
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return ImageReference(registry, text, tag, digest)


def _host_of(registry):
    host = registry
    if host.startswith("["):
        return host[: host.index("]") + 1]
    return host.rsplit(":", 1)[0] if ":" in host else host


def registry_base_url(registry, registry_mirrors=None, insecure=False):
    """The base URL the distribution API of ``registry`` is spoken at.

    A mirror (``{"docker.io": "http://127.0.0.1:5000"}``) wins; a mirror without scheme gets https
    (http when ``insecure``). Docker Hub is served at registry-1.docker.io. Loopback registries are
    spoken to over plain http (Docker treats 127.0.0.0/8 as insecure too); others over https, or
    plain http when ``insecure``.
    """
    mirrors = registry_mirrors or {}
    mirror = mirrors.get(registry)
    if mirror is None and registry == DEFAULT_REGISTRY:
        mirror = mirrors.get(DOCKER_HUB_ENDPOINT) or mirrors.get("index.docker.io")
    if mirror:
        mirror = mirror.rstrip("/")
        if "://" not in mirror:
            mirror = ("http://" if insecure else "https://") + mirror
        return mirror
    if registry == DEFAULT_REGISTRY:
        return "https://" + DOCKER_HUB_ENDPOINT
    if insecure or _host_of(registry) in _LOOPBACK_HOSTS:
        return "http://" + registry
    return "https://" + registry


def parse_www_authenticate(value):
    """Split ``Bearer realm="...",service="...",scope="..."`` into ("bearer", {params})."""
    if not value:
        return None, {}
    scheme, _sep, rest = value.strip().partition(" ")
    params = {}
    for match in re.finditer(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))', rest):
        params[match.group(1).lower()] = (
            match.group(2).replace('\\"', '"') if match.group(2) is not None else match.group(3)
        )
    return scheme.lower(), params


def _registry_error_detail(body):
    """The first ``errors[].code: message`` from a registry's JSON error body, or ''."""
    try:
        doc = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, AttributeError):
        return ""
    if not isinstance(doc, dict):
        return ""
    errors = doc.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return "%s: %s" % (errors[0].get("code", ""), errors[0].get("message", ""))
    for key in ("details", "detail", "message", "error"):
        if isinstance(doc.get(key), str):
            return doc[key]
    return ""


class _NoRedirectAuthHandler(urlrequest.HTTPRedirectHandler):
    """Follow redirects (blob downloads go to a CDN) without the registry's Authorization header.

    urllib keeps headers added with ``add_unredirected_header`` off the redirected request; this
    handler only refuses redirects away from http(s).
    """

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urlparse.urlsplit(newurl).scheme not in ("http", "https"):
            return None
        return urlrequest.HTTPRedirectHandler.redirect_request(self, req, fp, code, msg, headers, newurl)


class _Client:
    """One registry conversation: base URL, TLS settings, credentials and the current token."""

    def __init__(self, base_url, repository, timeout, insecure, username=None, password=None):
        self.base_url = base_url
        self.repository = repository
        self.timeout = timeout
        self.username = username
        self.password = password
        self.authorization = None
        context = ssl.create_default_context()
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self.opener = urlrequest.build_opener(
            urlrequest.HTTPSHandler(context=context),
            _NoRedirectAuthHandler(),
        )

    def _open(self, url, headers, authorization=None):
        """(status, headers, body) for a GET; HTTP error statuses are returned, not raised."""
        req = urlrequest.Request(url, headers=dict(headers, **{"User-Agent": USER_AGENT}))
        if authorization:
            req.add_unredirected_header("Authorization", authorization)
        try:
            resp = self.opener.open(req, timeout=self.timeout)
        except urlerror.HTTPError as exc:
            try:
                body = exc.read(MAX_DOCUMENT_BYTES)
            except (OSError, socket.timeout):
                body = b""
            return exc.code, exc.headers, body
        except (socket.timeout, TimeoutError) as exc:
            raise RegistryError("timed out after %ss reading %s" % (self.timeout, url), url=url) from exc
        except urlerror.URLError as exc:
            reason = exc.reason
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise RegistryError("timed out after %ss reading %s" % (self.timeout, url), url=url) from exc
            if isinstance(reason, ssl.SSLError):
                raise RegistryError(
                    "TLS error talking to %s: %s (set insecure for a registry with a self-signed "
                    "certificate)" % (url, reason),
                    url=url,
                ) from exc
            raise RegistryError("cannot reach %s: %s" % (url, reason), url=url) from exc
        except (OSError, ValueError) as exc:
            raise RegistryError("cannot reach %s: %s" % (url, exc), url=url) from exc
        with resp:
            try:
                body = resp.read(MAX_DOCUMENT_BYTES + 1)
            except (socket.timeout, TimeoutError) as exc:
                raise RegistryError("timed out after %ss reading %s" % (self.timeout, url), url=url) from exc
            if len(body) > MAX_DOCUMENT_BYTES:
                raise RegistryError("%s answered more than %d bytes" % (url, MAX_DOCUMENT_BYTES), url=url)
            return resp.status, resp.headers, body

    def _basic(self):
        raw = ("%s:%s" % (self.username, self.password or "")).encode("utf-8")
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def _fetch_token(self, params, url):
        realm = params.get("realm")
        if not realm:
            raise RegistryError("%s asked for a bearer token without naming a realm" % url, url=url, status=401)
        if urlparse.urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError("token realm %r is not an http(s) URL" % realm, url=url, status=401)
        query = []
        if params.get("service"):
            query.append(("service", params["service"]))
        scope = params.get("scope") or "repository:%s:pull" % self.repository
        for item in scope.split(" "):
            query.append(("scope", item))
        if self.username:
            query.append(("account", self.username))
        token_url = realm + ("&" if "?" in realm else "?") + urlparse.urlencode(query)
        status, _headers, body = self._open(
            token_url, {"Accept": "application/json"}, self._basic() if self.username else None
        )
        if status != 200:
            detail = _registry_error_detail(body)
            who = "user %r" % self.username if self.username else "anonymous access"
            raise RegistryError(
                "token server %s refused %s (HTTP %s)%s" % (realm, who, status, ": " + detail if detail else ""),
                url=realm,
                status=status,
            )
        try:
            doc = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise RegistryError("token server %s answered something that is not JSON" % realm, url=realm) from exc
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not token or not isinstance(token, str):
            raise RegistryError("token server %s answered without a token" % realm, url=realm)
        return "Bearer " + token

    def get(self, path, accept):
        """GET ``path`` on the registry, answering one auth challenge; return (headers, body)."""
        url = self.base_url + path
        headers = {"Accept": accept}
        status, resp_headers, body = self._open(url, headers, self.authorization)
        if status == 401:
            scheme, params = parse_www_authenticate(resp_headers.get("WWW-Authenticate", ""))
            if scheme == "bearer":
                self.authorization = self._fetch_token(params, url)
            elif scheme == "basic" and self.username:
                self.authorization = self._basic()
            else:
                detail = _registry_error_detail(body)
                raise RegistryError(
                    "%s requires authentication (%s)%s"
                    % (url, resp_headers.get("WWW-Authenticate") or "no challenge", ": " + detail if detail else ""),
                    url=url,
                    status=401,
                )
            status, resp_headers, body = self._open(url, headers, self.authorization)
        if status == 200:
            return resp_headers, body
        detail = _registry_error_detail(body)
        if status == 401 and self.username:
            msg = "%s refused the credentials of user %r" % (url, self.username)
        elif status == 401:
            msg = "%s refused anonymous access: give username and password" % url
        elif status == 404:
            msg = "%s not found" % url
        elif status == 429:
            msg = "%s: rate limited (HTTP 429); retry later or log in" % url
        else:
            msg = "%s answered HTTP %s" % (url, status)
        raise RegistryError(
            msg + (" (%s)" % detail if detail else ""), url=url, status=status, code=detail.split(":")[0] or None
        )


def _verify_digest(body, expected, what):
    algorithm, _sep, value = expected.partition(":")
    if algorithm not in hashlib.algorithms_available:
        return
    actual = hashlib.new(algorithm, body).hexdigest()
    if actual != value:
        raise RegistryError("%s does not match its digest %s (got %s:%s)" % (what, expected, algorithm, actual))


def _json_document(body, what):
    try:
        doc = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RegistryError("%s is not valid JSON: %s" % (what, exc)) from exc
    if not isinstance(doc, dict):
        raise RegistryError("%s is not a JSON object" % what)
    return doc


def parse_platform(platform):
    """``linux/arm64/v8`` -> ("linux", "arm64", "v8"); ValueError when malformed."""
    parts = (platform or "").split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError("platform must look like os/arch or os/arch/variant, got %r" % platform)
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def select_platform_manifest(index, platform=DEFAULT_PLATFORM):
    """The descriptor in an OCI index / Docker manifest list matching ``platform``.

    Entries without a platform, or with ``unknown/unknown`` (BuildKit attestation manifests), are
    never picked. A variant is compared only when the request names one (``linux/arm64/v8`` also
    matches an arm64 entry without variant); otherwise the first os/arch match wins.
    Raises RegistryError listing the platforms on offer.
    """
    want_os, want_arch, want_variant = parse_platform(platform)
    offered = []
    for entry in index.get("manifests") or []:
        plat = entry.get("platform") or {}
        entry_os, entry_arch, variant = plat.get("os"), plat.get("architecture"), plat.get("variant")
        if not entry_os or not entry_arch or "unknown" in (entry_os, entry_arch):
            continue
        offered.append("/".join(p for p in (entry_os, entry_arch, variant) if p))
        if entry_os != want_os or entry_arch != want_arch:
            continue
        if want_variant is None or variant == want_variant:
            return entry
        if variant is None and entry_arch == "arm64" and want_variant == "v8":
            return entry
    raise RegistryError(
        "no image for platform %s in the index (it offers: %s)" % (platform, ", ".join(offered) or "nothing")
    )


def _cache_path(cache_dir, ref, platform):
    key = hashlib.sha256(("%s|%s" % (ref, platform)).encode("utf-8")).hexdigest()
    return os.path.join(cache_dir, "oci-config-%s.json" % key)


def _cache_read(path, ref, platform):
    try:
        with open(path, "r", encoding="utf-8") as handle:
            doc = json.load(handle)
    except (OSError, ValueError):
        return None
    if (
        not isinstance(doc, dict)
        or doc.get("format") != CACHE_FORMAT
        or doc.get("reference") != ref
        or doc.get("platform") != platform
        or not isinstance(doc.get("result"), dict)
        or not isinstance(doc.get("fetched_at"), (int, float))
    ):
        return None
    return doc


def _cache_write(path, ref, platform, result):
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=".oci-", suffix=".tmp", dir=directory)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(
                {
                    "format": CACHE_FORMAT,
                    "reference": ref,
                    "platform": platform,
                    "digest": result["digest"],
                    "fetched_at": time.time(),
                    "result": result,
                },
                out,
                sort_keys=True,
            )
        os.replace(tmp, path)
    except OSError:
        # A cache that cannot be written only costs a network round trip next time.
        pass


def _env_dict(env_list):
    env = {}
    for item in env_list or []:
        if isinstance(item, str):
            key, _sep, value = item.partition("=")
            env[key] = value
    return env


def _fresh_cache_entry(cache_file, canonical, platform, pinned, cache_ttl):
    """(result to return as is, stale entry to revalidate): a cached answer that is still good, else the
    entry whose digest a manifest request can confirm."""
    entry = _cache_read(cache_file, canonical, platform) if cache_file else None
    if entry is None:
        return None, None
    age = time.time() - entry["fetched_at"]
    if pinned or (0 <= age < cache_ttl):
        return dict(entry["result"], cached=True), None
    return None, entry


def _media_type(doc, headers):
    media_type = doc.get("mediaType") or (headers.get("Content-Type") or "").split(";")[0].strip()
    if not media_type and "manifests" in doc:
        media_type = MEDIA_TYPE_OCI_INDEX
    return media_type


def _platform_manifest(client, manifests_path, canonical, doc, media_type, top_digest, platform):
    """(image manifest, its digest, the index media type or None, the manifest's media type): follows an
    index to the platform's manifest; a plain manifest is its own."""
    if media_type not in INDEX_MEDIA_TYPES:
        return doc, top_digest, None, media_type
    entry = select_platform_manifest(doc, platform)
    manifest_digest = entry.get("digest")
    if not manifest_digest or not _DIGEST_RE.match(manifest_digest):
        raise RegistryError("index of %s has an entry without a valid digest" % canonical)
    _headers, body = client.get(manifests_path + manifest_digest, ", ".join(IMAGE_MEDIA_TYPES))
    _verify_digest(body, manifest_digest, "manifest %s of %s" % (manifest_digest, canonical))
    manifest = _json_document(body, "manifest %s of %s" % (manifest_digest, canonical))
    return (manifest, manifest_digest, media_type,
            manifest.get("mediaType") or entry.get("mediaType") or MEDIA_TYPE_OCI_MANIFEST)


def _config_blob(client, repository, canonical, manifest, media_type):
    """(config digest, config document) named by an image manifest, checked against its digest."""
    if media_type not in IMAGE_MEDIA_TYPES:
        raise RegistryError(
            "%s resolves to an unsupported manifest type %r (schema 1 images are not supported)"
            % (canonical, media_type or manifest.get("schemaVersion"))
        )
    config_digest = (manifest.get("config") or {}).get("digest")
    if not config_digest or not _DIGEST_RE.match(config_digest):
        raise RegistryError("manifest of %s names no config blob" % canonical)
    _headers, body = client.get("/v2/%s/blobs/%s" % (repository, config_digest), "*/*")
    _verify_digest(body, config_digest, "config of %s" % canonical)
    return config_digest, _json_document(body, "config of %s" % canonical)


def _config_result(canonical, top_digest, manifest_digest, config_digest, media_type, config):
    runtime = config.get("config") or {}
    return {
        "reference": canonical,
        "digest": top_digest,
        "manifest_digest": manifest_digest,
        "config_digest": config_digest,
        "media_type": media_type,
        "env": _env_dict(runtime.get("Env")),
        "labels": dict(runtime.get("Labels") or {}),
        "entrypoint": list(runtime.get("Entrypoint") or []),
        "cmd": list(runtime.get("Cmd") or []),
        "architecture": config.get("architecture"),
        "os": config.get("os"),
        "variant": config.get("variant"),
        "created": config.get("created"),
    }


def fetch_image_config(
    ref,
    timeout=10,
    insecure=False,
    cache_dir=None,
    cache_ttl=86400,
    platform=DEFAULT_PLATFORM,
    username=None,
    password=None,
    registry_mirrors=None,
):
    """Read an image's config from its registry.

    Returns ``{"reference", "digest", "manifest_digest", "config_digest", "media_type", "env",
    "labels", "architecture", "os", "variant", "entrypoint", "cmd", "created", "cached"}``:
    ``digest`` is what the reference resolves to (the index digest for a multi-platform image, what
    ``docker pull`` prints), ``manifest_digest`` the chosen platform's manifest, ``cached`` true when
    the answer came from ``cache_dir`` without any network traffic. Raises ValueError for a malformed
    reference or platform and RegistryError for everything that goes wrong on the way.
    """
    parsed = ref if isinstance(ref, ImageReference) else parse_image_reference(ref)
    parse_platform(platform)
    canonical = str(parsed)
    cache_file = _cache_path(cache_dir, canonical, platform) if cache_dir else None
    fresh, stale = _fresh_cache_entry(cache_file, canonical, platform, bool(parsed.digest), cache_ttl)
    if fresh is not None:
        return fresh

    client = _Client(registry_base_url(parsed.registry, registry_mirrors, insecure), parsed.repository,
                     timeout, insecure, username, password)
    manifests_path = "/v2/%s/manifests/" % parsed.repository
    headers, body = client.get(manifests_path + parsed.manifest_reference, MANIFEST_ACCEPT)
    top_digest = parsed.digest or headers.get("Docker-Content-Digest") or (
        "sha256:" + hashlib.sha256(body).hexdigest()
    )
    _verify_digest(body, top_digest, "manifest of %s" % canonical)
    doc = _json_document(body, "manifest of %s" % canonical)

    if stale is not None and stale["result"].get("digest") == top_digest:
        # The tag still points where it did: the config is unchanged, skip the blob.
        result = dict(stale["result"])
        _cache_write(cache_file, canonical, platform, result)
        return dict(result, cached=False)

    manifest, manifest_digest, index_media_type, media_type = _platform_manifest(
        client, manifests_path, canonical, doc, _media_type(doc, headers), top_digest, platform)
    config_digest, config = _config_blob(client, parsed.repository, canonical, manifest, media_type)
    result = _config_result(canonical, top_digest, manifest_digest, config_digest,
                            index_media_type or media_type, config)
    if cache_file:
        _cache_write(cache_file, canonical, platform, result)
    return dict(result, cached=False)


# --- NVIDIA container metadata -------------------------------------------------------------------

_CUDA_VERSION_RE = re.compile(r"^\s*\d+\.\d+(?:\.\d+)?\s*$")
_CONSTRAINT_RE = re.compile(r"^([a-z]+)(>=|<=|==|=|>|<)(.+)$")


def parse_cuda_version(value):
    """``"12.9.1"`` or ``"12.9"`` -> (12, 9); None when ``value`` is empty or not a version."""
    if not value or not isinstance(value, str) or not _CUDA_VERSION_RE.match(value):
        return None
    return version_tuple(value)[:2]


def parse_nvidia_require_cuda(value):
    """Parse ``NVIDIA_REQUIRE_CUDA`` as libnvidia-container does.

    The value is a space-separated list of alternatives (OR); each is a comma-separated list of
    conditions (AND) ``key op value`` with keys ``cuda``, ``driver``, ``arch`` and ``brand``. Example
    (nvidia/cuda 12.9.1): ``cuda>=12.9 brand=unknown,driver>=535,driver<536 ...``: the driver must
    support CUDA 12.9, or be of a listed branch on a card of a listed brand (CUDA forward
    compatibility, datacenter cards only).

    Returns ``{"cuda": (12, 9) or None, "alternatives": [[(key, op, value), ...], ...],
    "forward_compat": {brand: [535, 550, ...]}}`` where ``forward_compat`` lists, per brand, the
    driver branches (``driver>=N,driver<N+1``) the image accepts below its CUDA version.
    Raises ValueError for a condition it cannot read.
    """
    result = {"cuda": None, "alternatives": [], "forward_compat": {}}
    for alternative in (value or "").split():
        conditions = []
        for condition in alternative.split(","):
            match = _CONSTRAINT_RE.match(condition.strip().lower())
            if not match:
                raise ValueError("cannot read NVIDIA requirement %r" % condition)
            key, op, operand = match.groups()
            if key not in ("cuda", "driver", "arch", "brand"):
                raise ValueError("unknown NVIDIA requirement key %r in %r" % (key, condition))
            conditions.append((key, "=" if op == "==" else op, operand))
        result["alternatives"].append(conditions)
        if len(conditions) == 1 and conditions[0][0] == "cuda" and conditions[0][1] == ">=":
            result["cuda"] = parse_cuda_version(conditions[0][2])
        brands = [c[2] for c in conditions if c[0] == "brand" and c[1] == "="]
        lower = [c[2] for c in conditions if c[0] == "driver" and c[1] == ">="]
        upper = [c[2] for c in conditions if c[0] == "driver" and c[1] == "<"]
        if len(brands) == 1 and len(lower) == 1 and len(upper) == 1:
            try:
                branch = int(lower[0].split(".")[0])
            except ValueError:
                continue
            branches = result["forward_compat"].setdefault(brands[0], [])
            if branch not in branches:
                branches.append(branch)
    return result


def nvidia_require_satisfied(value, driver_cuda, driver_version=None, brand=None, arch=None):
    """Whether an NVIDIA_REQUIRE_CUDA value accepts a host, as the NVIDIA container runtime decides.

    ``driver_cuda``: the highest CUDA version the driver supports (``"12.8"``, nvidia-smi's "CUDA
    Version"); ``driver_version``: ``"570.195.03"``; ``brand``: ``"geforce"``, ``"tesla"``, ...
    (lowercase, as NVML names it); ``arch``: compute capability ``"8.6"``. A condition on a fact
    that was not given is false. An empty requirement accepts everything.
    """
    parsed = parse_nvidia_require_cuda(value)
    if not parsed["alternatives"]:
        return True
    facts = {"cuda": driver_cuda, "driver": driver_version, "arch": arch}
    for conditions in parsed["alternatives"]:
        ok = True
        for key, op, operand in conditions:
            if key == "brand":
                ok = brand is not None and (brand.lower() == operand) == (op == "=")
            else:
                ok = bool(facts[key]) and satisfies(facts[key], op, operand)
            if not ok:
                break
        if ok:
            return True
    return False


def cuda_version_from_config(config):
    """The CUDA version an image was built on: ``"12.9.1"`` from ``CUDA_VERSION``, else ``"12.9"``
    from ``NVIDIA_REQUIRE_CUDA``'s ``cuda>=X.Y``, else None.

    ``config`` is what fetch_image_config returns (or any mapping with an ``env`` mapping), or a
    plain env mapping.
    """
    if not config:
        return None
    env = config.get("env") if isinstance(config.get("env"), dict) else config
    cuda = (env.get("CUDA_VERSION") or "").strip()
    if parse_cuda_version(cuda):
        return cuda
    require = env.get("NVIDIA_REQUIRE_CUDA")
    if require:
        try:
            parsed = parse_nvidia_require_cuda(require)
        except ValueError:
            return None
        if parsed["cuda"]:
            return "%d.%d" % parsed["cuda"]
    return None
