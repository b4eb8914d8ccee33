# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which mode serves a model name: the node's mode book (ConfigMap ``gpu-mode-<node>``, key ``modes.json``)
and the served names of its mode-bound Deployments (annotation ``baremetal.gpu/served-model-names``, the
Deployment's ``--served-model-name`` list: the model and its aliases). Pure logic, no I/O."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

ANNOTATION = "baremetal.gpu/"


def served_names(deployment):
    """The names a mode-bound Deployment answers to (its ``--served-model-name`` values), in order."""
    text = (((deployment or {}).get("metadata") or {}).get("annotations") or {}).get(ANNOTATION + "served-model-names")
    return [n for n in (text or "").split(",") if n]


def load_seconds(deployment):
    text = (((deployment or {}).get("metadata") or {}).get("annotations") or {}).get(ANNOTATION + "load-seconds")
    try:
        return float(text or 0)
    except ValueError:
        return 0.0


class Route:
    """A model name served by ``deployment`` while ``mode`` is active."""

    __slots__ = ("model", "mode", "deployment")

    def __init__(self, model, mode, deployment):
        self.model, self.mode, self.deployment = model, mode, deployment

    def __repr__(self):
        return "Route(%r, %r, %r)" % (self.model, self.mode, self.deployment)

    def __eq__(self, other):
        return isinstance(other, Route) and (self.model, self.mode, self.deployment) == \
            (other.model, other.mode, other.deployment)


class RouteTable:
    """Model name -> the modes that serve it. ``book``: the node's modes (``modes.book_from_configmap``);
    ``deployments``: ``{name: Deployment}`` of the mode-bound Deployments that exist."""

    def __init__(self, book, deployments):
        self.book = book or {"modes": {}}
        self.default = self.book.get("default")
        self.deployments = dict(deployments or {})
        self._by_name = {}
        for mode in sorted(self.book.get("modes") or {}):
            spec = self.book["modes"][mode]
            for deployment in sorted(spec.get("workloads") or {}):
                for name in served_names(self.deployments.get(deployment)):
                    self._by_name.setdefault(name, []).append(Route(name, mode, deployment))

    def models(self):
        """Every servable model name, sorted."""
        return sorted(self._by_name)

    def routes(self, model):
        return list(self._by_name.get(model) or [])

    def resolve(self, model, active):
        """The route for ``model``: the active mode when it serves it (no switch), else the default mode when
        it does, else the first mode by name; None for a name no mode serves."""
        routes = self._by_name.get(model)
        if not routes:
            return None
        for preferred in (active, self.default):
            for route in routes:
                if route.mode == preferred:
                    return route
        return routes[0]

    def mode_workloads(self, mode):
        """``{deployment: replicas}`` awake in ``mode`` ({} for an unknown mode)."""
        return dict(((self.book.get("modes") or {}).get(mode) or {}).get("workloads") or {})

    def mode_standby(self, mode):
        return sorted(((self.book.get("modes") or {}).get(mode) or {}).get("standby") or {})

    def model_state(self, model, active):
        """``loaded`` (its Deployment is awake in the active mode), ``asleep`` (kept in the active mode's standby)
        or ``stopped``."""
        for route in self.routes(model):
            if route.mode == active and route.deployment in self.mode_workloads(active):
                return "loaded"
        for route in self.routes(model):
            if route.deployment in self.mode_standby(active):
                return "asleep"
        return "stopped"

    def expected_load_seconds(self, mode):
        """The longest model load of ``mode``'s workloads (the catalog's figure), for Retry-After."""
        return max([load_seconds(self.deployments.get(d)) for d in self.mode_workloads(mode)] or [0.0])
