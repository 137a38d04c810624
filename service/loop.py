"""LitServe's batched loop, collecting a batch without spinning while the queue is empty.

LitServe 0.2.19's `collate_requests` polls the request queue: with `batch_timeout=0` it calls
`get_nowait()` in a tight loop, and with a positive timeout it calls `get(timeout=0.001)` again and
again. The queue lives in a multiprocessing manager, so every poll is a round trip to the manager
process: an idle server kept one of our two cores busy (the worker and the manager at ~50% each,
measured with top; py-spy showed the worker in `get_nowait` under `collate_requests`), and under
load the polling competes with the requests for the CPU.

`BlockingBatchedLoop` blocks on the first request instead (the manager waits on a condition
variable: no CPU while idle), then takes whatever else is already queued, up to
`max_batch_size`; with a positive `batch_timeout` it also waits up to that long, counted from the
first request, for more. The hooks run exactly as in `BatchedLoop`: only collecting changes. It
uses two private names of litserve (the stop sentinel and its exception), which is why the
`serve` extra pins litserve to one version.
"""

from __future__ import annotations

import time
from queue import Empty, Queue

from litserve.loops import BatchedLoop
from litserve.loops.base import _SENTINEL_VALUE, _StopLoopError
from litserve.utils import LitAPIStatus, LoopResponseType

# What the queue raises while the server shuts down: Ctrl-C reaches every process of the terminal's
# group at once, and the manager holding the queue may go first. The worker then stops quietly,
# as on LitServe's own stop sentinel, instead of printing a traceback.
STOPPING = (KeyboardInterrupt, EOFError, ConnectionError)
IDLE_WAIT_SECONDS = 1.0  # how long one blocking get waits before the loop goes round (idle: once a second)


def make_loop(name: str) -> BatchedLoop:
    """The loop a `loop` setting names: "blocking" (this module's) or "litserve" (LitServe's own)."""
    if name == "blocking":
        return BlockingBatchedLoop()
    if name == "litserve":
        return BatchedLoop()
    raise ValueError(f"unknown loop {name!r}: expected blocking or litserve")


class BlockingBatchedLoop(BatchedLoop):
    def get_batch_requests(self, lit_api, request_queue: Queue, transport) -> tuple[list, list]:
        payloads: list = []
        timed_out: list = []
        try:
            first = request_queue.get(timeout=IDLE_WAIT_SECONDS)
        except Empty:
            return payloads, timed_out
        except STOPPING as exc:
            raise _StopLoopError() from exc
        self._accept(first, lit_api, transport, payloads, timed_out)
        deadline = time.monotonic() + lit_api.batch_timeout
        while len(payloads) + len(timed_out) < lit_api.max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                request = (
                    request_queue.get(timeout=remaining) if remaining > 0 else request_queue.get_nowait()
                )
            except Empty:
                break
            except STOPPING as exc:
                raise _StopLoopError() from exc
            self._accept(request, lit_api, transport, payloads, timed_out)
        return payloads, timed_out

    def _accept(self, request, lit_api, transport, payloads: list, timed_out: list) -> None:
        """As LitServe does for each request taken: stop on the sentinel, acknowledge, check its age."""
        if request == _SENTINEL_VALUE:
            raise _StopLoopError()
        response_queue_id, uid, timestamp, encoded = request
        self.put_response(
            transport=transport,
            response_queue_id=response_queue_id,
            uid=uid,
            response_data=(),
            status=LitAPIStatus.START,
            response_type=LoopResponseType.STREAMING if lit_api.stream else LoopResponseType.REGULAR,
        )
        timeout = lit_api.request_timeout
        if timeout not in (-1, False) and time.monotonic() - timestamp > timeout:
            timed_out.append((response_queue_id, uid))
        else:
            payloads.append((response_queue_id, uid, encoded))
