"""The teacher's token ids must be the policy's on every token it can emit."""

from mtg_ray.rewriting.teacher import vocab_mismatch


def test_the_same_ids_and_a_larger_policy_vocabulary_pass() -> None:
    teacher = {"a": 0, "b": 1, "<|im_end|>": 2}
    assert vocab_mismatch(teacher, teacher) is None
    assert vocab_mismatch({**teacher, "<pad_7>": 3}, teacher) is None


def test_a_moved_or_foreign_token_is_named() -> None:
    policy = {"a": 0, "b": 1, "c": 2}
    moved = vocab_mismatch(policy, {"a": 0, "b": 2, "c": 1})
    assert moved is not None and "2 shared tokens" in moved and "'b': teacher 2, policy 1" in moved
    foreign = vocab_mismatch(policy, {"a": 0, "zz": 1})
    assert foreign is not None and "1 of the teacher's tokens" in foreign and "'zz'" in foreign
