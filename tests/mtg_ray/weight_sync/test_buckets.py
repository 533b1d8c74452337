import torch

from mtg_ray.weight_sync import bucket_meta, iter_buckets, pack, unpack


def named_tensors() -> list[tuple[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [
        ("a", torch.randn(10, 4, generator=g)),
        ("b", torch.randn(3, generator=g).to(torch.bfloat16)),
        ("c", torch.randint(0, 9, (2, 2, 2), generator=g)),
        ("big", torch.randn(100, generator=g)),
    ]


def test_buckets_respect_the_cap_and_keep_order() -> None:
    buckets = list(iter_buckets(named_tensors(), bucket_bytes=200))
    assert [[n for n, _ in b] for b in buckets] == [["a", "b"], ["c"], ["big"]]
    for b in buckets[:-1]:
        assert sum(t.numel() * t.element_size() for _, t in b) <= 200


def test_iteration_is_lazy() -> None:
    pulled = []

    def source():
        for name, t in named_tensors():
            pulled.append(name)
            yield name, t

    it = iter_buckets(source(), bucket_bytes=200)
    next(it)
    assert pulled == ["a", "b", "c"]  # one tensor past the first bucket, not the whole model


def test_pack_unpack_round_trip_is_bit_exact() -> None:
    bucket = named_tensors()
    meta = bucket_meta(bucket)
    buf = pack(bucket)
    assert buf.dtype == torch.uint8 and buf.numel() == meta.nbytes
    for (name, t), (name2, t2) in zip(bucket, unpack(buf, meta), strict=True):
        assert name == name2 and t2.dtype == t.dtype and torch.equal(t, t2)
