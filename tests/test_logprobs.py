"""Chunked log-probs against the plain full-vocabulary log-softmax, values and gradients."""

from __future__ import annotations

import pytest
import torch

from infopo.core.logprobs import logprobs_from_hidden


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 100])
def test_chunked_logprobs_match_full_softmax(chunk_size: int) -> None:
    torch.manual_seed(0)
    hidden = torch.randn(10, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=True)
    targets = torch.randint(0, 50, (10,))
    logp, entropy = logprobs_from_hidden(
        hidden, weight, targets, chunk_size=chunk_size, temperature=0.7, with_entropy=True
    )
    full = torch.log_softmax(hidden @ weight.T / 0.7, dim=-1)
    expected = full[torch.arange(10), targets]
    expected_entropy = -(full.exp() * full).sum(-1)
    assert torch.allclose(logp, expected, atol=1e-6)
    assert torch.allclose(entropy, expected_entropy, atol=1e-5)
    # gradients through the checkpointed chunks equal the full computation's
    grad_h, grad_w = torch.autograd.grad((logp * torch.arange(10.0)).sum() + entropy.sum(), (hidden, weight))
    ref_h, ref_w = torch.autograd.grad(
        (expected * torch.arange(10.0)).sum() + expected_entropy.sum(), (hidden, weight)
    )
    assert torch.allclose(grad_h, ref_h, atol=1e-5) and torch.allclose(grad_w, ref_w, atol=1e-5)


def test_float64_head() -> None:
    hidden, weight = torch.randn(4, 8), torch.randn(20, 8)
    logp, entropy = logprobs_from_hidden(hidden, weight, torch.tensor([1, 2, 3, 4]), dtype=torch.float64)
    assert logp.dtype == torch.float64 and entropy is None
    expected = torch.log_softmax(hidden.double() @ weight.double().T, -1)[
        torch.arange(4), torch.tensor([1, 2, 3, 4])
    ]
    assert torch.allclose(logp, expected, atol=1e-12)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="rows but targets"):
        logprobs_from_hidden(torch.randn(3, 4), torch.randn(5, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="temperature"):
        logprobs_from_hidden(torch.randn(2, 4), torch.randn(5, 4), torch.tensor([0, 1]), temperature=0.0)
