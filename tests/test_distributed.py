"""Data parallel: `torchrun --nproc_per_node 2` (gloo, CPU) makes the same updates as one process with the
same global batch, for full fine-tuning with InfoPO and for LoRA with a KL term and two PPO epochs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from toy import logged_metrics

HERE = Path(__file__).parent
SCRIPT = HERE / "run_distributed_steps.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(command: list[str], output: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert (output / "params.pt").is_file()


@pytest.mark.parametrize("variant", ["full-infopo", "lora-grpo-kl"])
def test_two_processes_make_the_update_of_one(tmp_path: Path, variant: str) -> None:
    alone, pair = tmp_path / "alone", tmp_path / "pair"
    _run([sys.executable, str(SCRIPT), str(alone), variant], alone)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    torchrun += ["--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    _run([*torchrun, str(SCRIPT), str(pair), variant], pair)

    one, two = torch.load(alone / "params.pt"), torch.load(pair / "params.pt")
    assert one.keys() == two.keys() and one
    initial = torch.load(alone / "initial.pt")
    moved = max(float((one[n] - initial[n]).abs().max()) for n in one)
    assert moved > 1e-3  # the two steps did move the weights
    for name in one:  # Adam's first steps move each weight by ~lr: float-level gradient noise stays tiny
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=moved * 1e-2, msg=name)

    first, second = logged_metrics(alone), logged_metrics(pair)
    assert [row["step"] for row in first] == [row["step"] for row in second] == [0, 1]
    for a, b in zip(first, second, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), key
