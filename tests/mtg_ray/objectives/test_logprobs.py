import torch
import torch.nn.functional as F

from mtg_ray.objectives import IGNORE_INDEX, token_logprobs
from mtg_ray.objectives.logprobs import head_logprobs


def test_matches_naive_and_cross_entropy() -> None:
    torch.manual_seed(0)
    logits = torch.randn(5, 7, 11)
    labels = torch.randint(0, 11, (5, 7))
    naive = torch.log_softmax(logits, -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    ours = token_logprobs(logits, labels, chunk_size=2)
    torch.testing.assert_close(ours, naive)
    ce = F.cross_entropy(logits.reshape(-1, 11), labels.reshape(-1), reduction="none")
    torch.testing.assert_close(ours, -ce.view(5, 7))


def test_ignore_index_gives_zero_and_no_out_of_range() -> None:
    logits = torch.randn(2, 3, 4)
    labels = torch.tensor([[1, IGNORE_INDEX, 3], [IGNORE_INDEX, IGNORE_INDEX, 0]])
    out = token_logprobs(logits, labels)
    assert out[0, 1] == 0 and out[1, 0] == 0 and out[1, 1] == 0
    assert out[0, 0] < 0 and out[1, 2] < 0


def test_bf16_logits_are_computed_in_float32() -> None:
    logits = torch.randn(2, 3, 50) * 30
    labels = torch.randint(0, 50, (2, 3))
    out = token_logprobs(logits.bfloat16(), labels)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, token_logprobs(logits.bfloat16().float(), labels))


def test_gradcheck() -> None:
    logits = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([[0, 4, IGNORE_INDEX], [2, 2, 1]])
    assert torch.autograd.gradcheck(lambda x: token_logprobs(x, labels, chunk_size=1), (logits,))


def test_head_logprobs_equal_full_logits_in_value_and_gradient() -> None:
    """Chunked through the head (logits recomputed in backward) = log-softmax of the full
    logits, for every chunk size, with the same gradients for hidden states and head."""
    torch.manual_seed(0)
    hidden = torch.randn(3, 5, 8, dtype=torch.float64, requires_grad=True)
    head = torch.nn.Linear(8, 13, bias=False).double()
    labels = torch.randint(0, 13, (3, 5))
    labels[0, 1] = labels[2, 4] = IGNORE_INDEX
    full = token_logprobs(head(hidden), labels)
    (g_hidden, g_head) = torch.autograd.grad(full.sum(), (hidden, head.weight))
    for chunk in (1, 4, 15, 64):
        ours = head_logprobs(hidden, head, labels, chunk)
        torch.testing.assert_close(ours, full)
        grads = torch.autograd.grad(ours.sum(), (hidden, head.weight))
        torch.testing.assert_close(grads[0], g_hidden)
        torch.testing.assert_close(grads[1], g_head)
    with torch.no_grad():
        torch.testing.assert_close(head_logprobs(hidden, head, labels, 4), full.detach())


class PartitionedHeadStandIn(torch.nn.Linear):
    """A stand-in for a head under DeepSpeed ZeRO-3 (no DeepSpeed here): its weight holds the
    values only while the module runs, and is an empty partition otherwise, as the engine's
    module hooks gather (a collective: counted) and release it."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features, bias=True)
        self.full = self.weight.data.clone()
        self.weight.data = torch.empty(0)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.weight.data = self.full
        try:
            return super().forward(x)
        finally:
            self.weight.data = torch.empty(0)


def test_head_logprobs_run_the_head_as_a_module_as_often_as_asked() -> None:
    """The head's weight is read only inside the head's own forward (a partitioned weight is
    gathered only then), once per chunk; `min_chunks` adds empty runs (so that every rank
    gathers equally often) without changing the result; a head with a bias is applied whole."""
    torch.manual_seed(0)
    hidden = torch.randn(2, 5, 8)
    head = PartitionedHeadStandIn(8, 13)
    labels = torch.randint(0, 13, (2, 5))
    want = torch.log_softmax(hidden @ head.full.t() + head.bias.detach(), -1)
    want = want.gather(-1, labels[..., None])[..., 0]
    with torch.no_grad():
        torch.testing.assert_close(head_logprobs(hidden, head, labels, 4), want)
        assert head.calls == 3  # 10 positions, 4 at a time
        torch.testing.assert_close(head_logprobs(hidden, head, labels, 4, min_chunks=5), want)
        assert head.calls == 3 + 5
