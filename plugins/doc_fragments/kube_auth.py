# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How modules of this collection reach a cluster: the options of C(module_utils/kube_auth.py)'s AUTH_ARG_SPEC."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path of a kubeconfig file. Defaults to E(K8S_AUTH_KUBECONFIG).
      - With neither this, O(context), O(host) with O(api_key), nor O(host) with O(client_cert) and
        O(client_key), the in-cluster service account is used, else E(KUBECONFIG) or C(~/.kube/config),
        in the order C(kubernetes.core) uses.
    type: path
  context:
    description: Context of the kubeconfig to use. Defaults to E(K8S_AUTH_CONTEXT).
    type: str
  host:
    description: API server URL, overriding the kubeconfig's. Defaults to E(K8S_AUTH_HOST).
    type: str
  api_key:
    description: Bearer token for the API server. Defaults to E(K8S_AUTH_API_KEY).
    type: str
  validate_certs:
    description:
      - Verify the API server's TLS certificate (and that of any other URL the module calls).
      - Defaults to E(K8S_AUTH_VALIDATE_CERTS) or E(K8S_AUTH_VERIFY_SSL), else the kubeconfig's setting, else true.
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description: CA certificate bundle of the API server. Defaults to E(K8S_AUTH_CA_CERT) or E(K8S_AUTH_SSL_CA_CERT).
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description: Client certificate for the API server. Defaults to E(K8S_AUTH_CLIENT_CERT) or E(K8S_AUTH_CERT_FILE).
    type: path
    aliases: [cert_file]
  client_key:
    description: Key of O(client_cert). Defaults to E(K8S_AUTH_CLIENT_KEY) or E(K8S_AUTH_KEY_FILE).
    type: path
    aliases: [key_file]
  proxy:
    description: HTTP proxy to reach the API server through. Defaults to E(K8S_AUTH_PROXY).
    type: str
  no_proxy:
    description: Hosts to reach without O(proxy), comma-separated. Defaults to E(K8S_AUTH_NO_PROXY).
    type: str
requirements:
  - kubernetes >= 24.2.0 (Python library, on the host that runs the module)
notes:
  - A module option wins over its E(K8S_AUTH_*) variable, as in C(kubernetes.core).
"""
