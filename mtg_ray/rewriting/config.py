"""RewriteConfig: the three-stage rewriting (`rewrite:` in configs/tiny.yaml)."""

from dataclasses import dataclass

from mtg_ray.checks import ConfigError, at_least, require
from mtg_ray.rewriting.stages import ScreenConfig, SelectionConfig, mask_answer
from mtg_ray.rollout import SamplingConfig

GUIDED_REFERENCES = ("full", "masked_answer")
REWRITERS = ("policy", "teacher", "distill")
# Keys added after rewrites and runs were kept, with the value every earlier one had: left out
# of rewrite manifests and of a run's settings at that value, so those still match.
LATER_REWRITE_DEFAULTS = {"rewriter": "policy", "teacher_after_guided": False}
VERIFY = ("answer", "steps")


@dataclass(frozen=True)
class RewriteConfig:
    """samples / guided_samples: K per problem in stages 1 and 2, sampled at temperature /
    top_p, up to max_tokens each. keep: one | all | up_to (max_per_problem) correct samples per
    problem. shard_size: problems per output shard (the unit of resume). grading_tasks: parallel
    grading tasks. seed: selection of the kept samples. copy_ngram / copy_max_share: a guided
    sample with at least that share of its word n-grams in the reference copied it and fails
    (`ScreenConfig`; a sample without EOS is never kept either). one_call: sample both stages
    of every problem in one generate call, the guided samples used only where stage 1 fails
    (one wait instead of two; guided samples are drawn for problems stage 1 solves too).
    guided_reference: what stage 2's prompt shows, the expert solution in `full` or with its
    final answer masked (`masked_answer`: `stages.mask_answer`). leak_threshold: if set, a
    correct guided sample whose `leak_score` (mean per-token log pi(y|x) - log pi(y|x, ref),
    from one scoring pass on the plain prompt) is below it fails as leaked. verify: what makes
    a sample correct, its final `answer` (the paper; every real dataset) or also its `steps`
    (the tiny world's step check: an oracle no real setting has, offered as an upper bound).
    rewriter: who re-solves what the policy's self stage misses: `policy` (the paper: the
    policy shown the reference), `teacher` (the teacher model shown the reference, in the
    policy's place; with `teacher_after_guided`, after the policy's guided stage, for what it
    still misses) or `distill` (the teacher in both stages: its own solutions, then its guided
    ones; no policy sample). The expert demonstration stays the last fallback."""

    samples: int = 4
    guided_samples: int = 4
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 320
    keep: str = "one"
    max_per_problem: int = 1
    shard_size: int = 1000
    grading_tasks: int = 2
    seed: int = 0
    copy_ngram: int = 4
    copy_max_share: float = 0.5
    one_call: bool = False
    guided_reference: str = "full"
    leak_threshold: float | None = None
    verify: str = "answer"
    rewriter: str = "policy"
    teacher_after_guided: bool = False

    def __post_init__(self) -> None:
        at_least("rewrite.samples", self.samples, 1)
        at_least("rewrite.guided_samples", self.guided_samples, 0)
        at_least("rewrite.temperature", self.temperature, 0)
        require(0 < self.top_p <= 1, "rewrite.top_p", self.top_p, "must be in (0, 1]")
        at_least("rewrite.max_tokens", self.max_tokens, 1)
        at_least("rewrite.shard_size", self.shard_size, 1)
        at_least("rewrite.grading_tasks", self.grading_tasks, 1)
        at_least("rewrite.copy_ngram", self.copy_ngram, 1)
        require(
            0 < self.copy_max_share <= 1, "rewrite.copy_max_share", self.copy_max_share,
            "must be in (0, 1]",
        )  # fmt: skip
        require(
            self.guided_reference in GUIDED_REFERENCES, "rewrite.guided_reference",
            self.guided_reference, f"must be one of {GUIDED_REFERENCES}",
        )  # fmt: skip
        require(self.verify in VERIFY, "rewrite.verify", self.verify, f"must be one of {VERIFY}")
        require(self.rewriter in REWRITERS, "rewrite.rewriter", self.rewriter,
                f"must be one of {REWRITERS}")  # fmt: skip
        require(
            not self.teacher_after_guided or self.rewriter == "teacher",
            "rewrite.teacher_after_guided", self.teacher_after_guided,
            "needs rewrite.rewriter=teacher (the policy's guided stage, then the teacher's)",
        )  # fmt: skip
        try:
            self.selection()  # validates keep and max_per_problem
        except ValueError as e:
            raise ConfigError(f"rewrite.keep={self.keep!r}, max_per_problem: {e}") from None

    def selection(self) -> SelectionConfig:
        return SelectionConfig(keep=self.keep, max_per_problem=self.max_per_problem, seed=self.seed)

    def reference(self, expert_solution: str) -> str:
        """What stage 2's prompt shows of `expert_solution` (guided_reference)."""
        return (
            mask_answer(expert_solution)
            if self.guided_reference == "masked_answer"
            else (expert_solution)
        )

    def screen(self) -> ScreenConfig:
        return ScreenConfig(copy_ngram=self.copy_ngram, copy_max_share=self.copy_max_share)

    def sampling(self, n: int) -> SamplingConfig:
        """Stage 1 (n = samples) and stage 2 (n = guided_samples) requests."""
        return SamplingConfig(
            n=n, temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens
        )

    @property
    def uses_teacher(self) -> bool:
        return self.rewriter != "policy"

    def stages(self) -> tuple[str, ...]:
        """The sampling stages in order, before the expert fallback: `self` and `guided`
        (the policy, plain and shown the reference), `teacher_self` and `teacher` (the
        teacher, the same two ways)."""
        if self.rewriter == "distill":
            return ("teacher_self", "teacher")
        if self.rewriter == "teacher":
            return (
                ("self", "guided", "teacher") if self.teacher_after_guided else ("self", "teacher")
            )
        return ("self", "guided")
