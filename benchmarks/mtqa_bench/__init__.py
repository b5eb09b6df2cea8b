"""mtqa_bench: Locust and perf_analyzer load tests, peers and reports."""
