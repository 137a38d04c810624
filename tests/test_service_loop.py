"""The batched loop's collecting step (service/loop.py), on a real queue, without a server."""

from __future__ import annotations

import threading
import time
from queue import Queue
from types import SimpleNamespace

import pytest

pytest.importorskip("litserve", reason="the serve extra is not installed")

from litserve.loops import BatchedLoop
from litserve.loops.base import _SENTINEL_VALUE, _StopLoopError

from service import loop as loop_module
from service.loop import BlockingBatchedLoop, make_loop


class RecordingTransport:
    def __init__(self):
        self.sent = []

    def send(self, item, consumer_id):
        self.sent.append((consumer_id, item))


def api(max_batch_size: int = 4, batch_timeout: float = 0.0, request_timeout: float = 30.0):
    return SimpleNamespace(
        max_batch_size=max_batch_size,
        batch_timeout=batch_timeout,
        request_timeout=request_timeout,
        stream=False,
    )


def request(uid: str, age: float = 0.0) -> tuple:
    return (0, uid, time.monotonic() - age, {"text": uid})


@pytest.fixture(autouse=True)
def short_idle_wait(monkeypatch):
    monkeypatch.setattr(loop_module, "IDLE_WAIT_SECONDS", 0.05)


def test_make_loop_names_both_loops():
    assert type(make_loop("blocking")) is BlockingBatchedLoop
    assert type(make_loop("litserve")) is BatchedLoop
    with pytest.raises(ValueError, match="unknown loop"):
        make_loop("spin")


def test_an_empty_queue_gives_an_empty_batch_after_waiting_not_polling():
    started = time.monotonic()
    cpu_started = time.process_time()
    batch, timed_out = BlockingBatchedLoop().get_batch_requests(api(), Queue(), RecordingTransport())
    assert (batch, timed_out) == ([], [])
    assert time.monotonic() - started >= 0.04  # it waited for a request ...
    assert time.process_time() - cpu_started < 0.03  # ... asleep


def test_takes_what_is_queued_in_order_up_to_max_batch_size():
    queue: Queue = Queue()
    for uid in "abcde":
        queue.put(request(uid))
    loop, transport = BlockingBatchedLoop(), RecordingTransport()
    first, _ = loop.get_batch_requests(api(max_batch_size=3), queue, transport)
    second, _ = loop.get_batch_requests(api(max_batch_size=3), queue, transport)
    assert [uid for _, uid, _ in first] == ["a", "b", "c"]
    assert [uid for _, uid, _ in second] == ["d", "e"]
    assert first[0] == (0, "a", {"text": "a"})  # (response queue id, uid, payload), as LitServe's


def test_a_positive_batch_timeout_waits_for_late_requests():
    queue: Queue = Queue()
    queue.put(request("early"))
    threading.Timer(0.05, queue.put, args=(request("late"),)).start()
    settings = api(batch_timeout=1.0, max_batch_size=2)
    batch, _ = BlockingBatchedLoop().get_batch_requests(settings, queue, RecordingTransport())
    assert [uid for _, uid, _ in batch] == ["early", "late"]


def test_with_no_batch_timeout_a_lone_request_goes_at_once():
    queue: Queue = Queue()
    queue.put(request("alone"))
    started = time.monotonic()
    batch, _ = BlockingBatchedLoop().get_batch_requests(api(batch_timeout=0.0), queue, RecordingTransport())
    assert [uid for _, uid, _ in batch] == ["alone"]
    assert time.monotonic() - started < 0.04  # did not wait out IDLE_WAIT_SECONDS


def test_requests_older_than_the_request_timeout_are_timed_out():
    queue: Queue = Queue()
    queue.put(request("stale", age=5.0))
    queue.put(request("fresh"))
    batch, timed_out = BlockingBatchedLoop().get_batch_requests(
        api(request_timeout=1.0), queue, RecordingTransport()
    )
    assert [uid for _, uid, _ in batch] == ["fresh"]
    assert timed_out == [(0, "stale")]


def test_the_sentinel_stops_the_loop():
    queue: Queue = Queue()
    queue.put(_SENTINEL_VALUE)
    with pytest.raises(_StopLoopError):
        BlockingBatchedLoop().get_batch_requests(api(), queue, RecordingTransport())


class FailingQueue:
    def __init__(self, error: BaseException):
        self.error = error

    def get(self, timeout=None):
        raise self.error

    def get_nowait(self):
        raise self.error


@pytest.mark.parametrize(
    "error", [KeyboardInterrupt(), EOFError(), BrokenPipeError(), ConnectionResetError()]
)
def test_ctrl_c_or_a_vanished_queue_stops_the_loop_quietly(error):
    with pytest.raises(_StopLoopError):
        BlockingBatchedLoop().get_batch_requests(api(), FailingQueue(error), RecordingTransport())
