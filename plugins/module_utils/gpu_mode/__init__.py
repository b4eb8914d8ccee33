# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The GPU mode switcher: which workloads own a GPU node's GPUs, and the safe swap between modes.

One implementation, shared by the ``baremetal.gpu.gpu_mode`` module and the node CLI ``gpu-mode``:

* ``release``: wait, on the GPU node, until the GPU memory of stopped pods is really released (NVML).
* ``lease``: the per-node lock, a ``coordination.k8s.io/v1`` Lease.
* ``drain``: in-flight requests of outgoing model servers, from vLLM's ``/metrics``.
"""
