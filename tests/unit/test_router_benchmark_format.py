"""The router benchmark's last line has the fixed format other tools parse."""

import re

from benchmarks.router import summary_line


def test_the_last_line_has_the_fixed_format():
    line = summary_line(0.8123, 4.2, 1.25)
    assert line == "router overhead_p50_ms=0.812 overhead_p99_ms=4.200 switch_extra_s=1.250"
    assert re.fullmatch(r"router overhead_p50_ms=-?[0-9.]+ overhead_p99_ms=-?[0-9.]+ switch_extra_s=-?[0-9.]+", line)
