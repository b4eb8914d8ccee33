# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The GPU router: an OpenAI-compatible endpoint in front of one GPU node's model servers that switches the
node's mode when a request asks for a model of another mode (the switch is ``gpu_mode.switch``, not a copy).

* ``routing``: served model names and aliases -> mode and Deployment (the node's modes ConfigMap and the
  mode-bound Deployments' annotations);
* ``admission``: the FIFO queue, per-mode concurrency limits (429 beyond), which request may go now and
  which mode the oldest waiting request wants;
* ``coordinator``: one switch at a time, shared by every request waiting for its target, held requests, the
  outgoing mode's in-flight requests waited for (bounded), failures answered 503, idle return to the default
  mode, preload;
* ``cluster_view``: what the router follows in the cluster (recorded mode, Deployments, ready pods), by watches;
* ``metrics``, ``errors``, ``logs``: Prometheus text, OpenAI-shaped errors, structured JSON log lines;
* ``server``: the aiohttp application (``/v1/*`` forwarded unchanged, streaming included; ``/v1/models``;
  ``/healthz``; ``/metrics``); ``config`` and ``cli``: settings and the entry point;
* ``manifests``: the router's Kubernetes objects (Deployment, RBAC, Service, PodDisruptionBudget).
"""
