"""Model-written drafts through the live path, batched on the gpu worker.

The transformers backend runs a tiny model the test builds (random weights, a tokenizer trained
here) on the CPU: webhook → io worker → gpu worker → io worker → EHR. Five stays queue up while
no gpu worker runs; when it starts it drafts them in batches (4, then 1), and whatever the model
wrote, each draft in the EHR is valid and cited.
"""

from __future__ import annotations

import pytest

from fhirgen.cli.demo import sample_resources
from tests.live import LiveSystem, drafts_in_ehr, summary_text, wait_until
from tests.model_fixtures import build_tiny_model

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def system(ehr, tmp_path_factory):
    model = build_tiny_model(tmp_path_factory.mktemp("model") / "tiny")
    live = LiveSystem(
        tmp_path_factory.mktemp("fhirgen"),
        ehr.base_url,
        extra_env={
            "FHIRGEN_BACKEND": "transformers",
            "FHIRGEN_MODEL_PATH": str(model),
            "FHIRGEN_MODEL_DEVICE": "cpu",
            "FHIRGEN_MAX_NEW_TOKENS": "24",
            "FHIRGEN_GPU_BATCH_SIZE": "4",
            "FHIRGEN_GPU_BATCH_WAIT_MS": "3000",
        },
    ).start(worker="io")
    yield live
    live.stop()


def _stays():
    from fhirgen.clinical.stay import is_inpatient_stay
    from fhirgen.config import DEFAULT_INPATIENT_CLASSES

    resources = sample_resources()
    stays = [
        r
        for r in resources
        if r["resourceType"] == "Encounter" and is_inpatient_stay(r, DEFAULT_INPATIENT_CLASSES)
    ]
    return resources, stays


def test_queued_stays_are_drafted_in_batches_by_the_model(ehr, system):
    system.subscribe()
    resources, stays = _stays()
    ehr.put_all(resources)  # every stay arrives already finished: five notifications at once
    ids = [s["id"] for s in stays]
    wait_until(
        lambda: (
            sum(
                any(j.state == "generating" for j in system.store.jobs(encounter_id=i)) for i in ids
            )
            == len(ids)
        ),
        timeout=120,
        what="all stays read and waiting for the gpu worker",
    )
    system.start_worker("gpu", name="gpu", concurrency=1)
    for encounter_id in ids:
        wait_until(
            lambda e=encounter_id: drafts_in_ehr(ehr, e)["Provenance"],
            timeout=300,
            what=f"the draft of {encounter_id}",
        )
    done = [j for i in ids for j in system.store.jobs(encounter_id=i) if j.state == "done"]
    assert len(done) == len(ids)
    assert sorted(j.usage["jobs_in_batch"] for j in done) == [1, 4, 4, 4, 4]
    for job in done:
        usage = job.usage["discharge-summary"]
        assert usage["prompt_tokens"] > 0 and usage["output_tokens"] > 0, "the model really ran"
        assert max(usage["batch_sizes"]) > 1, "prompts of several stays shared model calls"
        assert job.backend == "transformers" and job.model.startswith("tiny")
    for encounter_id in ids:
        (document,) = drafts_in_ehr(ehr, encounter_id)["DocumentReference"]
        text = summary_text(document)
        body = text.split("\nSOURCES\n")[0]
        sentences = [line for line in body.splitlines()[4:] if line and not line.isupper()]
        assert sentences and all(line.rstrip().endswith("]") for line in sentences)
        device = drafts_in_ehr(ehr, encounter_id)["Provenance"][0]["agent"][0]["who"]["reference"]
        assert device.startswith("Device/")
