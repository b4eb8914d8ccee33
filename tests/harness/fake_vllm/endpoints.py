"""The OpenAI-side endpoints of the fake vLLM: /health, /ping, /version, /v1/models, /metrics and the two
completion APIs, with vLLM's status codes and bodies, a scheduler bounded by ``max_num_seqs`` and requests
that last ``token_delay`` per token."""

import json
import time
import uuid

__all__ = ["EndpointsMixin"]


def _message_text(content):
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": "..."}]
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


class _EngineDied(Exception):
    pass


class EndpointsMixin:
    # ------------------------------------------------------------------ health and models
    def _health(self, h):
        state = self._health_state()
        if self.health_mode == "json":
            if state == "ready":
                h.send(200, {"status": "healthy", "ready": True})
            elif state == "loading":
                h.send(self.json_loading_status, {"status": "initializing", "ready": False})
            else:
                h.send(503, {"status": "unhealthy", "ready": False})
            return
        if state == "unhealthy":
            h.send(self.profile.health_when_dead, b"", content_type="")
            return
        h.send(200 if state == "ready" else 503, b"", content_type="")

    def _version(self, h):
        h.send(200, {"version": self.version})

    def _model_card(self, name):
        return {
            "id": name, "object": "model", "created": self._created, "owned_by": "vllm", "root": self.model,
            "parent": None, "max_model_len": self.max_model_len,
            "permission": [{
                "id": "modelperm-%s" % uuid.uuid4().hex, "object": "model_permission", "created": self._created,
                "allow_create_engine": False, "allow_sampling": True, "allow_logprobs": True,
                "allow_search_indices": False, "allow_view": True, "allow_fine_tuning": False, "organization": "*",
                "group": None, "is_blocking": False,
            }],
        }

    def _unavailable(self, h):
        state = self._health_state()
        if state == "loading":
            h.send_error_body("The model is still loading.", "ServiceUnavailableError", 503)
            return True
        if state == "unhealthy":
            h.send_engine_dead()
            return True
        return False

    def _models(self, h):
        if self._unavailable(h):
            return
        h.send(200, {"object": "list", "data": [self._model_card(n) for n in self.served_model_names]})

    def _metrics(self, h):
        with self._lock:
            running, waiting = self._running, self._waiting
            tokens = self._tokens_in_flight
        capacity = self.memory.kv_tokens if self.memory is not None else None
        usage = min(1.0, tokens / capacity) if capacity else 0.0
        text = self.metrics.render(running, waiting, usage, self._sleep_level_for_metrics(),
                                   show_hidden=bool(self.extra_args.get("show_hidden_metrics_for_version")))
        h.send(200, text, content_type="text/plain; version=0.0.4; charset=utf-8")

    # ------------------------------------------------------------------ completions
    def _resolve_model(self, h, body):
        name = body.get("model") or self.served_model_names[0]
        if name not in self.served_model_names:
            message = "The model `%s` does not exist." % name
            if self.profile.not_found_lists_aliases:
                message += " Valid aliases: %s." % ", ".join(self.served_model_names)
            h.send_error_body(message, "NotFoundError", 404, self.profile.not_found_param)
            return None
        return name

    def _budget(self, h, body, prompt_tokens):
        """(max completion tokens) or None after answering vLLM's context-length 400."""
        requested = body.get("max_completion_tokens") or body.get("max_tokens")
        if requested is not None and (not isinstance(requested, int) or requested < 1):
            h.send_error_body("max_tokens must be at least 1, got %r." % (requested,), "BadRequestError", 400)
            return None
        limit = requested if requested is not None else self.max_model_len - prompt_tokens
        if prompt_tokens + (requested or 0) > self.max_model_len or limit < 1:
            h.send_error_body(
                "This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the "
                "messages, %d in the completion). Please reduce the length of the messages or completion."
                % (self.max_model_len, prompt_tokens + (requested or 0), prompt_tokens, requested or 0),
                "BadRequestError", 400)
            return None
        return limit

    def _reply(self, name, prompt_tokens, limit):
        words = ("This is a fake vLLM reply from %s to a prompt of %d tokens." % (name, prompt_tokens)).split()
        if not self._weights_valid:
            words = ["!"] * len(words)  # weights discarded by a level-2 sleep and never reloaded: garbage
        finish = "stop"
        if len(words) > limit:
            words, finish = words[:limit], "length"
        return words, finish

    def _generate(self, h, kind):
        if self._unavailable(h):
            return
        body, err = h.read_json()
        if err:
            h.send_error_body(err, "BadRequestError", 400)
            return
        name = self._resolve_model(h, body)
        if name is None:
            return
        if kind == "chat":
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                h.send_error_body("messages must be a non-empty list", "BadRequestError", 400)
                return
            prompt = " ".join(_message_text(m.get("content")) for m in messages if isinstance(m, dict))
        else:
            prompt = body.get("prompt")
            if isinstance(prompt, list):
                prompt = " ".join(str(p) for p in prompt)
            if not isinstance(prompt, str):
                h.send_error_body("prompt must be a string or a list of strings", "BadRequestError", 400)
                return
        prompt_tokens = len(prompt.split())
        limit = self._budget(h, body, prompt_tokens)
        if limit is None:
            return
        arrived = time.monotonic()
        if not self._admit():
            h.send_engine_dead()
            return
        request = {"arrived": arrived, "tokens": prompt_tokens, "epoch": self._abort_epoch, "generated": 0}
        finish = None
        try:
            words, finish = self._reply(name, prompt_tokens, limit)
            with self._lock:
                self._tokens_in_flight += prompt_tokens
            if body.get("stream"):
                finish = self._stream(h, kind, name, words, finish, prompt_tokens, body, request)
            else:
                finish = self._respond(h, kind, name, words, finish, prompt_tokens, body, request)
        finally:
            self._release(request, prompt_tokens, finish)

    def _next_token(self, request):
        """Wait one token's time; 'abort' when a sleep aborted the request; raises _EngineDied."""
        delay = self.scaled(self.token_delay)
        if delay > 0 and self._stop_event.wait(delay):
            raise _EngineDied()
        with self._lock:
            while self._paused and self._pause_mode == "keep" and not self._dead and not self._stop_event.is_set():
                self._sched.wait(0.05)
            if self._dead or self._stop_event.is_set():
                raise _EngineDied()
            if request["epoch"] != self._abort_epoch:
                return "abort"
            if self._forward_hits_unmapped_memory():
                self._engine_crash_locked()
                raise _EngineDied()
            if request["generated"] == 0:
                self.metrics.first_token(time.monotonic() - request["arrived"])
            request["generated"] += 1
            self._tokens_in_flight += 1
        return None

    def _usage(self, prompt_tokens, completion_tokens):
        return {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + completion_tokens,
                "completion_tokens": completion_tokens, "prompt_tokens_details": None}

    def _respond(self, h, kind, name, words, finish, prompt_tokens, body, request):
        produced = []
        try:
            for word in words:
                if self._next_token(request) == "abort":
                    finish = "abort"
                    break
                produced.append(word)
        except _EngineDied:
            h.send_engine_dead()
            return None
        text = " ".join(produced)
        n = body.get("n") if isinstance(body.get("n"), int) and body.get("n") > 0 else 1
        created = int(time.time())
        if kind == "chat":
            choices = [{"index": i, "message": {"role": "assistant", "reasoning_content": None, "content": text,
                                                "tool_calls": []},
                        "logprobs": None, "finish_reason": finish, "stop_reason": None} for i in range(n)]
            doc = {"id": "chatcmpl-%s" % uuid.uuid4().hex, "object": "chat.completion", "created": created,
                   "model": name, "choices": choices, "usage": self._usage(prompt_tokens, len(produced) * n),
                   "prompt_logprobs": None}
        else:
            choices = [{"index": i, "text": text, "logprobs": None, "finish_reason": finish, "stop_reason": None,
                        "prompt_logprobs": None} for i in range(n)]
            doc = {"id": "cmpl-%s" % uuid.uuid4().hex, "object": "text_completion", "created": created,
                   "model": name, "choices": choices, "usage": self._usage(prompt_tokens, len(produced) * n)}
        h.send(200, doc)
        return finish

    def _stream(self, h, kind, name, words, finish, prompt_tokens, body, request):
        created = int(time.time())
        ident = ("chatcmpl-%s" if kind == "chat" else "cmpl-%s") % uuid.uuid4().hex
        obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream; charset=utf-8")
        h.send_header("Transfer-Encoding", "chunked")
        self.access_log(h, 200)
        h.end_headers()

        def event(choice, usage=None):
            doc = {"id": ident, "object": obj, "created": created, "model": name,
                   "choices": [choice] if choice is not None else []}
            if usage is not None:
                doc["usage"] = usage
            h.chunk("data: %s\n\n" % json.dumps(doc))

        if kind == "chat":
            event({"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None})
        produced = 0
        try:
            for i, word in enumerate(words):
                if self._next_token(request) == "abort":
                    finish = "abort"
                    break
                piece = word if i == 0 else " " + word
                if kind == "chat":
                    event({"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None})
                else:
                    event({"index": 0, "text": piece, "logprobs": None, "finish_reason": None, "stop_reason": None})
                produced += 1
        except _EngineDied:
            h.chunk("data: %s\n\n" % json.dumps(self._streaming_engine_error()))
            h.chunk("data: [DONE]\n\n")
            h.chunk(b"")
            return None
        if kind == "chat":
            event({"index": 0, "delta": {"content": ""}, "logprobs": None, "finish_reason": finish,
                   "stop_reason": None})
        else:
            event({"index": 0, "text": "", "logprobs": None, "finish_reason": finish, "stop_reason": None})
        options = body.get("stream_options") or {}
        if isinstance(options, dict) and options.get("include_usage"):
            event(None, self._usage(prompt_tokens, produced))
        h.chunk("data: [DONE]\n\n")
        h.chunk(b"")
        return finish

    def _streaming_engine_error(self):
        """The error event a stream ends with when the engine dies under it (create_streaming_error_response:
        the error's text with the default BadRequestError/400 before 0.15, the exception mapped after)."""
        from tests.harness.fake_vllm.http import ENGINE_DEAD_MESSAGE, error_body
        if self.profile.at_least("0.15"):
            inner = error_body(self.profile, ENGINE_DEAD_MESSAGE, "InternalServerError", 500)
        else:
            inner = error_body(self.profile, ENGINE_DEAD_MESSAGE, "BadRequestError", 400)
        return inner if "error" in inner else {"error": inner}

    def _chat(self, h):
        self._generate(h, "chat")

    def _completions(self, h):
        self._generate(h, "completion")
