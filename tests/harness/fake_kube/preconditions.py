"""Write preconditions: `metadata.resourceVersion` and `metadata.uid`, as the generic registry store
checks them (k8s.io/apiserver/pkg/registry/generic/registry/store.go).

- A `resourceVersion` carried by a write is a precondition, whatever the verb: PUT, any PATCH
  whose result carries one (a merge patch can set it), server-side apply (an applied configuration
  may name it) and DeleteOptions.preconditions. A stale one is 409 Conflict.
- A PUT without `resourceVersion` overwrites the live object only where the kind's strategy allows
  unconditional updates; Leases and RuntimeClasses do not: 422 `metadata.resourceVersion: Invalid
  value: 0x0: must be specified for an update`.
- A `uid` that names another incarnation of the object (deleted and re-created) is 409 Conflict.
"""

from __future__ import annotations

from typing import Any, Dict

from .errors import ApiError, conflict, invalid
from .resources import Resource

OPTIMISTIC_LOCK = "the object has been modified; please apply your changes to the latest version and try again"


def _uid_precondition(res: Resource, live: Dict[str, Any], uid: Any) -> None:
    live_uid = live["metadata"].get("uid")
    if uid and uid != live_uid:
        raise conflict(res.plural, res.group, live["metadata"]["name"],
                       f"Precondition failed: UID in precondition: {uid}, UID in object meta: {live_uid}")


def _rv_precondition(res: Resource, live: Dict[str, Any], wanted: Any) -> None:
    if wanted in (None, ""):
        return
    if not str(wanted).isdigit():
        raise ApiError(400, f'invalid resource version: strconv.ParseUint: parsing "{wanted}": invalid syntax')
    if str(wanted) != live["metadata"]["resourceVersion"]:
        raise conflict(res.plural, res.group, live["metadata"]["name"], OPTIMISTIC_LOCK)


def check_update(res: Resource, live: Dict[str, Any], body: Dict[str, Any]) -> None:
    meta = body.get("metadata") or {}
    _uid_precondition(res, live, meta.get("uid"))
    wanted = meta.get("resourceVersion")
    if wanted in (None, "") and not res.unconditional_update:
        # errors.NewInvalid with the resource as its kind: `leases.coordination.k8s.io "x" is invalid: ...`
        raise invalid(res.plural, res.group, live["metadata"]["name"],
                      [{"reason": "FieldValueInvalid", "field": "metadata.resourceVersion",
                        "message": "Invalid value: 0x0: must be specified for an update"}])
    _rv_precondition(res, live, wanted)


def check_patch(res: Resource, live: Dict[str, Any], patched: Dict[str, Any]) -> None:
    meta = patched.get("metadata") or {}
    _uid_precondition(res, live, meta.get("uid"))
    _rv_precondition(res, live, meta.get("resourceVersion"))


def check_apply(res: Resource, live: Dict[str, Any], applied: Dict[str, Any]) -> None:
    meta = applied.get("metadata") or {}
    _uid_precondition(res, live, meta.get("uid"))
    _rv_precondition(res, live, meta.get("resourceVersion"))


def check_delete(res: Resource, live: Dict[str, Any], options: Dict[str, Any]) -> None:
    pre = options.get("preconditions") or {}
    meta = live["metadata"]
    if pre.get("uid") and pre["uid"] != meta.get("uid"):
        raise conflict(res.plural, res.group, meta["name"], f"Precondition failed: UID in precondition: "
                                                            f"{pre['uid']}, UID in object meta: {meta.get('uid')}")
    if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
        raise conflict(res.plural, res.group, meta["name"], "Precondition failed: ResourceVersion in precondition: "
                                                            f"{pre['resourceVersion']}, ResourceVersion in object "
                                                            f"meta: {meta.get('resourceVersion')}")
