"""GET /v1/metrics: the job manager's numbers in Prometheus' text format (prometheus_client writes it)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily


class _ManagerCollector:
    def __init__(self, m: dict | None):
        self.m = m

    def collect(self):
        m = self.m or {}
        for name, doc in (("queue_depth", "jobs waiting"), ("running", "jobs being generated"),
                          ("workers", "model replicas"), ("queue_size", "queue capacity")):
            yield GaugeMetricFamily(f"ldm3d_{name}", doc, value=m.get(name, 0))
        jobs = CounterMetricFamily("ldm3d_jobs", "finished or refused jobs by outcome", labels=["outcome"])
        for outcome in ("done", "failed", "cancelled", "rejected"):
            jobs.add_metric([outcome], m.get(f"jobs_{outcome}", 0))
        yield jobs
        workers = CounterMetricFamily("ldm3d_worker_events", "model worker processes that died, were killed at a "
                                      "job's deadline, or were restarted", labels=["event"])
        for event in ("deaths", "deadline_kills", "restarts"):
            workers.add_metric([event], m.get(f"worker_{event}", 0))
        yield workers
        yield CounterMetricFamily("ldm3d_results_pruned", "results deleted to keep the newest --keep",
                                  value=m.get("results_pruned", 0))
        yield GaugeMetricFamily("ldm3d_results_disk_free_bytes", "free space on the results folder's disk",
                                value=m.get("disk_free_bytes", 0))
        for key, name, doc in (("step_seconds", "ldm3d_unet_step_seconds", "UNet step latency (recent steps)"),
                               ("job_seconds", "ldm3d_job_seconds", "generation time of recent finished jobs")):
            values = m.get(key, [])
            yield SummaryMetricFamily(name, doc, count_value=len(values), sum_value=float(sum(values)))


def prometheus_text(m: dict | None) -> str:
    registry = CollectorRegistry()
    registry.register(_ManagerCollector(m))
    return generate_latest(registry).decode()
