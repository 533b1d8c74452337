"""Whether a teacher's samples can train the policy as they are: its token ids must mean what
the policy's mean, since a teacher record's response ids go to the policy unchanged."""

from collections.abc import Mapping


def vocab_mismatch(policy: Mapping[str, int], teacher: Mapping[str, int]) -> str | None:
    """Why the teacher's token-to-id mapping cannot feed the policy, or None when it can: every
    token the teacher can emit must be the policy's with the same id (the policy's vocabulary
    may hold more, e.g. padding rows)."""
    missing = [t for t in teacher if t not in policy]
    if missing:
        return (
            f"{len(missing)} of the teacher's tokens are not the policy's "
            f"(e.g. {sorted(missing)[0]!r})"
        )
    moved = sorted(t for t, i in teacher.items() if policy[t] != i)
    if moved:
        t = moved[0]
        return (
            f"{len(moved)} shared tokens have other ids (e.g. {t!r}: teacher {teacher[t]}, "
            f"policy {policy[t]})"
        )
    return None
