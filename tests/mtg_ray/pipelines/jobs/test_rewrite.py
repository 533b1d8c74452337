"""The rewrite and evaluate drivers over an in-process stand-in rollout group and grader."""

import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest

from mtg_ray.data import Problem
from mtg_ray.evaluate import EvalConfig
from mtg_ray.models.tiny import build_tokenizer
from mtg_ray.pipelines.jobs.evaluate import evaluate
from mtg_ray.pipelines.jobs.generate import generate_and_grade
from mtg_ray.pipelines.jobs.rewrite import (
    Teacher,
    expert_records,
    keep_rewrite,
    kept_rewrite,
    problems_digest,
    reuse_rewrite,
    rewrite_counts,
    rewrite_manifest,
    rewrite_problems,
    run_rewrite,
)
from mtg_ray.rewriting import RewriteConfig, get_template

from ..conftest import answer_of, standin_policy

PLAIN = get_template("plain")
CFG = RewriteConfig(samples=2, guided_samples=3, shard_size=4)


def test_generate_and_grade_puts_each_verdict_beside_its_sample(standins) -> None:
    rollout = standins.Rollout(lambda prompt, version, i: f"\\boxed{{{i}}}")
    graded = generate_and_grade(
        rollout, [[5, 6], [7]], ["1", "0"], CFG.sampling(3), standins.grader
    )
    assert [g.correct for g in graded] == [(False, True, False), (True, False, False)]
    assert graded[0].sampling.n == 3 and graded[1].samples[0].text == "\\boxed{0}"


def test_one_call_can_carry_a_sampling_config_per_prompt(standins) -> None:
    rollout = standins.Rollout(lambda prompt, version, i: f"\\boxed{{{i}}}")
    configs = [CFG.sampling(3), CFG.sampling(1)]
    graded = generate_and_grade(rollout, [[5, 6], [7]], ["1", "0"], configs, standins.grader)
    assert [g.correct for g in graded] == [(False, True, False), (True,)]
    assert [g.sampling for g in graded] == configs and rollout.requests == [(2, 0)]
    with pytest.raises(ValueError, match="2 sampling configs for 3 prompts"):
        generate_and_grade(rollout, [[5], [6], [7]], ["1"] * 3, configs, standins.grader)


def test_three_stages_pick_self_then_guided_then_expert(standins) -> None:
    rollout = standins.Rollout()
    problems = standins.problems(9)
    records = rewrite_problems(problems, rollout, standins.tokenizer, PLAIN, CFG, standins.grader)
    by_id = {r.problem_id: r for r in records}
    assert len(records) == 9 == len(by_id)  # keep=one: one record per problem
    for k in range(9):
        assert by_id[f"p{k}"].source == ("self", "guided", "expert")[k % 3], k
    guided = by_id["p1"]
    assert guided.prompt == PLAIN.format("q1")  # trained on the plain prompt
    assert guided.temperature == CFG.temperature and guided.max_tokens == CFG.max_tokens
    assert guided.behaviour_logprobs and guided.policy_version == 0
    assert by_id["p2"].behaviour_logprobs is None and by_id["p2"].response == "ref \\boxed{2}"
    # stage 2 only for the 6 problems without a correct self sample
    assert rollout.requests == [(9, 0), (6, 0)]


COPY = "ref \\boxed{{{}}} is what the reference says and what we say too"


def test_dropped_samples_are_counted_per_rule_stage_and_level(standins, tmp_path: Path) -> None:
    """Problems solved alone (K % 3 == 0) have their first self sample cut at max_tokens; for
    those solved with the reference (K % 3 == 1) the first guided sample is the reference word
    for word."""

    def policy(prompt: str, version: int, i: int) -> str:
        k = answer_of(prompt)
        if "ref \\boxed" in prompt and k % 3 == 1 and i == 0:
            return COPY.format(k)
        return standin_policy(prompt, version, i)

    def finish(prompt: str, version: int, i: int) -> str:
        return "length" if i == 0 and "ref" not in prompt else "stop"

    problems = [
        Problem(
            p.problem_id,
            p.question,
            p.reference_answer,
            COPY.format(p.reference_answer),
            level=p.level,
        )
        for p in standins.problems(6)
    ]  # fmt: skip  (levels alternate "1", "2")
    drops: Counter[str] = Counter()
    rollout = standins.Rollout(policy, finish)
    records = rewrite_problems(
        problems, rollout, standins.tokenizer, PLAIN, CFG, standins.grader, drops
    )
    by_id = {r.problem_id: r.source for r in records}
    assert by_id["p0"] == by_id["p3"] == "self"  # sample 1 of 2 was right and whole
    assert drops["dropped_unfinished_self"] == 2  # p0 and p3, one cut sample each
    assert drops["dropped_unfinished_self_level_1"] == 1  # p0 is level "1", p3 level "2"
    assert drops["dropped_copied_guided"] == 2  # p1 and p4: the copying sample failed
    assert by_id["p1"] == by_id["p4"] == "guided"  # the others were right in their own words
    assert drops["dropped_copied_self"] == 0

    out = tmp_path / "rw"
    rollout = standins.Rollout(policy, finish)
    run_rewrite(problems, rollout, standins.tokenizer, PLAIN, CFG, out, standins.grader)
    counts = rewrite_counts(out)
    assert counts.pop("rewrite_s") > 0  # the shard's seconds, kept beside its counts
    assert {"seconds_self", "seconds_guided"} <= set(counts)  # and each stage's sampling
    assert without_seconds(counts) == Counter(
        {k: float(v) for k, v in without_seconds(drops).items()}
    )
    (out / "shards" / "shard-00000.counts.json").unlink()
    with pytest.raises(FileNotFoundError, match="shard-00000.counts.json"):
        rewrite_counts(out)


def without_seconds(counts) -> Counter:
    """`counts` less each stage's sampling seconds (`seconds_<stage>`), which vary by run."""
    return Counter({k: v for k, v in counts.items() if not k.startswith("seconds_")})


def test_one_call_samples_both_stages_together_and_keeps_the_same_records(standins) -> None:
    problems = standins.problems(9)
    two_calls, one_call = standins.Rollout(), standins.Rollout()
    cost: dict[str, Counter[str]] = {"two": Counter(), "one": Counter()}
    before = rewrite_problems(
        problems, two_calls, standins.tokenizer, PLAIN, CFG, standins.grader, cost["two"]
    )
    cfg = dataclasses.replace(CFG, one_call=True)
    after = rewrite_problems(
        problems, one_call, standins.tokenizer, PLAIN, cfg, standins.grader, cost["one"]
    )
    assert after == before  # the stand-in answers alike whenever asked: same records
    assert two_calls.requests == [(9, 0), (6, 0)] and one_call.requests == [(18, 0)]
    # what each drew: one call samples a guided answer for every problem, used or not
    n, g = CFG.samples, CFG.guided_samples
    assert without_seconds(cost["two"]) == Counter(generated_self=9 * n, generated_guided=6 * g)
    assert without_seconds(cost["one"]) == Counter(generated_self=9 * n, generated_guided=9 * g)


def test_the_leak_gate_and_the_masked_reference_take_the_answer_away(standins) -> None:
    """The stand-in solves K % 3 == 1 only when its prompt shows the reference's boxed answer;
    its guided samples score -0.4 nats/token lower on the plain prompt (-0.5 vs -0.1)."""
    problems = standins.problems(6)
    kept = {}
    for name, overrides in {
        "today": {},
        "gate_loose": {"leak_threshold": -1.0},
        "gate": {"leak_threshold": -0.2},
        "masked": {"guided_reference": "masked_answer"},
    }.items():
        drops: Counter[str] = Counter()
        cfg = dataclasses.replace(CFG, **overrides)
        records = rewrite_problems(
            problems, standins.Rollout(), standins.tokenizer, PLAIN, cfg, standins.grader, drops
        )
        kept[name] = ({r.problem_id: r.source for r in records}, drops)
    assert kept["today"][0]["p1"] == kept["gate_loose"][0]["p1"] == "guided"
    assert kept["gate"][0]["p1"] == kept["gate"][0]["p4"] == "expert"  # every sample leaned
    assert kept["gate"][1]["dropped_leaked_guided"] == 2 * CFG.guided_samples
    assert kept["gate_loose"][1]["dropped_leaked_guided"] == 0
    assert kept["masked"][0]["p1"] == "expert"  # the answer was never shown
    assert kept["masked"][1]["dropped_leaked_guided"] == 0  # no gate asked for
    # samples too long for the rollout group to score on the plain prompt pass ungated, counted
    rollout, drops = standins.Rollout(), Counter()
    rollout.max_model_len = 1
    cfg = dataclasses.replace(CFG, leak_threshold=-0.2)
    records = rewrite_problems(
        problems, rollout, standins.tokenizer, PLAIN, cfg, standins.grader, drops
    )  # fmt: skip
    assert {r.problem_id: r.source for r in records} == kept["today"][0]
    assert drops["dropped_leaked_guided"] == 0
    assert drops["too_long_to_score"] == drops["scored"] > 0


def test_verify_steps_also_asks_the_step_check_and_needs_one(standins) -> None:
    problems = standins.problems(6)
    cfg = dataclasses.replace(CFG, verify="steps")
    with pytest.raises(ValueError, match="verify=steps"):
        rewrite_problems(problems, standins.Rollout(), standins.tokenizer, PLAIN, cfg,
                         standins.grader)  # fmt: skip
    drops: Counter[str] = Counter()
    records = rewrite_problems(
        problems, standins.Rollout(), standins.tokenizer, PLAIN, cfg, standins.grader, drops,
        steps_check=lambda reference, response: False,  # no reasoning passes
    )  # fmt: skip
    assert {r.source for r in records} == {"expert"}
    assert drops["dropped_unfaithful_self"] == 2 * CFG.samples  # p0 and p3: both samples right
    assert drops["dropped_unfaithful_guided"] == 4 * CFG.guided_samples  # p0, p1, p3, p4


def test_expert_records_are_the_raw_demonstrations(standins) -> None:
    records = expert_records(standins.problems(3), standins.tokenizer, PLAIN)
    assert [r.source for r in records] == ["expert"] * 3
    assert records[0].response_token_ids[-1] == standins.tokenizer.eos_token_id
    # in a chat format, a demonstration ends its turn as a sample stops: on the end of turn
    chat = build_tokenizer()
    chat.add_special_tokens({"additional_special_tokens": ["<|im_end|>"]})
    records = expert_records(standins.problems(3), chat, get_template("qwen-boxed"))
    assert {r.response_token_ids[-1] for r in records} == {chat.convert_tokens_to_ids("<|im_end|>")}
    # and so do the rewrite's stage-3 fallback rows
    cfg = dataclasses.replace(CFG, verify="steps")
    fallback = rewrite_problems(
        standins.problems(3), standins.Rollout(), chat, get_template("qwen-boxed"), cfg,
        standins.grader, steps_check=lambda reference, response: False,
    )  # fmt: skip
    assert [r.response_token_ids for r in fallback] == [r.response_token_ids for r in records]


def test_sharded_rewrite_resumes_and_refuses_other_settings(standins, tmp_path: Path) -> None:
    problems = standins.problems(10)
    calls = []

    def flaky(pairs):
        calls.append(len(pairs))
        if len(calls) == 3:  # the second shard's first grading
            raise KeyboardInterrupt
        return standins.grader(pairs)

    rollout = standins.Rollout()
    with pytest.raises(KeyboardInterrupt):
        run_rewrite(problems, rollout, standins.tokenizer, PLAIN, CFG, tmp_path, flaky)
    shards = sorted((tmp_path / "shards").glob("*.parquet"))
    assert [s.name for s in shards] == ["shard-00000.parquet"]
    before = shards[0].read_bytes()
    records = run_rewrite(
        problems, rollout, standins.tokenizer, PLAIN, CFG, tmp_path, standins.grader
    )
    assert shards[0].read_bytes() == before  # a finished shard is not redone
    assert sorted(r.problem_id for r in records) == sorted(p.problem_id for p in problems)
    assert len(list((tmp_path / "shards").glob("*.parquet"))) == 3
    other = RewriteConfig(samples=3, shard_size=4)
    with pytest.raises(ValueError, match="other problems or settings"):
        run_rewrite(problems, rollout, standins.tokenizer, PLAIN, other, tmp_path, flaky)


def test_evaluate_reports_avg_and_pass_at_n_and_every_sample(standins, tmp_path: Path) -> None:
    def partly_right(prompt: str, version: int, i: int) -> str:
        k = standins.answer_of(prompt)  # sample i of qK is right when i < K
        return f"\\boxed{{{k if i < k else -1}}}"

    rollout = standins.Rollout(partly_right)
    sets = {"toy": standins.problems(3)}
    out = tmp_path / "samples.jsonl"
    results = evaluate(
        rollout, standins.tokenizer, PLAIN, sets, EvalConfig(n=4), standins.grader, out
    )
    assert results == {
        "toy": {
            "avg@4": pytest.approx(3 / 12),
            "pass@4": pytest.approx(2 / 3),
            "greedy": pytest.approx(2 / 3),  # greedy is sample 0: right for q1 and q2
            "avg@4/level_1": pytest.approx(2 / 8),  # q0, q2
            "avg@4/level_2": pytest.approx(1 / 4),  # q1
        }
    }
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    sampled = [r for r in rows if r["mode"] == "sample"]
    assert len(sampled) == 12 and sum(r["correct"] for r in sampled) == 3
    assert len(rows) == 15 and {r["policy_version"] for r in rows} == {0}
    assert rollout.requests == [(6, 0)]  # sampled and greedy requests in one generate call
    no_greedy = evaluate(
        rollout, standins.tokenizer, PLAIN, sets, EvalConfig(n=4, greedy=False), standins.grader
    )
    assert "greedy" not in no_greedy["toy"]


def test_a_failed_start_leaves_nothing_that_blocks_the_corrected_rerun(standins, tmp_path):
    """A run that wrote its manifest but no shard (it failed first) does not bind the folder:
    the rerun with corrected settings goes ahead; once a shard exists, other settings fail."""
    problems = standins.problems(6)
    tok, rollout = standins.tokenizer, standins.Rollout()

    def failing(pairs):
        raise RuntimeError("the first run dies before any shard")

    with pytest.raises(RuntimeError):
        run_rewrite(problems, rollout, tok, PLAIN, CFG, tmp_path, failing)
    assert (tmp_path / "manifest.json").is_file()
    fixed = RewriteConfig(samples=3, guided_samples=3, shard_size=4)
    assert len(run_rewrite(problems, rollout, tok, PLAIN, fixed, tmp_path, standins.grader)) == 6
    with pytest.raises(ValueError, match="other problems or settings"):
        run_rewrite(problems, rollout, tok, PLAIN, CFG, tmp_path, standins.grader)


def teacher_policy(prompt: str, version: int, index: int) -> str:
    """A stronger model: problem qK alone unless K % 3 == 2, and every one with the
    reference; it answers in a format of its own ("Teacher:" prompts)."""
    assert prompt.startswith("Teacher:"), prompt
    k = answer_of(prompt)
    solved = k % 3 != 2 or "ref \\boxed" in prompt
    return f"t \\boxed{{{k if solved else k + 1}}}"


TEACHER_FORMAT = dataclasses.replace(
    PLAIN, name="teacher-plain", plain="Teacher: " + PLAIN.plain,
    guided="Teacher: " + PLAIN.guided,
)  # fmt: skip


def teacher_of(standins) -> Teacher:
    rollout = standins.Rollout(teacher_policy, logprob=-0.7)
    return Teacher(lambda: rollout, TEACHER_FORMAT, standins.tokenizer, CFG.sampling(2))


@pytest.mark.parametrize(
    ("rewriter", "after_guided", "sources", "policy_calls"),
    [
        ("teacher", False, ("self", "teacher", "teacher"), 1),  # the teacher replaces guided
        ("teacher", True, ("self", "guided", "teacher"), 2),  # after the policy's guided stage
        ("distill", False, ("teacher", "teacher", "teacher"), 0),  # the teacher alone
    ],
)
def test_the_teacher_rewrites_what_the_policy_misses(
    standins, rewriter, after_guided, sources, policy_calls
) -> None:
    cfg = dataclasses.replace(CFG, rewriter=rewriter, teacher_after_guided=after_guided)
    rollout, teacher, counts = standins.Rollout(), teacher_of(standins), Counter()
    problems = standins.problems(6)
    records = rewrite_problems(
        problems, rollout, standins.tokenizer, PLAIN, cfg, standins.grader, counts,
        teacher=teacher,
    )  # fmt: skip
    assert tuple(r.source for r in records[:3]) == sources
    assert len(rollout.requests) == policy_calls
    for r in records:
        assert r.prompt == PLAIN.format(f"q{r.problem_id[1:]}")  # trained on the plain prompt
        if r.source == "teacher":  # the teacher's log-probs and the prompt it saw
            assert r.behaviour_logprobs == pytest.approx([-0.7] * len(r.response_token_ids))
            assert r.behaviour_prompt.startswith("Teacher: Problem: q")
            assert r.temperature == CFG.temperature and r.response.startswith("t ")
        else:
            assert r.behaviour_prompt is None
    assert counts["generated_teacher"] > 0
    with pytest.raises(ValueError, match="needs the teacher"):
        rewrite_problems(problems, rollout, standins.tokenizer, PLAIN, cfg, standins.grader)


def test_the_leak_gate_scores_a_teacher_sample_under_the_teacher(standins) -> None:
    cfg = dataclasses.replace(CFG, rewriter="teacher", leak_threshold=-0.1)
    teacher, counts = teacher_of(standins), Counter()
    scored: list[list[int]] = []
    score = teacher.rollout.score

    def recording(prompts, responses):
        scored.extend(prompts)
        return [[-5.0] * len(r) for r in responses]  # far less likely without the reference

    teacher.rollout.score = recording
    records = rewrite_problems(
        standins.problems(3), standins.Rollout(), standins.tokenizer, PLAIN, cfg,
        standins.grader, counts, teacher=teacher,
    )  # fmt: skip
    teacher.rollout.score = score
    assert counts["dropped_leaked_teacher"] == 2 * 2  # p1, p2: both teacher samples leaned on it
    assert [r.source for r in records] == ["self", "expert", "expert"]
    texts = {standins.tokenizer.decode(p) for p in scored}
    assert texts == {TEACHER_FORMAT.format("q1"), TEACHER_FORMAT.format("q2")}


def test_a_kept_teacher_rewrite_serves_another_run_without_starting_the_teacher(
    standins, tmp_path: Path
) -> None:
    cfg = dataclasses.replace(CFG, rewriter="teacher")
    problems, teacher = standins.problems(6), teacher_of(standins)
    first = tmp_path / "run1" / "rewrite_teacher"
    made = run_rewrite(problems, standins.Rollout(), standins.tokenizer, PLAIN, cfg, first,
                       standins.grader, teacher=teacher, teacher_model="t")  # fmt: skip
    manifest = rewrite_manifest(problems, cfg, "", teacher, "t")
    kept = kept_rewrite(tmp_path / "cache", manifest, {"seed": 0})
    assert kept_rewrite(tmp_path / "cache", manifest, {"seed": 1}) != kept
    keep_rewrite(first, kept)
    assert sorted(p.name for p in kept.iterdir()) == ["manifest.json", "shards"]

    def never():
        raise AssertionError("a reused rewrite starts no teacher")

    other = [dataclasses.replace(p, question=p.question + "?") for p in problems]  # same ids
    assert problems_digest(other) != problems_digest(problems)
    lazy = dataclasses.replace(teacher, group=never)
    second = tmp_path / "run2" / "rewrite_teacher"
    (second / "shards").mkdir(parents=True)  # an attempt that died before its first parquet
    (second / "shards" / "shard-00000.counts.json").write_text("{}")
    assert reuse_rewrite(kept, second) and not reuse_rewrite(kept, second)  # once: it has shards
    again = run_rewrite(problems, standins.Rollout(), standins.tokenizer, PLAIN, cfg, second,
                        standins.grader, teacher=lazy, teacher_model="t")  # fmt: skip
    assert again == made and rewrite_counts(second) == rewrite_counts(first)  # cost charged too
