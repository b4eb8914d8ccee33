#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: vllm_health
short_description: Wait until a vLLM (or other model) server is really serving
version_added: "0.1.0"
description:
  - Polls, at most every 0.5 s and under one deadline, until the server answers C(GET /health) with
    200 (or, for O(health_kind=json), the JSON field O(json_field) equals O(json_value)), then until
    C(GET /v1/models) lists O(served_model_name), then optionally until one tiny chat completion
    answers (O(inference)), and returns the seconds each phase took.
  - A server that answers C(/v1/models) with other names serves the wrong model; that fails at once
    and names what it serves.
  - Reaches the server at O(url), or through the Kubernetes API server's service proxy
    (C(/api/v1/namespaces/<ns>/services/<svc>:<port>/proxy/...)) when O(service) is given, so no port
    needs to be exposed.
  - On failure the message says which phase failed, the last status code and body excerpt, and (through
    the proxy) the phase and readiness of the pods behind the Service.
  - The logic lives in C(plugins/module_utils/health.py).
author:
  - baremetal.gpu maintainers (@baremetal-gpu)
options:
  url:
    description: Base URL of the server, for example C(http://vllm-api.ml.svc:8000). Exclusive with O(service).
    type: str
  service:
    description: Name of the Service to reach through the API server's proxy. Exclusive with O(url).
    type: str
  namespace:
    description: Namespace of O(service).
    type: str
    default: default
  port:
    description: Port (number or name) of O(service).
    type: str
    default: "8000"
  scheme:
    description: Scheme the proxied server speaks.
    type: str
    choices: [http, https]
    default: http
  served_model_name:
    description: Name C(/v1/models) must list. Without it the models phase is skipped.
    type: str
  health_kind:
    description:
      - C(vllm) - C(/health) answering 200 means healthy (vLLM answers an empty 200).
      - "C(json) - the answer is JSON and O(json_field) must equal O(json_value), as in
        C({\"status\": \"healthy\", \"ready\": true})."
    type: str
    choices: [vllm, json]
    default: vllm
  health_path:
    description: Path of the health endpoint.
    type: str
    default: /health
  json_field:
    description: Dotted path of the field that says ready, for O(health_kind=json).
    type: str
    default: ready
  json_value:
    description: Value of O(json_field) that means ready (a list means any of them).
    type: raw
    default: true
  check_models:
    description: Check C(/v1/models) for O(served_model_name).
    type: bool
    default: true
  models_path:
    description: Path of the model list.
    type: str
    default: /v1/models
  inference:
    description: Send one chat completion (O(max_tokens) tokens) to prove inference works, and time it.
    type: bool
    default: false
  prompt:
    description: Prompt of the O(inference) request.
    type: str
    default: Say OK.
  max_tokens:
    description: Tokens the O(inference) request asks for.
    type: int
    default: 1
  timeout:
    description: Seconds all phases together may take.
    type: float
    default: 600
  interval:
    description: Seconds between polls; values above 0.5 are lowered to 0.5.
    type: float
    default: 0.2
  request_timeout:
    description: Seconds one request may take.
    type: float
    default: 5
notes:
  - Read-only; runs the same in check mode and never reports a change.
  - The C(kubernetes) Python library is needed only with O(service).
extends_documentation_fragment:
  - baremetal.gpu.read_only
  - baremetal.gpu.kube_auth
seealso:
  - module: baremetal.gpu.vllm_deploy
"""

EXAMPLES = r"""
- name: Wait for the home lab's model through the API server (no port exposed)
  baremetal.gpu.vllm_health:
    service: vllm-api
    namespace: ml
    port: "8000"
    served_model_name: vllm-qwen
    inference: true
    timeout: 300

- name: Wait for a FastAPI speech service whose /health answers JSON
  baremetal.gpu.vllm_health:
    url: http://tts.speech.svc:8880
    health_kind: json
    json_field: ready
    json_value: true
"""

RETURN = r"""
elapsed:
  description: Seconds each phase took (health, models, inference) and in total.
  returned: always
  type: dict
  sample: {health: 19.8, models: 0.01, inference: 0.35, total: 20.2}
attempts:
  description: Requests made per phase.
  returned: always
  type: dict
  sample: {health: 100, models: 1, inference: 1}
models:
  description: Model names C(/v1/models) listed.
  returned: always
  type: list
  elements: str
  sample: [vllm-qwen]
inference:
  description: Latency and answer of the inference request.
  returned: when inference is true and succeeded
  type: dict
  sample: {latency_s: 0.35, text: OK, usage: {prompt_tokens: 12, completion_tokens: 1, total_tokens: 13}}
last:
  description: The last answer seen (phase, path, status, body excerpt, error).
  returned: always
  type: dict
failed_phase:
  description: The phase that failed.
  returned: failure
  type: str
pods:
  description: Phase and readiness of the pods behind the Service, when reached through the proxy and failed.
  returned: failure
  type: str
where:
  description: What was polled (the URL, or the Service through the API proxy).
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.baremetal.gpu.plugins.module_utils import health
from ansible_collections.baremetal.gpu.plugins.module_utils import kube as k8s


def main():
    argument_spec = dict(
        url=dict(type="str"),
        service=dict(type="str"),
        namespace=dict(type="str", default="default"),
        port=dict(type="str", default="8000"),
        scheme=dict(type="str", choices=["http", "https"], default="http"),
        served_model_name=dict(type="str"),
        health_kind=dict(type="str", choices=["vllm", "json"], default="vllm"),
        health_path=dict(type="str", default="/health"),
        json_field=dict(type="str", default="ready"),
        json_value=dict(type="raw", default=True),
        check_models=dict(type="bool", default=True),
        models_path=dict(type="str", default="/v1/models"),
        inference=dict(type="bool", default=False),
        prompt=dict(type="str", default="Say OK."),
        max_tokens=dict(type="int", default=1, no_log=False),
        timeout=dict(type="float", default=600),
        interval=dict(type="float", default=0.2),
        request_timeout=dict(type="float", default=5),
    )
    argument_spec.update(k8s.AUTH_ARG_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           mutually_exclusive=[("url", "service")], required_one_of=[("url", "service")])
    params = module.params
    if params["interval"] <= 0:
        module.fail_json(msg="interval must be positive")
    kube = None
    if params["service"]:
        problem = k8s.requirement_error()
        if problem:
            module.fail_json(msg=problem)
        try:
            kube = k8s.Kube.from_params(params)
        except k8s.KubeError as exc:
            module.fail_json(msg=str(exc))
        fetch = health.proxy_fetch(kube, params["namespace"], params["service"], params["port"], params["scheme"])
    else:
        fetch = health.url_fetch(params["url"], validate_certs=params["validate_certs"] is not False)
    try:
        result = health.wait_serving(
            fetch, served_model_name=params["served_model_name"], kind=params["health_kind"],
            health_path=params["health_path"], field=params["json_field"], value=params["json_value"],
            check_models=params["check_models"], models_path=params["models_path"], inference=params["inference"],
            prompt=params["prompt"], max_tokens=params["max_tokens"], timeout=params["timeout"],
            interval=params["interval"], request_timeout=params["request_timeout"])
    except health.HealthError as exc:
        extra = dict(exc.result)
        message = str(exc)
        if kube is not None:
            try:
                extra["pods"] = k8s.service_pods(kube, params["namespace"], params["service"])
                message += "; " + extra["pods"]
            except k8s.KubeError as kexc:
                extra["pods"] = "unknown: %s" % kexc
            kube.close()
        module.fail_json(msg=message, **extra)
    if kube is not None:
        kube.close()
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
