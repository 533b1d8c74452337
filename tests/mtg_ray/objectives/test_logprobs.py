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
