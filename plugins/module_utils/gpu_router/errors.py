# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the router answers when it does not forward a request: OpenAI's error shape
(``{"error": {"message", "type", "param", "code"}}``), so OpenAI clients raise their usual exceptions
(NotFoundError, RateLimitError, InternalServerError) with the router's message."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math


class RouterError(Exception):
    """An answer the router gives itself: HTTP ``status``, OpenAI error ``type`` and ``code``, extra headers."""

    status = 500
    type = "server_error"
    code = None

    def __init__(self, message, headers=None, param=None):
        self.message = message
        self.headers = dict(headers or {})
        self.param = param
        super(RouterError, self).__init__(message)

    def body(self):
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class UnknownModel(RouterError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"

    def __init__(self, model, servable):
        super(UnknownModel, self).__init__(
            "The model `%s` does not exist on this GPU node. Servable models: %s"
            % (model, ", ".join(servable) or "none"), param="model")
        self.servable = list(servable)


class QueueLimit(RouterError):
    status = 429
    type = "rate_limit_error"
    code = "queue_full"


class Loading(RouterError):
    """The request's model is still being loaded when its hold deadline passes (the switch goes on)."""

    status = 503
    type = "server_error"
    code = "model_loading"

    def __init__(self, model, mode, retry_after, waited):
        seconds = max(1, int(math.ceil(retry_after)))
        super(Loading, self).__init__(
            "The model `%s` is being loaded (GPU mode %s); not ready after %.0f s, retry in about %d s"
            % (model, mode, waited, seconds), headers={"Retry-After": str(seconds)}, param="model")


class SwitchFailed(RouterError):
    """The switch to the request's mode failed (and was rolled back); the reason is the switch's."""

    status = 503
    type = "server_error"
    code = "model_switch_failed"

    def __init__(self, model, mode, reason, retry_after):
        super(SwitchFailed, self).__init__(
            "The model `%s` could not be loaded (switch to GPU mode %s failed): %s"
            % (model, mode, reason), headers={"Retry-After": str(max(1, int(math.ceil(retry_after))))},
            param="model")


class NoUpstream(RouterError):
    status = 503
    type = "server_error"
    code = "no_ready_server"

    def __init__(self, model, deployment, retry_after=5):
        super(NoUpstream, self).__init__(
            "The model `%s` has no ready server (Deployment %s) right now" % (model, deployment),
            headers={"Retry-After": str(max(1, int(math.ceil(retry_after))))}, param="model")


class BadRequest(RouterError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_body"
