"""tools/execute_notebooks.py, the site build's notebook runner: its waits cannot outlast a missed
wake-up by more than one poll slice."""

import asyncio
import time
from pathlib import Path
from queue import Empty

import nbformat
import pytest
from scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
execute_notebooks = load_script("tools/execute_notebooks.py")


class MissedWakeUpSocket:
    """Holds a message from the start, but its first ``missed`` polls report nothing, as an asyncio
    poll does whose wake-up was lost: it only notices at the end of its timeout."""

    def __init__(self, missed: int):
        self.missed, self.waits_ms = missed, []

    async def poll(self, timeout_ms):
        self.waits_ms.append(timeout_ms)
        if len(self.waits_ms) <= self.missed:
            await asyncio.sleep(timeout_ms / 1000)
            return 0
        return 1


def sliced_channel(socket) -> execute_notebooks.SlicedPollChannel:
    channel = object.__new__(execute_notebooks.SlicedPollChannel)  # no real zmq socket needed
    channel.socket = socket

    async def recv():
        return {"msg_type": "execute_reply"}
    channel._recv = recv
    return channel


def test_a_missed_wake_up_costs_one_slice_not_the_cell_timeout():
    socket = MissedWakeUpSocket(missed=2)
    start = time.monotonic()
    msg = asyncio.run(sliced_channel(socket).get_msg(timeout=600))
    assert msg == {"msg_type": "execute_reply"}
    assert socket.waits_ms == [500, 500, 500]
    assert time.monotonic() - start < 5


def test_an_empty_socket_still_times_out_at_the_deadline():
    socket = MissedWakeUpSocket(missed=10**6)
    start = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(sliced_channel(socket).get_msg(timeout=1.2))
    assert 1.1 < time.monotonic() - start < 3
    assert max(socket.waits_ms) <= 500 and len(socket.waits_ms) >= 3


def test_notebooks_run_through_the_sliced_client(tmp_path):
    manager = execute_notebooks.SlicedPollKernelManager(kernel_name=execute_notebooks.KERNEL)
    assert isinstance(manager.client(), execute_notebooks.SlicedPollKernelClient)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 6 * 7"),
                                         nbformat.v4.new_code_cell("print(x)")])
    nbformat.write(nb, tmp_path / "tiny.ipynb")
    (tmp_path / "out").mkdir()
    seconds, error = execute_notebooks.execute(tmp_path / "tiny.ipynb", tmp_path / "out", 60, None)
    assert error is None
    done = nbformat.read(tmp_path / "out" / "tiny.ipynb", as_version=4)
    assert done.cells[1].outputs[0]["text"] == "42\n"
