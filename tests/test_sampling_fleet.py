"""A fleet of OpenAI-compatible endpoints (``ModelSpec.base_urls``): spread and failover.

The endpoints are real ``devtools/openai_standin.py`` processes on 127.0.0.1, so one
can be killed (SIGKILL) while requests are in flight, as a crashed ``vllm serve`` would
be; what each survivor answered is read back from its ``/stats`` route.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from reset_core.sampling.base import GenerationRequest, build_messages
from reset_core.sampling.config import ModelSpec, SampleSelection
from reset_core.sampling.openai_backend import OpenAIGenerator, PartialGeneration
from reset_core.sampling.settings import DecodingSetting, default_grid

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stats(url: str) -> int:
    with urllib.request.urlopen(url + "/stats", timeout=5) as r:
        return json.load(r)["requests"]


class _Standin:
    """One stand-in endpoint in its own process (so it can be killed like a server)."""

    def __init__(self, latency_s: float):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devtools.openai_standin", "--port", str(self.port)]
            + ["--latency", str(latency_s)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        line = self.proc.stdout.readline()  # printed once it listens
        assert "serving" in line, line

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill()


@pytest.fixture
def fleet():
    servers = [_Standin(latency_s=0.15) for _ in range(3)]
    yield servers
    for s in servers:
        s.stop()


def _spec(urls: list[str], **kw) -> ModelSpec:
    return ModelSpec(
        engine="openai", model="local-test", base_url=urls[0], base_urls=urls[1:], **kw
    )


def _requests(k: int) -> list[GenerationRequest]:
    setting = DecodingSetting(temperature=0.7, max_tokens=8)
    return [
        GenerationRequest(f"e{i}", build_messages(f"question {i}", None), setting, (0,))
        for i in range(k)
    ]


def _kill_when(server: _Standin, answered_at_least: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while _stats(server.url) < answered_at_least:
        assert time.monotonic() < deadline, "the fleet never reached the endpoint"
        time.sleep(0.02)
    server.kill()


# ------------------------------------------------------------------ the spec


def test_replicas_leave_the_model_id_alone_and_need_base_url():
    one = ModelSpec(engine="openai", model="m", base_url="http://a:8000/v1")
    three = ModelSpec(
        engine="openai",
        model="m",
        base_url="http://a:8000/v1/",
        base_urls="http://b/v1, http://c/v1",
    )
    reordered = ModelSpec(
        engine="openai",
        model="m",
        base_url="http://a:8000/v1",
        base_urls=["http://c/v1", "http://b/v1"],
    )
    assert one.model_id == three.model_id == reordered.model_id
    # another model name, or another endpoint naming it, is another model
    assert ModelSpec(engine="openai", model="m", base_url="http://b/v1").model_id != one.model_id
    assert three.endpoints == ["http://a:8000/v1", "http://b/v1", "http://c/v1"]
    with pytest.raises(ValueError, match="base_urls: give base_url too"):
        ModelSpec(engine="openai", model="m", base_urls=["http://b/v1"])


def test_cli_takes_the_replicas_as_a_comma_list():
    import argparse

    from reset_core.options import add_options, options_from_args

    p = argparse.ArgumentParser()
    add_options(p, ModelSpec)
    args = p.parse_args(
        ["--engine", "openai", "--model", "m", "--base-url", "http://a/v1"]
        + ["--base-urls", "http://b/v1,http://c/v1", "--endpoint-cooloff-s", "5"]
    )
    spec = options_from_args(ModelSpec, args)
    assert spec.base_urls == ["http://b/v1", "http://c/v1"] and spec.endpoint_cooloff_s == 5
    assert "fewest in flight" in p.format_help().replace("\n", " ").replace("  ", " ")


def test_the_deployment_allow_list_applies_to_every_replica(monkeypatch):
    from reset_core.deployment import SecretNotAllowed
    from reset_core.sampling.launch import SamplingRejected, check_endpoint

    monkeypatch.setenv("RESET_STUDIO_ALLOWED_BASE_URLS", "http://127.0.0.1:*")
    allowed = _spec(["http://127.0.0.1:8000/v1", "http://127.0.0.1:8001/v1"])
    check_endpoint(allowed)
    bad = _spec(["http://127.0.0.1:8000/v1", "http://127.0.0.1:8001/v1", "http://evil.example/v1"])
    with pytest.raises(SamplingRejected, match=r"base_urls\[1\].*evil\.example"):
        check_endpoint(bad)
    with pytest.raises(SecretNotAllowed, match=r"base_urls\[1\]"):
        OpenAIGenerator(bad)  # the worker checks again before any request


# ------------------------------------------------------------------ spread and failover


def test_requests_spread_and_a_killed_endpoint_loses_nothing(fleet):
    """Three endpoints; one is SIGKILLed mid-run: every candidate once, the others take over."""
    gen = OpenAIGenerator(_spec([s.url for s in fleet], concurrency=6, endpoint_cooloff_s=600))
    requests = _requests(60)
    out: dict = {}
    worker = threading.Thread(target=lambda: out.update(results=gen.generate(requests)))
    worker.start()
    _kill_when(fleet[1], answered_at_least=4)
    worker.join(120)
    assert not worker.is_alive()

    results = out["results"]
    assert sorted(r.example_id for r in results) == sorted(r.example_id for r in requests)
    counts = gen.endpoint_counts
    killed, survivors = fleet[1].url, [fleet[0].url, fleet[2].url]
    assert sum(c["answered"] for c in counts.values()) == len(requests)
    # every endpoint took a share before the kill; the dead one failed and rests
    assert all(counts[s.url]["answered"] >= 1 for s in fleet)
    assert counts[killed]["failed"] >= 1
    assert all(counts[u]["answered"] > counts[killed]["answered"] for u in survivors)
    # the survivors' own counts agree with what the generator says they answered
    assert [_stats(u) for u in survivors] == [counts[u]["answered"] for u in survivors]


def test_all_endpoints_down_names_each_and_what_it_answered(openai_server):
    dead = f"http://127.0.0.1:{_free_port()}/v1"  # nothing listens: connection refused
    spec = ModelSpec(
        engine="openai",
        model="fault:503",  # the stand-in answers every request for it with HTTP 503
        base_url=dead,
        base_urls=[openai_server.base_url],
        endpoint_cooloff_s=600,
    )
    gen = OpenAIGenerator(spec)
    with pytest.raises(PartialGeneration) as info:
        gen.generate(_requests(2))
    assert info.value.results == []
    first = info.value.errors[0]
    assert "all 2 endpoints failed" in first
    assert f"{dead}: connection failed" in first
    assert f"{openai_server.base_url}: HTTP 503" in first


def test_a_resting_endpoint_gets_requests_again_after_its_cooloff(openai_server):
    dead_port = _free_port()
    spec = ModelSpec(
        engine="openai",
        model="local-test",
        base_url=f"http://127.0.0.1:{dead_port}/v1",
        base_urls=[openai_server.base_url],
        endpoint_cooloff_s=0.5,
        concurrency=1,
    )
    gen = OpenAIGenerator(spec)
    assert len(gen.generate(_requests(4))) == 4
    assert gen.endpoint_counts[spec.base_url] == {"answered": 0, "failed": 2}
    # the endpoint comes back (a restarted server on the same port) and, once its
    # cool-off is over, gets its share again
    from devtools.openai_standin import OpenAICompatServer

    time.sleep(0.6)
    with OpenAICompatServer(port=dead_port):
        assert len(gen.generate(_requests(6))) == 6
    assert gen.endpoint_counts[spec.base_url]["answered"] >= 2


def test_plan_accepts_a_fleet_with_one_replica_down_and_refuses_a_wrong_one(openai_server):
    from reset_core.sampling.launch import SamplingRejected, check_model

    dead = f"http://127.0.0.1:{_free_port()}/v1"
    check_model(_spec([openai_server.base_url, dead]))  # the worker routes around it
    with pytest.raises(SamplingRejected, match="none of the 2 endpoints answers"):
        check_model(_spec([dead, f"http://127.0.0.1:{_free_port()}/v1"]))
    wrong = ModelSpec(
        engine="openai", model="other-model", base_url=dead, base_urls=[openai_server.base_url]
    )
    with pytest.raises(SamplingRejected, match="does not serve model 'other-model'"):
        check_model(wrong)


@pytest.mark.slow
def test_sampling_job_on_a_fleet_survives_a_killed_replica(con, db_path, fleet):
    """The whole path: plan, worker process, shards, ingest; one replica dies mid-job."""
    from reset_core.ingest.config import ImportOptions
    from reset_core.ingest.importer import import_file
    from reset_core.paths import jobs_dir
    from reset_core.sampling.launch import plan_sampling, start_sampling, sync_sampling
    from reset_core.store import one

    import_file(con, FIXTURES / "alpaca.json", ImportOptions(preset="alpaca"))
    spec = _spec([s.url for s in fleet], concurrency=4, endpoint_cooloff_s=600)
    plan = plan_sampling(con, SampleSelection(count=8), spec, default_grid(max_tokens=8))
    job_id = start_sampling(con, plan, jobs_dir(db_path), chunk_size=8)
    _kill_when(fleet[2], answered_at_least=3)
    deadline = time.monotonic() + 180
    while (progress := sync_sampling(con, job_id))["status"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert progress["status"] == "done", progress.get("error")
    n, distinct = one(
        con,
        "SELECT count(*), count(DISTINCT candidate_id) FROM candidates WHERE job_id=?",
        [job_id],
    )
    assert n == distinct == plan.n_candidates == 48
    answered = [_stats(fleet[0].url), _stats(fleet[1].url)]
    assert all(a > 0 for a in answered) and sum(answered) < plan.n_candidates


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    # The endpoints are local; a proxy from the environment must not sit in between.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("RESET_STUDIO_ALLOWED_BASE_URLS", raising=False)


def test_sample_page_takes_the_replicas_and_checks_each(con, db_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from reset_core.ingest.config import ImportOptions
    from reset_core.ingest.importer import import_file

    import_file(con, FIXTURES / "alpaca.json", ImportOptions(preset="alpaca"))
    monkeypatch.syspath_prepend(str(ROOT))  # the page imports the app's `ui` module
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "pages" / "sample.py"), default_timeout=60)
    at.session_state["db_path"] = str(db_path)
    at.run()
    at.radio(key="sample_model_source").set_value("OpenAI-compatible endpoint").run()
    dead = [f"http://127.0.0.1:{_free_port()}/v1" for _ in range(3)]
    at.text_input(key="sample_base_url").set_value(dead[0])
    at.text_input(key="sample_base_urls").set_value(f"{dead[1]}, {dead[2]}")
    at.text_input(key="sample_served_model").set_value("m").run()
    at.button(key="sample_start").click().run()
    errors = " ".join(e.value for e in at.error)
    assert "none of the 3 endpoints answers" in errors
    assert all(url in errors for url in dead)


def test_a_hung_endpoint_times_out_and_the_others_answer(openai_server):
    from devtools.openai_standin import OpenAICompatServer

    with OpenAICompatServer(latency_s=3.0) as slow:  # answers long after the timeout
        spec = ModelSpec(
            engine="openai",
            model="local-test",
            base_url=slow.base_url,
            base_urls=[openai_server.base_url],
            request_timeout_s=0.3,
            endpoint_cooloff_s=600,
            concurrency=4,
        )
        gen = OpenAIGenerator(spec)
        results = gen.generate(_requests(12))
        assert sorted(r.example_id for r in results) == sorted(f"e{i}" for i in range(12))
        counts = gen.endpoint_counts
        # each request it held timed out (two or more: then it rested) and moved on
        assert counts[slow.base_url]["answered"] == 0 and counts[slow.base_url]["failed"] >= 2
        assert counts[openai_server.base_url]["answered"] == 12
