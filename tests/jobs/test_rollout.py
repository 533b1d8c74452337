"""The rollout group with real vLLM engines in real Ray actors, on CPU."""

import dataclasses
import threading
import time
from pathlib import Path

import pytest
import ray
import torch
from ray.exceptions import RayActorError
from transformers import AutoModelForCausalLM

from mtg_ray.models.tiny import build_tiny_model, build_tokenizer
from mtg_ray.pipelines.groups.rollout_group import RolloutGroup
from mtg_ray.rollout import RolloutConfig, SamplingConfig

pytestmark = pytest.mark.slow

PROMPTS = [[5 + i, 20 + i, 30 + (i % 7), 40] for i in range(12)]


@pytest.fixture
def group(engines: RolloutGroup) -> RolloutGroup:
    """The session's two shm engines (tests/jobs/conftest.py), on tiny model a at version 0."""
    return engines


def hf_logprobs(model_dir: Path, prompt: list[int], response: list[int]) -> list[float]:
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    ids = torch.tensor([prompt + response])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)
    picked = logp.gather(-1, ids[0, 1:, None])[:, 0]
    return picked[len(prompt) - 1 :].tolist()


def test_generation_returns_every_request_once_in_order(group: RolloutGroup) -> None:
    greedy = SamplingConfig(n=1, temperature=0.0, max_tokens=8)
    together = group.generate(PROMPTS, greedy)
    alone = [group.generate([p], greedy)[0] for p in PROMPTS[:3]]
    assert len(together) == len(PROMPTS)
    assert [s[0].token_ids for s in together[:3]] == [s[0].token_ids for s in alone]

    sampled = group.generate(PROMPTS, SamplingConfig(n=3, temperature=1.0, max_tokens=16, seed=7))
    assert [len(s) for s in sampled] == [3] * len(PROMPTS)
    for samples in sampled:
        for s in samples:
            assert len(s.token_ids) == len(s.logprobs) > 0
            assert all(lp <= 0.0 for lp in s.logprobs)
            assert s.finish_reason in ("length", "stop") and s.policy_version == 0


def test_weight_push_matches_hf_and_bumps_version(group: RolloutGroup, tiny_models) -> None:
    model_a, model_b = tiny_models
    prompt, response = [7, 8, 9, 10], [11, 12, 13, 14, 15, 16]
    before = group.score([prompt] * 2, [response] * 2)
    torch.testing.assert_close(
        torch.tensor(before[0]),
        torch.tensor(hf_logprobs(model_a, prompt, response)),
        atol=1e-4,
        rtol=0,
    )

    state = AutoModelForCausalLM.from_pretrained(model_b, dtype=torch.float32).state_dict()
    stats = group.update_weights(state.items(), version=1)
    assert stats.version == 1 and stats.buckets > 1  # streamed, not one giant copy
    assert group.versions() == [1, 1]

    after = group.score([prompt] * 2, [response] * 2)  # one request per engine
    expected = torch.tensor(hf_logprobs(model_b, prompt, response))
    for row in after:
        torch.testing.assert_close(torch.tensor(row), expected, atol=1e-4, rtol=0)
    assert max(abs(a - b) for a, b in zip(after[0], before[0], strict=True)) > 1e-2
    samples = group.generate(PROMPTS[:2], SamplingConfig(max_tokens=4))
    assert {s.policy_version for ss in samples for s in ss} == {1}


def test_a_pair_too_long_to_score_is_left_unscored_not_fatal(group: RolloutGroup) -> None:
    """vLLM refuses a prompt of `max_model_len` (256) tokens or more and fails the whole call:
    such a pair comes back None, the others scored as alone."""
    short = ([7, 8, 9, 10], [11, 12, 13])
    limit = group.cfg.max_model_len
    edge = ([7] * 200, [11] * (limit - 201))  # limit - 1 tokens: the longest that fits
    too_long = ([7] * 200, [11] * (limit - 200))
    got = group.score(*map(list, zip(short, too_long, edge, strict=True)))
    assert got[1] is None
    assert got[0] == group.score([short[0]], [short[1]])[0]
    assert got[2] is not None and len(got[2]) == limit - 201


def always_emits(path: Path, token: int, eos_ids: list[int]) -> Path:
    """A tiny model whose greedy answer is always `token` (one dimension of the residual stream
    held constant and read by that token's row of the head alone), and whose
    `generation_config` lists `eos_ids`."""
    folder = build_tiny_model(path)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 10.0
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0] = 0.0
            layer.mlp.down_proj.weight[0] = 0.0
        model.model.norm.weight.zero_()
        model.model.norm.weight[0] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[token, 0] = 1.0
    model.generation_config.eos_token_id = eos_ids
    model.save_pretrained(folder)
    return folder


def test_requests_stop_on_the_checkpoints_eos_ids_and_the_formats_end_of_turn(
    ray_session, tmp_path: Path
) -> None:
    """A checkpoint whose generation_config lists two EOS ids (as an Instruct model lists its
    end of turn beside its EOS) stops on each; the group's stop ids (the prompt format's end of
    turn, `end_token_id`) stop it too; a fixed-length request (ignore_eos) stops on none."""
    tok = build_tokenizer()
    a, b, c = tok.convert_tokens_to_ids(["x", "y", "z"])
    models = {t: always_emits(tmp_path / f"emits-{t}", t, [a, b]) for t in (a, b, c)}
    group = RolloutGroup(RolloutConfig(num_engines=1, max_model_len=64), str(models[a]), [c])
    greedy = SamplingConfig(n=1, temperature=0.0, max_tokens=8)
    try:
        for version, token in enumerate((a, b, c)):
            if version:
                group.load_folder(models[token], version=version)
            sample = group.generate([[5, 6, 7]], greedy)[0][0]
            assert sample.token_ids == (token,) and sample.finish_reason == "stop", sample
        fixed = dataclasses.replace(greedy, ignore_eos=True)
        assert group.generate([[5, 6, 7]], fixed)[0][0].token_ids == (c,) * 8
    finally:
        group.shutdown()


def test_killing_an_engine_mid_batch_still_completes(group: RolloutGroup, tiny_models) -> None:
    sampling = SamplingConfig(n=4, temperature=1.0, max_tokens=128, seed=3)
    result: dict[str, object] = {}
    restarts = group.restarts

    def run() -> None:
        result["out"] = group.generate(PROMPTS * 40, sampling)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while group.in_flight == 0 and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)  # poll: the batch is handed to the engines
    assert group.in_flight > 0 and thread.is_alive()  # the batch is in flight when it dies
    ray.kill(group.engines[0], no_restart=True)
    thread.join(timeout=300)
    out = result["out"]
    assert len(out) == len(PROMPTS) * 40 and all(len(s) == 4 for s in out)
    assert group.restarts == restarts + 1
    # The replacement engine came back with the latest weights, not the initial ones.
    assert group.versions() == [group.version] * 2
    prompt, response = [7, 8, 9, 10], [11, 12, 13, 14, 15, 16]
    first, second = group.score([prompt] * 2, [response] * 2)
    torch.testing.assert_close(torch.tensor(first), torch.tensor(second), atol=1e-5, rtol=0)


def test_gloo_backend_pushes_keeps_its_group_and_restores_a_restarted_engine(
    ray_session, tiny_models
) -> None:
    model_a, model_b = tiny_models
    prompt, response = [7, 8, 9, 10], [11, 12, 13, 14, 15, 16]
    cfg = RolloutConfig(
        num_engines=1, max_model_len=256, bucket_bytes=64 << 10, weight_backend="gloo"
    )
    group = RolloutGroup(cfg, str(model_a))
    try:
        expected = {m: torch.tensor(hf_logprobs(m, prompt, response)) for m in tiny_models}
        states = {
            m: AutoModelForCausalLM.from_pretrained(m, dtype=torch.float32).state_dict()
            for m in tiny_models
        }
        group.update_weights(states[model_b].items(), version=1)
        sender = group.push.sender
        group.update_weights(states[model_b].items(), version=2)
        assert group.push.sender is sender  # the transfer group outlives a sync
        torch.testing.assert_close(
            torch.tensor(group.score([prompt], [response])[0]), expected[model_b], atol=1e-4, rtol=0
        )

        dead = group.engines[0]
        ray.kill(dead, no_restart=True)  # restarted from the object-store snapshot
        # the kill is asynchronous: a request sent at once may still be answered by the engine
        deadline = time.monotonic() + 60
        while True:
            try:
                ray.get(dead.ready.remote(), timeout=60)
            except RayActorError:
                break
            assert time.monotonic() < deadline, "the killed engine still answers"
            time.sleep(0.1)
        torch.testing.assert_close(
            torch.tensor(group.score([prompt], [response])[0]), expected[model_b], atol=1e-4, rtol=0
        )
        assert group.restarts == 1 and group.versions() == [2]

        group.update_weights(states[model_a].items(), version=3)  # a new group, new engine
        torch.testing.assert_close(
            torch.tensor(group.score([prompt], [response])[0]), expected[model_a], atol=1e-4, rtol=0
        )
        assert any(Path(group.tmp.path).glob("vllm_dist_*"))  # the engines' temp files go here
    finally:
        group.shutdown()
    assert not Path(group.tmp.path).exists()  # and go with the group


def test_world_text_round_trips_through_vllms_detokenizer(
    small_engine: RolloutGroup, small_world
) -> None:
    """Every kind of record the tiny world holds reads back as the text that was written: a
    sampled response's text (vLLM's detokenizer, what the grader and the step check read) is
    the decoding of the token ids the record keeps and trains on (a sample may spell a word in
    other tokens than encoding its text would, so records keep the sampled ids, never
    re-encode); the raw SFT data's expert records (`expert_records`) decode to their
    solutions, and their prompts to the prompts."""
    from transformers import AutoTokenizer

    from mtg_ray.pipelines.jobs.rewrite import expert_records

    tok = AutoTokenizer.from_pretrained(small_world.model_dir)
    template = small_world.template
    problems = small_world.train_problems()[:24]
    prompts = [template.format(p.question) for p in problems]
    prompts += [template.format_guided(p.question, p.expert_solution or "") for p in problems]
    ids = [tok.encode(p, add_special_tokens=False) for p in prompts]
    samples = small_engine.generate(ids, SamplingConfig(n=2, temperature=1.0, max_tokens=96))
    checked = 0
    for per_prompt in samples:
        for s in per_prompt:
            assert s.text == tok.decode(s.token_ids, skip_special_tokens=True)  # as vLLM does
            checked += 1
    assert checked == 2 * len(prompts)
    for r in expert_records(problems, tok, template):
        assert r.response_token_ids[-1] == tok.eos_token_id
        assert tok.decode(r.response_token_ids, skip_special_tokens=True) == r.response
        assert tok.decode(r.prompt_token_ids) == r.prompt
