"""ObjectiveConfig: the settings every objective reads; mirrored by configs/objective/default.yaml.

Which objective runs is not a setting of this group: a method (`mtg_ray.objectives.methods`) or
`train.objective` names it, and `Objective` pairs that name with these settings.
"""

from dataclasses import dataclass

IS_LEVELS = ("token", "sequence")
EXPERT_WEIGHTS = ("one", "dft")


@dataclass(frozen=True)
class ObjectiveConfig:
    """How importance weights are formed.

    is_level: token ratios r_t, or one sequence ratio (geometric mean of the token ratios).
    is_clip / is_clip_low: truncation of the weight (TIS). self_normalize: divide weights by
    their mean over the batch's records with behaviour log-probs. expert_weight: weight of
    records without behaviour log-probs in the `is` objective: one (SFT) or dft (detached token
    probability). log_ratio_bound: clamp of log pi_theta - log pi_beta.
    """

    is_level: str = "token"
    is_clip: float = 2.0
    is_clip_low: float = 0.0
    self_normalize: bool = False
    expert_weight: str = "one"
    log_ratio_bound: float = 20.0

    def __post_init__(self) -> None:
        if self.is_level not in IS_LEVELS:
            raise ValueError(
                f"objective.is_level must be one of {IS_LEVELS}, got {self.is_level!r}"
            )
        if self.expert_weight not in EXPERT_WEIGHTS:
            raise ValueError(
                f"objective.expert_weight must be one of {EXPERT_WEIGHTS}, "
                f"got {self.expert_weight!r}"
            )
        if not 0.0 <= self.is_clip_low < self.is_clip:
            raise ValueError(
                f"need 0 <= objective.is_clip_low < objective.is_clip, "
                f"got {self.is_clip_low} and {self.is_clip}"
            )
        if self.log_ratio_bound <= 0:
            raise ValueError(f"objective.log_ratio_bound must be > 0, got {self.log_ratio_bound}")
