# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Structured logs: one JSON object per line on stderr (``ts``, ``level``, ``event`` and the event's fields),
what ``kubectl logs`` and log collectors read. Credentials are never logged (nothing here sees them)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import sys
import time


class JsonLog:
    def __init__(self, stream=None, component="gpu-router", **context):
        self.stream = stream or sys.stderr
        self.context = dict(context, component=component)

    def __call__(self, event, level="info", **fields):
        record = {"ts": round(time.time(), 3), "level": level, "event": event}
        record.update(self.context)
        record.update(fields)
        try:
            self.stream.write(json.dumps(record, sort_keys=True, default=str) + "\n")
            self.stream.flush()
        except (IOError, OSError, ValueError):  # a closed stream must never break a request
            pass
