"""What every job starts from: Ray (joined or started), the tiny world when the config uses it,
the resolved policy, its tokenizer, and the problem sets, read once per run."""

import dataclasses
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayActorError
from transformers import AutoTokenizer

from mtg_ray import netns
from mtg_ray.checks import ConfigError
from mtg_ray.config import JobConfig, check_paths
from mtg_ray.data import Problem, Record, read_sft_parquet
from mtg_ray.gpu_plan import check_fits, gpu_plan
from mtg_ray.grading import Grader
from mtg_ray.pipelines.groups.cluster import SharedGpus, init_local_ray, node_gpus
from mtg_ray.pipelines.groups.grading import grade_parallel
from mtg_ray.pipelines.groups.learner_group import LearnerGroup
from mtg_ray.pipelines.groups.rollout_group import RolloutGroup
from mtg_ray.pipelines.jobs.evaluate import load_eval_sets
from mtg_ray.pipelines.jobs.rewrite import Teacher, expert_records
from mtg_ray.rewriting import RewriteConfig
from mtg_ray.rewriting.prompts import PromptTemplate, end_token_id, get_template
from mtg_ray.rewriting.teacher import vocab_mismatch
from mtg_ray.tinyworld import World, build_world, recipe_hash
from mtg_ray.tinyworld.faithful import is_faithful
from mtg_ray.tinyworld.store import default_cache_root


@dataclass
class KeptLearner:
    """The learner group a run keeps across its trainings (one object shared by the copies
    `dataclasses.replace` makes of a Run, so they keep the same group), and the GPUs it
    shares with the rollout group under `resources.gpu_mode=colocate` (placed by `groups`)."""

    group: LearnerGroup | None = None
    shared: SharedGpus | None = None

    def close(self, lost_ok: bool = False) -> None:
        """Shut the group down (`lost_ok`: a rank already gone is no error)."""
        group, self.group = self.group, None
        if group is None:
            return
        try:
            group.shutdown()
        except RayActorError:
            if not lost_ok:
                raise


@dataclass
class KeptTeacher:
    """The teacher's engine group, started by the first rewrite that needs it and kept until
    `groups` ends (shared by a Run's copies, as `KeptLearner`)."""

    group: RolloutGroup | None = None

    def close(self) -> None:
        group, self.group = self.group, None
        if group is not None:
            group.shutdown()


@dataclass
class Run:
    """A job's context. `model_path` is the policy both groups start from: `model.path`, or the
    tiny world's base model when that is empty (derived here; the config is left as given)."""

    cfg: JobConfig
    world: World | None
    out: Path
    model_path: str
    tokenizer: Any
    learner: KeptLearner = field(default_factory=KeptLearner, repr=False)
    teacher_path: str = ""  # `teacher.model.path`, or the tiny world's teacher when empty
    teacher_tokenizer: Any = field(default=None, repr=False)
    teachers: KeptTeacher = field(default_factory=KeptTeacher, repr=False)

    @property
    def template(self) -> PromptTemplate:
        return get_template(self.cfg.model.template)

    @property
    def cache_root(self) -> Path:
        """Where the run's tiny world and the rewrites it keeps for other runs live
        (`cache_dir`, else $MTG_RAY_CACHE or ~/.cache/mtg-ray)."""
        return Path(self.cfg.cache_dir) if self.cfg.cache_dir else default_cache_root()

    @cached_property
    def world_hash(self) -> str | None:
        """The recipe hash of the run's tiny world (its recipe.json's; None: the run has none),
        which the records and lr trials it keeps name (`mtg_ray.evaluate.ledger`)."""
        if self.world is None:
            return None
        return json.loads((self.world.root / "recipe.json").read_text())["hash"]

    @cached_property
    def train_problems(self) -> list[Problem]:
        data = self.cfg.data
        if data.train == "tinyworld":
            assert self.world is not None
            problems = self.world.train_problems()
        else:
            problems = read_sft_parquet(data.train)
        return problems[: data.max_train_problems] if data.max_train_problems else problems

    @cached_property
    def eval_sets(self) -> dict[str, list[Problem]]:
        return load_eval_sets(self.cfg.data.test, self.world, self.cfg.data.max_test_problems)

    @cached_property
    def expert(self) -> list[Record]:
        """The raw SFT data: every train problem's expert demonstration as a record."""
        return expert_records(self.train_problems, self.tokenizer, self.template)

    def steps_check(self) -> Callable[[str, str], bool] | None:
        """The tiny world's step-by-step check of a response's reasoning, given the problem's
        expert solution (`tinyworld.faithful.is_faithful`), when the run trains on the tiny
        world; None for other data, which has no such oracle."""
        if self.world is None or self.cfg.data.train != "tinyworld":
            return None
        return is_faithful

    def faithful(self) -> Callable[[Record], bool] | None:
        """`steps_check` on a kept record."""
        check = self.steps_check()
        if check is None:
            return None
        return lambda record: check(record.expert_solution, record.response)

    def grader(self) -> Grader:
        """Grade (response, answer) pairs in `rewrite.grading_tasks` parallel Ray tasks."""
        return lambda pairs: grade_parallel(pairs, self.cfg.rewrite.grading_tasks)

    def teacher(self, rewrite: RewriteConfig) -> Teacher | None:
        """The teacher for a rewrite of `rewrite` (None when it uses none): its engine group
        (started on first use, on `teacher.*`'s engines; never weight-synced), format,
        tokenizer and sampling."""
        if not rewrite.uses_teacher:
            return None
        cfg = self.cfg.teacher
        template = get_template(cfg.model.template)

        def group() -> RolloutGroup:
            if self.teachers.group is None:
                self.teachers.group = RolloutGroup(
                    cfg.engines(self.cfg.rollout), self.teacher_path,
                    [end_token_id(template, self.teacher_tokenizer)],
                )  # fmt: skip
            return self.teachers.group

        return Teacher(group, template, self.teacher_tokenizer, cfg.sampling())

    def learner_group(self, total_steps: int, lr: float | None = None) -> LearnerGroup:
        """A learner group on the base policy, its lr schedule `total_steps` long, peaking at
        `lr` (default `learner.lr`): the run's kept group started over (`LearnerGroup.restart`:
        the same as a new one, without starting processes), or a new one the first time, after
        a config that needs other ranks, or after a rank was lost. It stays up until `groups`
        ends (or `learner.close()`)."""
        cfg = self.cfg.learner if lr is None else dataclasses.replace(self.cfg.learner, lr=lr)
        steps = max(1, total_steps)
        kept = self.learner.group
        if kept is not None and kept.can_restart(cfg):
            try:
                kept.restart(cfg, self.model_path, steps)
                return kept
            except RayActorError:
                pass  # a rank is gone (its node, its process): start a new group below
        self.learner.close(lost_ok=True)
        self.learner.group = LearnerGroup(cfg, self.model_path, steps, self.learner.shared)
        return self.learner.group


def enter_private_network(cfg: JobConfig) -> None:
    """What an entry script does first: a local run (no `resources.address`) with
    `resources.private_network` re-executes itself in a private network namespace."""
    if cfg.resources.private_network and not cfg.resources.address:
        netns.enter()


def uses_world(cfg: JobConfig) -> bool:
    """Whether a run of `cfg` opens the tiny world: for its base model (no `model.path`), its
    teacher (no `teacher.model.path`), its train data or a test set."""
    return (
        not cfg.model.path or (cfg.uses_teacher() and not cfg.teacher.model.path)
        or cfg.data.train == "tinyworld" or "tinyworld" in cfg.data.test
    )  # fmt: skip


def world_hash(cfg: JobConfig) -> str | None:
    """The recipe hash of the tiny world a run of `cfg` opens (`start`; its `Run.world_hash`),
    without opening it; None when it opens none."""
    return recipe_hash(cfg.world) if uses_world(cfg) else None


def start(cfg: JobConfig) -> Run:
    """Check the config's paths, then join or start Ray, build (or load) the tiny world when
    the config uses it."""
    check_paths(cfg)
    res = cfg.resources
    if not ray.is_initialized():
        if res.address:
            ray.init(address=res.address, log_to_driver=False)
        else:
            init_local_ray(res.num_cpus or None, res.host)
    plan = gpu_plan(cfg.rollout, cfg.learner, res.gpu_mode, teacher_gpus(cfg))
    if plan is not None and not res.autoscaler:
        check_fits(plan, node_gpus())  # before any model loads: Ray would wait for ever
    world = None
    if uses_world(cfg):
        world = build_world(cfg.world, cfg.cache_dir or None, log=print)
        print(f"tiny world: {world.root}")
    if cfg.model.path:
        model_path = cfg.model.path
    else:
        assert world is not None
        model_path = str(world.model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    teacher_path, teacher_tokenizer = "", None
    if cfg.uses_teacher():
        teacher_path = cfg.teacher.model.path or str(world.teacher_dir if world else "")
        if not cfg.teacher.model.path and not Path(teacher_path).is_dir():
            raise ConfigError(
                f"teacher.model.path is empty and the tiny world at {world.root if world else '-'}"
                " has no teacher (worlds before tinyworld-3): give a teacher folder"
            )
        teacher_tokenizer = AutoTokenizer.from_pretrained(teacher_path)
        why = vocab_mismatch(tokenizer.get_vocab(), teacher_tokenizer.get_vocab())
        ends = (
            end_token_id(get_template(cfg.model.template), tokenizer),
            end_token_id(get_template(cfg.teacher.model.template), teacher_tokenizer),
        )
        if not why and ends[0] != ends[1]:  # the policy would learn to end where it never stops
            why = f"its responses end with token {ends[1]}, the policy's format with {ends[0]}"
        if why:
            raise ConfigError(
                f"teacher.model.path={teacher_path!r}: its token ids are not the policy's "
                f"({why}); a teacher record's response ids train the policy as they are"
            )
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    return Run(cfg, world, out, model_path, tokenizer, teacher_path=teacher_path,
               teacher_tokenizer=teacher_tokenizer)  # fmt: skip


def teacher_gpus(cfg: JobConfig) -> int:
    """The GPUs the teacher's engines hold when a job of `cfg` starts them."""
    t = cfg.teacher
    return (
        t.num_engines * t.tensor_parallel_size if cfg.uses_teacher() and t.device == "cuda" else 0
    )


@contextmanager
def groups(run: Run) -> Iterator[RolloutGroup]:
    """The run's groups for the block: yields the rollout group, on the base policy; the
    learner group is started by the block's first training and kept across the others
    (`Run.learner_group`). Both are shut down on exit."""
    cfg = run.cfg
    plan = gpu_plan(cfg.rollout, cfg.learner, cfg.resources.gpu_mode)
    shared = run.learner.shared = SharedGpus.place(plan) if plan and plan.shared_bundles else None
    try:
        group = RolloutGroup(
            cfg.rollout, run.model_path, [end_token_id(run.template, run.tokenizer)], shared
        )
        try:
            yield group
        finally:
            try:
                try:
                    run.learner.close()
                finally:
                    run.teachers.close()
            finally:
                group.shutdown()
    finally:
        if shared is not None:
            run.learner.shared = None
            shared.remove()
