"""The learner group with real DeepSpeed (gloo, 2 ranks) in real Ray actors, on CPU."""

import dataclasses
import importlib.util
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
import torch
from transformers import AutoModelForCausalLM

from mtg_ray.data import Problem, Record
from mtg_ray.learner import LearnerConfig
from mtg_ray.models.tiny import build_tiny_model, build_tokenizer
from mtg_ray.objectives import OBJECTIVE_NAMES, Objective, ObjectiveConfig
from mtg_ray.paths import REPO_ROOT
from mtg_ray.pipelines.groups.learner_group import LearnerGroup
from mtg_ray.pipelines.groups.rollout_group import RolloutGroup
from mtg_ray.rewriting import SelectionConfig, rewrite
from mtg_ray.rollout import Graded, RolloutConfig, SamplingConfig
from mtg_ray.weight_sync import BucketMeta
from mtg_ray.weight_sync.faults import FirstTensorMislabelled

pytestmark = pytest.mark.slow

SFT = Objective("sft")
IS_DFT = Objective("is_dft")


# The learner tests' config, less what each test overrides.
LEARNER_DEFAULTS: dict[str, Any] = dict(
    num_workers=2,
    zero_stage=2,
    train_batch_size=8,
    micro_batch_size=2,
    lr=1e-3,
    warmup_ratio=0.25,
    max_length=128,
)
LEARNER_STEPS = 8  # the lr schedule's length


@pytest.fixture(scope="module")
def kept_learners(ray_session) -> Iterator[dict[int, LearnerGroup]]:
    """Learner groups by rank count, kept across this module's tests and restarted for each
    (`make_group`): starting a group's ranks costs about 10 s, and a restart is what a new
    group would do (`test_a_restarted_group_trains_as_a_new_one`)."""
    kept: dict[int, LearnerGroup] = {}
    gcs = ray.get_runtime_context().gcs_address
    yield kept
    if ray.is_initialized() and ray.get_runtime_context().gcs_address == gcs:
        for group in kept.values():
            group.shutdown()


@pytest.fixture
def make_group(kept_learners: dict[int, LearnerGroup]) -> Callable[..., LearnerGroup]:
    """`make_group(model, **overrides)`: a learner group on `model` with LEARNER_DEFAULTS and
    `overrides`, as new (a kept group of that many ranks, restarted)."""

    def make(model: Path, **overrides: Any) -> LearnerGroup:
        cfg = LearnerConfig(**{**LEARNER_DEFAULTS, **overrides})
        group = kept_learners.get(cfg.num_workers)
        if group is None or not group.can_restart(cfg):
            if group is not None:
                group.shutdown()
            group = kept_learners[cfg.num_workers] = LearnerGroup(cfg, str(model), LEARNER_STEPS)
        else:
            group.restart(cfg, str(model), LEARNER_STEPS)
        return group

    return make


def hf_scores(model_dir: Path, records: list[Record]) -> list[list[float]]:
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    out = []
    for r in records:
        ids = torch.tensor([r.prompt_token_ids + r.response_token_ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, :-1], -1)
        picked = logp.gather(-1, ids[0, 1:, None])[:, 0]
        out.append(picked[len(r.prompt_token_ids) - 1 :].tolist())
    return out


def max_abs_diff(a: list[list[float]], b: list[list[float]]) -> float:
    assert [len(x) for x in a] == [len(x) for x in b]
    return max(abs(x - y) for xs, ys in zip(a, b, strict=True) for x, y in zip(xs, ys, strict=True))


def test_loss_goes_down_on_a_fixed_batch(make_group, tiny_models, records) -> None:
    group = make_group(tiny_models[0])
    results = [group.train_step(records, SFT) for _ in range(6)]
    metrics = [r.scalars for r in results]
    losses = [m["train/loss"] for m in metrics]
    assert losses[-1] < 0.8 * losses[0], losses
    first = metrics[0]
    assert first["train/lr"] == pytest.approx(1e-3 / 3)  # warmup: 2 steps, first at 1/3
    assert metrics[2]["train/lr"] == pytest.approx(1e-3)
    assert first["train/grad_norm"] > 0 and first["train/tokens_per_s"] > 0
    for source in ("self", "guided", "all"):
        for stat in ("mean", "variance", "ess", "max", "clipped_fraction"):
            assert math.isfinite(first[f"is/{source}/{stat}"])
    assert "is/expert/mean" not in first  # expert records have no behaviour policy
    # log-ratios come with the step: one per record with behaviour log-probs (2 of 3 sources)
    assert len(results[0].log_ratios) == sum(r.behaviour_logprobs is not None for r in records)


def test_a_restarted_group_trains_as_a_new_one(make_group, tiny_models, records, tmp_path) -> None:
    """A new group's first steps, then the same ranks restarted after training another model
    at another lr and ZeRO stage: the same losses, lrs and weights, to the bit."""
    cfg = LearnerConfig(**LEARNER_DEFAULTS)
    fresh = LearnerGroup(cfg, str(tiny_models[0]), LEARNER_STEPS)
    try:
        want = [fresh.train_step(records, IS_DFT).scalars for _ in range(3)]
        fresh.export_hf(tmp_path / "fresh")
        fresh.restart(dataclasses.replace(cfg, lr=3e-4, zero_stage=3), str(tiny_models[1]), 5)
        fresh.train_step(records, SFT)
        fresh.restart(cfg, str(tiny_models[0]), LEARNER_STEPS)
        assert fresh.step == 0
        got = [fresh.train_step(records, IS_DFT).scalars for _ in range(3)]
        fresh.export_hf(tmp_path / "restarted")
        with pytest.raises(ValueError, match="num_workers"):
            ray.get(fresh.workers[0].restart.remote(
                dataclasses.replace(cfg, num_workers=1), str(tiny_models[0]), 8
            ))  # fmt: skip
    finally:
        fresh.shutdown()
    for key in ("train/loss", "train/lr", "train/grad_norm"):
        assert [m[key] for m in got] == [m[key] for m in want], key
    a = AutoModelForCausalLM.from_pretrained(tmp_path / "fresh").state_dict()
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "restarted").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert make_group(tiny_models[0]) is make_group(tiny_models[1], lr=1e-4)  # kept, restarted


def test_zero2_and_zero3_agree_and_export_matches(
    make_group, tiny_models, records, tmp_path
) -> None:
    losses = {}
    for stage in (2, 3):
        group = make_group(tiny_models[0], zero_stage=stage)
        losses[stage] = [group.train_step(records, IS_DFT).scalars["train/loss"] for _ in range(3)]
        live = group.score(records[:5])
        streamed = dict(group.named_weights(bucket_bytes=64 << 10))
        group.export_hf(tmp_path / f"zero{stage}")
        exported = AutoModelForCausalLM.from_pretrained(tmp_path / f"zero{stage}")
        assert streamed.keys() == exported.state_dict().keys()
        for name, tensor in exported.state_dict().items():
            assert torch.equal(streamed[name], tensor), name
        assert max_abs_diff(hf_scores(tmp_path / f"zero{stage}", records[:5]), live) < 1e-5
    assert losses[2] == pytest.approx(losses[3], rel=1e-5)
    assert losses[2][0] != pytest.approx(losses[2][2], rel=1e-3)  # it did train


def cut(record: Record, n: int) -> Record:
    """`record` with its response cut to its first n tokens."""
    lp = record.behaviour_logprobs
    return dataclasses.replace(
        record, response_token_ids=record.response_token_ids[:n],
        behaviour_logprobs=None if lp is None else lp[:n],
    )  # fmt: skip


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_zero3_chunked_head_agrees_with_zero2_full_logits(
    make_group, tiny_models, records, tmp_path, tied
) -> None:
    """The chunked head (`logits_chunk_tokens`) under ZeRO-3 on two ranks, where the head's
    weight is partitioned and the ranks' micro-batches have different token counts (so a
    gather per chunk would differ between ranks and hang): training, the self-normalisation
    pre-pass and `score` give what ZeRO-2 gives from the full logits, for an untied and a tied
    (embedding) head."""
    model = build_tiny_model(tmp_path / "tied", tied=True) if tied else tiny_models[0]
    varied = [cut(r, 3 + 2 * i) for i, r in enumerate(records)]  # every length different
    objective = Objective("is", ObjectiveConfig(self_normalize=True))
    runs = {}
    for stage, chunk in ((2, 0), (3, 5)):
        group = make_group(model, zero_stage=stage, logits_chunk_tokens=chunk)
        steps = [group.train_step(varied, objective).scalars for _ in range(3)]
        runs[stage] = steps, group.score(varied[:5])
    for key in ("train/loss", "train/is_normalizer", "train/grad_norm"):
        assert [m[key] for m in runs[3][0]] == pytest.approx([m[key] for m in runs[2][0]], rel=1e-4)
    assert max_abs_diff(runs[3][1], runs[2][1]) < 1e-5


def test_resume_equals_uninterrupted(make_group, tiny_models, records, tmp_path) -> None:
    ckpt = tmp_path / "ckpt"
    group = make_group(tiny_models[0])
    assert group.load_checkpoint(ckpt) is None
    for _ in range(2):
        group.train_step(records, IS_DFT)
    group.save_checkpoint(ckpt, {"cursor": 16})
    uninterrupted = [group.train_step(records, IS_DFT).scalars for _ in range(3)]
    # new processes resume, as after a crash
    group = LearnerGroup(LearnerConfig(**LEARNER_DEFAULTS), str(tiny_models[0]), LEARNER_STEPS)
    try:
        assert group.load_checkpoint(ckpt) == {"cursor": 16}
        assert group.step == 2
        resumed = [group.train_step(records, IS_DFT).scalars for _ in range(3)]
    finally:
        group.shutdown()
    for a, b in zip(uninterrupted, resumed, strict=True):
        assert b["train/loss"] == pytest.approx(a["train/loss"], rel=1e-6, abs=1e-7)
        assert b["train/lr"] == pytest.approx(a["train/lr"], rel=1e-9)


def test_a_zero3_checkpoint_resumes_on_another_rank_count(
    make_group, tiny_models, records, tmp_path
) -> None:
    """Two ZeRO-3 ranks save at step 2; one rank (train_batch_size kept: 4 accumulation steps
    instead of 2) resumes, trains step 3 and saves; two ZeRO-3 ranks resume that and train
    step 4 (`mtg_ray.learner.reshard`). Each resumed step's loss, grad norm and lr, and the
    weights after it, are those of the run that went on without stopping (float32 on CPU):
    weights, Adam's moments and step and the lr schedule all crossed."""

    def next_step(group: LearnerGroup) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
        return group.train_step(records, IS_DFT).scalars, dict(group.named_weights())

    two = make_group(tiny_models[0], zero_stage=3)
    for _ in range(2):
        two.train_step(records, IS_DFT)
    two.save_checkpoint(tmp_path / "two", {"cursor": 16})
    want = [next_step(two)]
    one = make_group(tiny_models[0], zero_stage=3, num_workers=1)
    assert one.load_checkpoint(tmp_path / "two") == {"cursor": 16} and one.step == 2
    got = [next_step(one)]
    one.save_checkpoint(tmp_path / "one", {"cursor": 24})
    want.append(next_step(one))
    two = make_group(tiny_models[0], zero_stage=3)  # the same ranks as new (restarted)
    assert two.load_checkpoint(tmp_path / "one") == {"cursor": 24} and two.step == 3
    got.append(next_step(two))
    for (a, weights_a), (b, weights_b) in zip(want, got, strict=True):
        for key in ("train/loss", "train/grad_norm", "train/lr"):
            assert b[key] == pytest.approx(a[key], rel=1e-4), key
        assert weights_a.keys() == weights_b.keys()
        assert max((weights_a[k] - weights_b[k]).abs().max().item() for k in weights_a) < 1e-5
    assert a["train/lr"] != want[0][0]["train/lr"]  # the schedule moved between the steps
    # each conversion is made once, beside its tag folder
    assert sorted(p.name for p in (tmp_path / "two").glob("global_step*")) == [
        "global_step2", "global_step2.replicated", "global_step2.universal",
    ]  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "one").glob("global_step*")) == [
        "global_step3", "global_step3.universal",
    ]  # fmt: skip


def test_every_objective_trains_without_nan(make_group, tiny_models, records) -> None:
    group = make_group(tiny_models[1], num_workers=1, micro_batch_size=4)
    for name in OBJECTIVE_NAMES:
        for _ in range(2):
            metrics = group.train_step(records, Objective(name)).scalars
            bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
            assert not bad, (name, bad)


def test_learner_weights_reach_vllm(
    engines: RolloutGroup, make_group, tiny_models, records
) -> None:
    learner = make_group(tiny_models[0], zero_stage=3)
    for _ in range(2):
        learner.train_step(records, SFT)
    stats = engines.update_weights(learner.named_weights(bucket_bytes=64 << 10), version=2)
    assert stats.version == 2 and engines.versions() == [2, 2]
    pairs = [(r.prompt_token_ids, r.response_token_ids) for r in records[:4]]
    engine = engines.score([p for p, _ in pairs], [r for _, r in pairs])
    assert max_abs_diff(engine, learner.score(records[:4])) < 1e-4


# Direct weight sync (learner rank 0 -> every engine worker, one metadata message per sync):
# real Ray, vLLM engines and DeepSpeed ZeRO-3 over 2 ranks; only the CUDA part is replaced
# (`nccl_standin_gloo`: vLLM's NCCL path with a gloo group in place of the NCCL communicator).
def test_direct_sync_moves_the_learners_weights_and_recovers_from_a_failed_send(
    make_group, tiny_models, records
) -> None:
    """Two syncs, a failed one (the send waits out `sync_timeout_s`: short, for the suite) and
    a sync into a new group; then host weights are refused and `load_folder` works."""
    learner = make_group(tiny_models[0], zero_stage=3)
    cfg = RolloutConfig(
        num_engines=2, max_model_len=256, weight_backend="nccl_standin_gloo",
        bucket_bytes=256 << 10, sync_timeout_s=15,
    )  # fmt: skip
    rollout = RolloutGroup(cfg, str(tiny_models[0]))
    pairs = [(r.prompt_token_ids, r.response_token_ids) for r in records[:4]]

    def engines_match_learner() -> float:
        engine = rollout.score([p for p, _ in pairs], [r for _, r in pairs])
        return max_abs_diff(engine, learner.score(records[:4]))

    try:
        learner.train_step(records, Objective("sft"))
        stats = rollout.sync_from(learner, version=1)
        assert stats.version == 1 and rollout.versions() == [1, 1]
        assert stats.buckets > 1
        assert stats.bytes == sum(BucketMeta(**learner.weight_meta()).sizes())
        assert engines_match_learner() < 1e-4
        learner.train_step(records, Objective("sft"))
        rollout.sync_from(learner, version=2)  # the same transfer group, again
        assert rollout.versions() == [2, 2] and engines_match_learner() < 1e-4

        with pytest.raises(RuntimeError, match="version 3 .* failed.*aborted"):
            rollout.sync_from(FirstTensorMislabelled(learner), version=3)
        assert rollout.versions() == [0, 0] and rollout.version == 0
        # rank 0 is not left blocked in the send: it answers (a bound on a hang, not a speed)
        ray.get(learner.workers[0].weight_meta.remote(), timeout=cfg.sync_timeout_s)
        learner.train_step(records, Objective("sft"))

        rollout.sync_from(learner, version=3)  # a new group; the learner is still in step
        assert rollout.versions() == [3, 3] and engines_match_learner() < 1e-4

        # direct engines take weights from the learner or an HF folder only
        with pytest.raises(ValueError, match="sync_from.*load_folder"):
            rollout.update_weights([], version=4)
        rollout.load_folder(tiny_models[1], version=5)
        assert rollout.versions() == [5, 5]
    finally:
        rollout.shutdown()


def test_a_transfer_group_that_never_opens_fails_within_the_deadline(
    make_group, tiny_models, records
) -> None:
    """NCCL's rendezvous waits for ever for a worker that never joins (the stand-in too): rank
    0 opens on a thread of its own and gives up after the timeout, then trains and answers."""
    learner = make_group(tiny_models[0], zero_stage=3)
    host, port = learner.sync_address("127.0.0.1")
    start = time.monotonic()
    with pytest.raises(ray.exceptions.RayTaskError, match="never joined"):
        ray.get(learner.open_weight_sync("nccl_standin_gloo", host, port, 2, 1 << 20, 2.0))
    assert time.monotonic() - start < 20  # a bound on a hang, not a speed
    learner.train_step(records, Objective("sft"))
    learner.close_weight_sync(timeout_s=20)


def device_check(name: str) -> Any:
    """The function `name` of scripts/device/cluster_checks.py, the GPU machine's sync checks,
    run here on the CPU stand-ins in this session's Ray (a check is a script's function, not a
    package's: the script stays whole to carry to a GPU machine)."""
    path = REPO_ROOT / "scripts" / "device" / "cluster_checks.py"
    spec = importlib.util.spec_from_file_location("cluster_checks", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    check = getattr(module, name)
    return lambda work, records: check(module.Mode(gpu=False), work, records)


def test_tied_embeddings_sync_whole_without_a_failed_load(records, tmp_path) -> None:
    """A tied shape (lm_head is embed_tokens, as in Qwen2.5-Math-1.5B) through the direct sync
    under ZeRO-3 and through `load_folder`, the GPU machine's `zero3_tied` check: the engine
    scores as the learner does after each (before `refresh_tied_heads`, 0.04 nats/token off:
    the CPU head kept its old packed GEMM), and no layer with weights logs a failed load: the
    head's false one is dropped (`watch_tied_heads`); vLLM 0.32 logs one for RotaryEmbedding,
    whose only tensor is its computed cos/sin cache, on every reload of any model."""
    logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"

    def failed_loads() -> list[str]:
        lines = [line for f in logs.glob("worker-*") if f.is_file()
                 for line in f.read_text(errors="ignore").splitlines()]  # fmt: skip
        return [line for line in lines if "Failed to load weights" in line]

    before = set(failed_loads())  # lines carry time and pid: new ones are not in it
    device_check("zero3_tied")(tmp_path, records)
    time.sleep(1.0)  # the workers' log lines reach their files
    new = [line for line in failed_loads() if line not in before]
    assert new and all("RotaryEmbedding: Failed to load weights" in line for line in new)


def test_a_sync_whose_first_tensor_fails_raises_in_time_and_the_next_one_works(
    records, tmp_path
) -> None:
    """The GPU machine's `failed_first` check: one learner rank, one engine, the failure
    before any weight arrives (test_direct_sync_... fails a later sync, over two engines)."""
    device_check("failed_first")(tmp_path, records)


RATIO_TOLERANCE = 1e-3  # per token: |log pi_learner - log pi_vllm| at the same weights (fp32)


def test_a_self_record_at_version_0_has_importance_ratio_one(
    engines: RolloutGroup, make_group, tiny_models
) -> None:
    """vLLM's sampling log-probs and the learner's live log-probs agree end to end: at policy
    version 0 every sampled token's ratio is 1 within RATIO_TOLERANCE (in log space)."""
    rollout = engines
    learner = make_group(tiny_models[0], num_workers=1, micro_batch_size=4)
    tok = build_tokenizer()
    prompts = [tok(f"Problem: {a}+{a}\nSolution:")["input_ids"] for a in range(10, 14)]
    sampling = SamplingConfig(n=2, temperature=1.0, max_tokens=48)
    records = []
    generated = rollout.generate(prompts, sampling)
    for i, (ids, samples) in enumerate(zip(prompts, generated, strict=True)):
        graded = Graded(tuple(samples), (True,) * len(samples), sampling)
        problem = Problem(f"p{i}", "q", "0", expert_solution="e")
        records += rewrite(problem, "p", ids, [], graded, None, SelectionConfig(keep="all"))
    assert len(records) == 8 and {r.source for r in records} == {"self"}
    assert {r.policy_version for r in records} == {0}
    live = learner.score(records)
    diffs = [
        a - b
        for r, lp in zip(records, live, strict=True)
        for a, b in zip(lp, r.behaviour_logprobs, strict=True)
    ]
    assert len(diffs) == sum(len(r.response_token_ids) for r in records)
    assert max(abs(d) for d in diffs) < RATIO_TOLERANCE


def test_micro_batch_mean_sums_the_micro_batches_gradients(
    make_group, tiny_models, records
) -> None:
    """With identical micro-batches, the authors' reduction (each micro-batch's token mean,
    back-propagated as is) gives accumulation-steps times the token-mean gradient."""
    same = [records[0]] * 8
    norms = {}
    for reduction in ("token_mean", "micro_batch_mean"):
        group = make_group(
            tiny_models[0], num_workers=1, micro_batch_size=2, loss_reduction=reduction
        )
        norms[reduction] = group.train_step(same, SFT).scalars["train/grad_norm"]
    assert norms["micro_batch_mean"] == pytest.approx(4 * norms["token_mean"], rel=1e-4)


def test_self_normalisation_uses_the_whole_optimizer_batch(
    make_group, tiny_models, records
) -> None:
    """Two ranks, micro-batches of 2: the constant is the mean untruncated token weight over
    all 8 records, as computed from the live log-probs before the step."""
    objective = Objective("is", ObjectiveConfig(self_normalize=True))
    group = make_group(tiny_models[0])
    live = group.score(records)
    scalars = group.train_step(records, objective).scalars
    weights = [
        math.exp(max(-20.0, min(20.0, a - b)))
        for r, lp in zip(records, live, strict=True)
        if r.behaviour_logprobs is not None
        for a, b in zip(lp, r.behaviour_logprobs, strict=True)
    ]
    assert scalars["train/is_normalizer"] == pytest.approx(sum(weights) / len(weights), rel=1e-4)
