"""Request counters and per-stage timings, rendered as Prometheus text (exposition format 0.0.4)."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Mapping

BUCKETS_MS = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class Metrics:
    """Thread-safe counters: requests by route and status, request latency histogram, search stage sums."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency_buckets: dict[str, list[int]] = defaultdict(lambda: [0] * len(BUCKETS_MS))
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.latency_count: dict[str, int] = defaultdict(int)
        self.stage_sum: dict[str, float] = defaultdict(float)
        self.stage_count: dict[str, int] = defaultdict(int)
        self.in_flight = 0

    def request(self, method: str, route: str, status: int, ms: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            buckets = self.latency_buckets[route]
            for i, bound in enumerate(BUCKETS_MS):
                if ms <= bound:
                    buckets[i] += 1
            self.latency_sum[route] += ms
            self.latency_count[route] += 1

    def stages(self, timings_ms: Mapping[str, float]) -> None:
        with self._lock:
            for stage, ms in timings_ms.items():
                self.stage_sum[stage] += ms
                self.stage_count[stage] += 1

    def render(self) -> str:
        with self._lock:
            lines = [
                "# HELP workbench_requests_total HTTP requests by method, route and status.",
                "# TYPE workbench_requests_total counter",
            ]
            for (method, route, status), n in sorted(self.requests.items()):
                lines.append(f'workbench_requests_total{{method="{method}",route="{route}",status="{status}"}} {n}')
            lines += [
                "# HELP workbench_request_duration_ms Request latency in milliseconds.",
                "# TYPE workbench_request_duration_ms histogram",
            ]
            for route in sorted(self.latency_count):
                for bound, n in zip(BUCKETS_MS, self.latency_buckets[route], strict=True):
                    lines.append(f'workbench_request_duration_ms_bucket{{route="{route}",le="{bound}"}} {n}')
                count = self.latency_count[route]
                lines.append(f'workbench_request_duration_ms_bucket{{route="{route}",le="+Inf"}} {count}')
                lines.append(f'workbench_request_duration_ms_sum{{route="{route}"}} {self.latency_sum[route]:.3f}')
                lines.append(f'workbench_request_duration_ms_count{{route="{route}"}} {count}')
            lines += [
                "# HELP workbench_search_stage_ms Time spent per search stage (encode, vectors, bm25, fuse, ...).",
                "# TYPE workbench_search_stage_ms summary",
            ]
            for stage in sorted(self.stage_count):
                lines.append(f'workbench_search_stage_ms_sum{{stage="{stage}"}} {self.stage_sum[stage]:.3f}')
                lines.append(f'workbench_search_stage_ms_count{{stage="{stage}"}} {self.stage_count[stage]}')
            lines += [
                "# HELP workbench_requests_in_flight Requests being handled now.",
                "# TYPE workbench_requests_in_flight gauge",
                f"workbench_requests_in_flight {self.in_flight}",
            ]
        return "\n".join(lines) + "\n"
