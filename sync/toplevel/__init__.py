"""The mock national top-level node: prefix records, onboarding, the intake API."""
