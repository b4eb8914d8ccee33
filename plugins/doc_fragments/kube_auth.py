# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How modules of this collection reach a cluster: the options of C(module_utils/kube.py)'s AUTH_ARG_SPEC."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path of a kubeconfig file. Defaults to E(K8S_AUTH_KUBECONFIG), E(KUBECONFIG), C(~/.kube/config),
        then the in-cluster service account.
    type: path
  context:
    description: Context of the kubeconfig to use.
    type: str
  host:
    description: API server URL, overriding the kubeconfig's.
    type: str
  api_key:
    description: Bearer token for the API server.
    type: str
  validate_certs:
    description: Verify TLS certificates (of the API server, and of any other URL the module calls).
    type: bool
    default: true
  ca_cert:
    description: CA certificate bundle of the API server.
    type: path
"""
