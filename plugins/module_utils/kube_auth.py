# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the collection's modules reach a cluster: one argument spec, the K8S_AUTH_* environment, one Configuration.

The options (``AUTH_ARG_SPEC``, documented in ``doc_fragments/kube_auth.py``) and the environment
variables are kubernetes.core's, with its precedence, so a user's ``K8S_AUTH_*`` settings work unchanged:

1. a module option wins; else its ``K8S_AUTH_<OPTION>`` variable (or the alias kubernetes.core also
   reads: ``K8S_AUTH_VERIFY_SSL``, ``K8S_AUTH_SSL_CA_CERT``, ``K8S_AUTH_CERT_FILE``, ``K8S_AUTH_KEY_FILE``);
2. ``host`` with ``api_key``, or ``host`` with ``client_cert`` and ``client_key``, is enough: no kubeconfig
   is read;
3. else a ``kubeconfig`` or ``context`` given loads that kubeconfig (``KUBECONFIG`` / ``~/.kube/config``
   when only a context is given);
4. else the in-cluster service account, and failing that the default kubeconfig;
5. every option given (or set in the environment) then overrides what the kubeconfig said.

Not taken from kubernetes.core: ``username``/``password`` (basic authentication left Kubernetes in 1.19),
``persist_config``, ``proxy_headers``, impersonation.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

# Options shared by every module that talks to a cluster. No defaults here: an unset option may come
# from the environment (validate_certs is true unless something says otherwise).
AUTH_ARG_SPEC = dict(
    kubeconfig=dict(type="path"),
    context=dict(type="str"),
    host=dict(type="str"),
    api_key=dict(type="str", no_log=True),
    validate_certs=dict(type="bool", aliases=["verify_ssl"]),
    ca_cert=dict(type="path", aliases=["ssl_ca_cert"]),
    client_cert=dict(type="path", aliases=["cert_file"]),
    client_key=dict(type="path", aliases=["key_file"]),
    proxy=dict(type="str"),
    no_proxy=dict(type="str"),
)

# option -> (the environment variables kubernetes.core reads for it, in its order; the Configuration attribute)
_OPTIONS = (
    ("kubeconfig", ("K8S_AUTH_KUBECONFIG",), None),
    ("context", ("K8S_AUTH_CONTEXT",), None),
    ("host", ("K8S_AUTH_HOST",), "host"),
    ("api_key", ("K8S_AUTH_API_KEY",), "api_key"),
    ("validate_certs", ("K8S_AUTH_VALIDATE_CERTS", "K8S_AUTH_VERIFY_SSL"), "verify_ssl"),
    ("ca_cert", ("K8S_AUTH_CA_CERT", "K8S_AUTH_SSL_CA_CERT"), "ssl_ca_cert"),
    ("client_cert", ("K8S_AUTH_CLIENT_CERT", "K8S_AUTH_CERT_FILE"), "cert_file"),
    ("client_key", ("K8S_AUTH_CLIENT_KEY", "K8S_AUTH_KEY_FILE"), "key_file"),
    ("proxy", ("K8S_AUTH_PROXY",), "proxy"),
    ("no_proxy", ("K8S_AUTH_NO_PROXY",), "no_proxy"),
)


class KubeConfigError(Exception):
    """No usable cluster configuration; the message says what was tried."""


def resolve(params, environ):
    """The auth settings in force: each module option, else its environment variable; unset ones left out."""
    auth = {}
    for option, variables, _attribute in _OPTIONS:
        value = (params or {}).get(option)
        if value is None:
            value = next((environ[v] for v in variables if environ.get(v) not in (None, "")), None)
            if value is not None and AUTH_ARG_SPEC[option].get("type") == "bool":
                value = value.strip().lower() not in ("0", "false", "no")
        if value is not None:
            auth[option] = value
    if auth.get("host"):
        auth["host"] = auth["host"].rstrip("/")
    return auth


def default_kubeconfig(environ):
    """What the kubernetes library reads when no kubeconfig is named: $KUBECONFIG, else ~/.kube/config."""
    return environ.get("KUBECONFIG") or os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".kube", "config")


def _enough_without_kubeconfig(auth):
    return bool(auth.get("host")) and (bool(auth.get("api_key")) or
                                       bool(auth.get("client_cert") and auth.get("client_key")))


def configuration(params, environ, kubernetes_config, configuration_class):
    """A ``kubernetes.client.Configuration`` for ``params`` and ``environ`` (see the module docstring).

    ``kubernetes_config`` is the ``kubernetes.config`` package and ``configuration_class``
    ``kubernetes.client.Configuration``; the client is never configured globally.
    """
    auth = resolve(params, environ)
    config = configuration_class()
    where = "host %s" % auth.get("host")
    try:
        if _enough_without_kubeconfig(auth):
            pass
        elif auth.get("kubeconfig") or auth.get("context"):
            path = auth.get("kubeconfig") or default_kubeconfig(environ)
            where = "kubeconfig %s" % path
            kubernetes_config.load_kube_config(config_file=path, context=auth.get("context"),
                                               client_configuration=config)
        else:
            try:
                where = "the in-cluster service account"
                kubernetes_config.load_incluster_config(client_configuration=config)
            except kubernetes_config.ConfigException:
                path = default_kubeconfig(environ)
                where = "kubeconfig %s (no in-cluster service account)" % path
                kubernetes_config.load_kube_config(config_file=path, client_configuration=config)
    except Exception as exc:  # the loaders raise ConfigException, IOError and YAML errors alike
        raise KubeConfigError("cannot load the cluster configuration from %s: %s" % (where, exc))
    for option, _variables, attribute in _OPTIONS:
        if attribute is None or option not in auth:
            continue
        value = auth[option]
        if option == "api_key":
            value = {"authorization": "Bearer " + value}
        setattr(config, attribute, value)
    return config
