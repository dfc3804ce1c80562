"""PPO clipped surrogate, aggregations and KL estimators against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from infopo.core.policy_loss import KL_ESTIMATORS, LOSS_AGGREGATIONS, policy_loss

TOL = 1e-5

# Six tokens, eps 0.2, dual clip c = 3; x = logp - old_logp, ratio = e^x:
#  A=+1, x=+0.5: ratio 1.648721, -A r = -1.648721, -A clip = -1.2      -> max -1.2 (clipped)
#  A=+1, x=-0.5: ratio 0.606531, -A r = -0.606531, -A clip = -0.8      -> -0.606531
#  A=-1, x=+0.5: -A r = 1.648721, -A clip = 1.2 -> 1.648721; dual min(., 3) = 1.648721
#  A=-1, x=+1.5: ratio 4.481689, -A r = 4.481689 -> dual clip: min(4.481689, 3) = 3
#  A=-2, x=-0.5: -A r = 1.213061, -A clip = 2 * 0.8 = 1.6             -> max 1.6 (clipped)
#  A=+0.5, x=0:  -0.5
# token-mean = (-1.2 - 0.606531 + 1.648721 + 3 + 1.6 - 0.5) / 6 = 3.942190 / 6 = 0.657032
# clip_fraction: tokens 1 and 5 take the clipped branch -> 2/6
# approx_kl = mean(e^x - 1 - x) = (0.148721 + 0.106531 + 0.148721 + 1.981689 + 0.106531 + 0) / 6 = 0.415365
X = [0.5, -0.5, 0.5, 1.5, -0.5, 0.0]
A = [1.0, 1.0, -1.0, -1.0, -2.0, 0.5]


def clip_case(dual_clip: float | None = 3.0) -> tuple[torch.Tensor, dict[str, float]]:
    old = torch.full((1, 6), -1.0)
    logp = old + torch.tensor([X])
    mask = torch.ones(1, 6, dtype=torch.bool)
    return policy_loss(logp, old, torch.tensor([A]), mask, dual_clip=dual_clip)


def test_clip_and_dual_clip_by_hand() -> None:
    loss, metrics = clip_case()
    per_token = [-1.2, -math.exp(-0.5), math.exp(0.5), 3.0, 1.6, -0.5]
    assert float(loss) == pytest.approx(sum(per_token) / 6, abs=TOL)
    assert float(loss) == pytest.approx(0.657032, abs=TOL)
    assert metrics["pg_loss"] == pytest.approx(0.657032, abs=TOL)
    assert metrics["clip_fraction"] == pytest.approx(2 / 6)
    assert metrics["approx_kl"] == pytest.approx(sum(math.exp(x) - 1 - x for x in X) / 6, abs=TOL)
    assert metrics["approx_kl"] == pytest.approx(0.415365, abs=TOL)


def test_dual_clip_disabled() -> None:
    # token 4 keeps -A r = e^1.5 = 4.481689: (3.942190 - 3 + 4.481689) / 6 = 0.903980
    loss, _ = clip_case(dual_clip=None)
    assert float(loss) == pytest.approx((3.942190 - 3 + math.exp(1.5)) / 6, abs=TOL)


def test_asymmetric_clip() -> None:
    # clip_high 0.28: token 1 -> -A clip = -1.28 (still below r = 1.648721, so clipped);
    # clip_low 0.1: token 5 -> 2 * 0.9 = 1.8. Sum 3.942190 - 0.08 + 0.2 = 4.062190 -> / 6 = 0.677032
    old = torch.full((1, 6), -1.0)
    mask = torch.ones(1, 6, dtype=torch.bool)
    loss, _ = policy_loss(old + torch.tensor([X]), old, torch.tensor([A]), mask, clip_low=0.1, clip_high=0.28)
    assert float(loss) == pytest.approx(4.062190 / 6, abs=TOL)


# values [[1, 2, x, x], [3, 4, 5, x]] (x = unmasked):
#   token-mean 15 / 5 = 3; seq-mean-token-mean (1.5 + 4) / 2 = 2.75;
#   seq-mean-token-sum-norm (3 / 4 + 12 / 4) / 2 = 1.875 with L = 4, (3 / 10 + 12 / 10) / 2 = 0.75 with 10
VALUES = torch.tensor([[1.0, 2.0, 99.0, 99.0], [3.0, 4.0, 5.0, 99.0]])
MASK = torch.tensor([[True, True, False, False], [True, True, True, False]])


@pytest.mark.parametrize(
    ("aggregation", "norm_length", "expected"),
    [
        ("token-mean", None, 3.0),
        ("seq-mean-token-mean", None, 2.75),
        ("seq-mean-token-sum-norm", None, 1.875),
        ("seq-mean-token-sum-norm", 10, 0.75),
    ],
)
def test_aggregations_by_hand(aggregation: str, norm_length: int | None, expected: float) -> None:
    assert float(LOSS_AGGREGATIONS.get(aggregation)(VALUES, MASK, norm_length)) == pytest.approx(expected)
    # through policy_loss: ratio 1 and A = -values give per-token loss = values
    logp = torch.zeros_like(VALUES)
    loss, metrics = policy_loss(
        logp, logp, -VALUES, MASK, aggregation=aggregation, norm_length=norm_length, dual_clip=None
    )
    assert float(loss) == pytest.approx(expected)
    assert metrics["pg_loss"] == pytest.approx(expected)
    assert metrics["clip_fraction"] == 0.0


def test_seq_mean_token_mean_skips_empty_sequences() -> None:
    # row 0 [1, 3] and an empty row 1: token mean of row 0 = 2, row 1 skipped -> 2;
    # token-sum-norm keeps both rows: (4 / 2 + 0 / 2) / 2 = 1
    values = torch.tensor([[1.0, 3.0], [7.0, 7.0]])
    mask = torch.tensor([[True, True], [False, False]])
    assert float(LOSS_AGGREGATIONS.get("seq-mean-token-mean")(values, mask, None)) == pytest.approx(2.0)
    assert float(LOSS_AGGREGATIONS.get("seq-mean-token-sum-norm")(values, mask, None)) == pytest.approx(1.0)


def test_kl_estimators_by_hand() -> None:
    # logp [-1, -2], ref [-1.5, -1]: k1 = [0.5, -1]; k3 with d = ref - logp = [-0.5, 1]:
    # e^-0.5 + 0.5 - 1 = 0.106531, e^1 - 1 - 1 = 0.718282
    logp, ref = torch.tensor([[-1.0, -2.0]]), torch.tensor([[-1.5, -1.0]])
    assert KL_ESTIMATORS.get("k1")(logp, ref)[0].tolist() == pytest.approx([0.5, -1.0])
    k3 = [math.exp(-0.5) - 0.5, math.e - 2]
    assert KL_ESTIMATORS.get("k3")(logp, ref)[0].tolist() == pytest.approx(k3)
    assert k3 == pytest.approx([0.106531, 0.718282], abs=1e-6)

    # ratio 1, A = [1, 1] -> pg = -1; loss = -1 + 0.1 * mean(kl)
    mask = torch.ones(1, 2, dtype=torch.bool)
    adv = torch.ones(1, 2)
    for name, kl_mean in [("k1", -0.25), ("k3", sum(k3) / 2)]:
        loss, metrics = policy_loss(logp, logp, adv, mask, ref_logp=ref, kl_coef=0.1, kl_estimator=name)
        assert float(loss) == pytest.approx(-1 + 0.1 * kl_mean, abs=TOL)
        assert metrics["kl"] == pytest.approx(kl_mean, abs=TOL)


def test_entropy_bonus() -> None:
    # pg -1 (ratio 1, A = 1); entropy token-mean (1 + 2) / 2 = 1.5 -> loss = -1 - 0.01 * 1.5 = -1.015
    logp = torch.zeros(1, 3)
    mask = torch.tensor([[True, True, False]])
    entropy = torch.tensor([[1.0, 2.0, 50.0]])
    loss, metrics = policy_loss(logp, logp, torch.ones(1, 3), mask, entropy=entropy, entropy_coef=0.01)
    assert float(loss) == pytest.approx(-1.015)
    assert metrics["entropy"] == pytest.approx(1.5)


def test_gradient_only_through_masked_tokens() -> None:
    # Masked tokens: (A=1, x=0) inside the clip range -> d/dlogp (-A e^x) / 3 = -1/3;
    # (A=1, x=0.5) clipped -> 0; (A=-1, x=1.5) dual-clipped -> 0. Unmasked tokens hold NaN / -inf
    # padding and must get an exact 0 gradient (no NaN).
    old = torch.tensor([[-1.0, -1.0, -1.0, -math.inf, math.nan]])
    logp = torch.tensor([[-1.0, -0.5, 0.5, -math.inf, 0.0]], requires_grad=True)
    adv = torch.tensor([[1.0, 1.0, -1.0, math.nan, 2.0]])
    ref = torch.tensor([[-1.0, -0.5, 0.5, math.nan, math.nan]])
    mask = torch.tensor([[True, True, True, False, False]])
    loss, _ = policy_loss(logp, old, adv, mask, ref_logp=ref, kl_coef=0.5)
    loss.backward()
    assert logp.grad is not None
    assert torch.isfinite(loss)
    assert logp.grad[0].tolist() == pytest.approx([-1 / 3, 0.0, 0.0, 0.0, 0.0], abs=1e-7)


def test_errors() -> None:
    logp = torch.zeros(2, 3)
    mask = torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="mask selects no tokens"):
        policy_loss(logp, logp, logp, torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="advantages shape"):
        policy_loss(logp, logp, torch.zeros(2, 4), mask)
    with pytest.raises(ValueError, match="bool"):
        policy_loss(logp, logp, logp, mask.float())
    with pytest.raises(ValueError, match="dual_clip"):
        policy_loss(logp, logp, logp, mask, dual_clip=1.0)
    with pytest.raises(ValueError, match="entropy"):
        policy_loss(logp, logp, logp, mask, entropy_coef=0.01)
    with pytest.raises(ValueError, match="ref_logp"):
        policy_loss(logp, logp, logp, mask, kl_coef=0.1)
    with pytest.raises(KeyError, match="Did you mean 'token-mean'"):
        policy_loss(logp, logp, logp, mask, aggregation="token-means")
    with pytest.raises(KeyError, match="KL estimator"):
        policy_loss(logp, logp, logp, mask, ref_logp=logp, kl_estimator="k2")
