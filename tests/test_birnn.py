import pytest
import torch

from deeprel.model.birnn import BiRNNStack


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("depth", [1, 2])
def test_output_size_and_shape(cell: str, depth: int) -> None:
    stack = BiRNNStack(10, 7, depth, cell, dropout=0.1)  # type: ignore[arg-type]
    x = torch.randn(3, 5, 10)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    out = stack(x, mask)
    assert stack.output_size == 14
    assert out.shape == (3, 5, 14)
    assert torch.all(out[~mask] == 0)


def test_depth_zero_is_identity() -> None:
    stack = BiRNNStack(10, 7, 0, "gru", dropout=0.9).train()
    x = torch.randn(2, 4, 10)
    mask = torch.ones(2, 4, dtype=torch.bool)
    assert stack.output_size == 10
    assert stack(x, mask) is x
    assert sum(p.numel() for p in stack.parameters()) == 0


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_padding_invariance(cell: str) -> None:
    torch.manual_seed(0)
    stack = BiRNNStack(6, 5, 2, cell, dropout=0.5).eval()  # type: ignore[arg-type]
    lengths = [4, 7, 2]
    sentences = [torch.randn(n, 6) for n in lengths]
    batch = torch.zeros(3, 7, 6)
    mask = torch.zeros(3, 7, dtype=torch.bool)
    for b, sentence in enumerate(sentences):
        batch[b, : len(sentence)] = sentence
        batch[b, len(sentence) :] = 100.0  # garbage in the padding must not leak in
        mask[b, : len(sentence)] = True
    batched = stack(batch, mask)
    for b, sentence in enumerate(sentences):
        alone = stack(sentence.unsqueeze(0), torch.ones(1, len(sentence), dtype=torch.bool))
        torch.testing.assert_close(batched[b, : len(sentence)], alone[0])


def test_dropout_before_each_layer_only_in_training() -> None:
    stack = BiRNNStack(4, 3, 1, "gru", dropout=0.5)
    x = torch.randn(2, 3, 4)
    mask = torch.ones(2, 3, dtype=torch.bool)
    stack.eval()
    torch.testing.assert_close(stack(x, mask), stack(x, mask))
    stack.train()
    torch.manual_seed(1)
    a = stack(x, mask)
    torch.manual_seed(2)
    assert not torch.allclose(a, stack(x, mask))


def test_gradient_flows_to_input() -> None:
    stack = BiRNNStack(4, 3, 2, "lstm", dropout=0.0)
    x = torch.randn(2, 3, 4, requires_grad=True)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    stack(x, mask).sum().backward()
    assert x.grad is not None
    assert torch.all(x.grad[1, 2] == 0)  # a padded input gets no gradient
    assert torch.any(x.grad[1, :2] != 0)
