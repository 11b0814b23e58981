"""A Triton server's own statistics for one model (`get_inference_statistics`): how many images
it inferred in how many executions (the batches its dynamic batcher formed) and where a request's
time went (queue, compute), summed over every client of the model."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ServerStats:
    """The server's own counters for this model (all its clients), as of one poll."""

    inferences: int = 0  # images (batch rows) inferred
    executions: int = 0  # model executions: inferences / executions is the mean batch formed
    requests: int = 0
    request_ns: int = 0  # arrival to response, summed over requests
    queue_ns: int = 0
    compute_ns: int = 0  # input + infer + output
    batches: dict[int, int] = field(default_factory=dict)  # batch size -> executions

    @classmethod
    def of(cls, stats: dict) -> ServerStats:
        m = (stats.get("model_stats") or [{}])[0]
        s = m.get("inference_stats", {})

        def ns(key: str) -> int:
            return int(s.get(key, {}).get("ns", 0))

        batches = {
            int(b["batch_size"]): int(b.get("compute_infer", {}).get("count", 0))
            for b in m.get("batch_stats", [])
        }
        return cls(
            inferences=int(m.get("inference_count", 0)),
            executions=int(m.get("execution_count", 0)),
            requests=int(s.get("success", {}).get("count", 0)),
            request_ns=ns("success"),
            queue_ns=ns("queue"),
            compute_ns=ns("compute_input") + ns("compute_infer") + ns("compute_output"),
            batches=batches,
        )

    def since(self, start: ServerStats) -> ServerStats:
        """What happened between `start` and this poll."""
        return ServerStats(
            self.inferences - start.inferences,
            self.executions - start.executions,
            self.requests - start.requests,
            self.request_ns - start.request_ns,
            self.queue_ns - start.queue_ns,
            self.compute_ns - start.compute_ns,
            {
                k: v - start.batches.get(k, 0)
                for k, v in self.batches.items()
                if v > start.batches.get(k, 0)
            },
        )

    def plus(self, other: ServerStats) -> ServerStats:
        """Both together (the counts before a server restart, which zeroes them, and after)."""
        keys = set(self.batches) | set(other.batches)
        return ServerStats(
            self.inferences + other.inferences,
            self.executions + other.executions,
            self.requests + other.requests,
            self.request_ns + other.request_ns,
            self.queue_ns + other.queue_ns,
            self.compute_ns + other.compute_ns,
            {k: self.batches.get(k, 0) + other.batches.get(k, 0) for k in sorted(keys)},
        )

    def describe(self) -> str:
        if not self.executions:
            return "no executions"
        per = max(self.requests, 1)
        sizes = ", ".join(f"{k}: {v}" for k, v in sorted(self.batches.items()))
        return (
            f"{self.inferences} images in {self.executions} executions (mean batch "
            f"{self.inferences / self.executions:.2f}; sizes {sizes}); per request "
            f"{self.request_ns / per / 1e6:.2f} ms in the server, of which queue "
            f"{self.queue_ns / per / 1e6:.2f} ms"
        )
