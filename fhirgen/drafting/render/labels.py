"""What marks the resources we write: the AI-asserted security label (AIAST), the US Core
profile base and the XHTML namespace of a narrative."""

AIAST = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "AIAST",
    "display": "Artificial Intelligence asserted",
}
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition"
XHTML = "http://www.w3.org/1999/xhtml"
