"""Sample-world generator: a realistic US retail world whose sources are noisy views of it.

``generate_world(out, persons, seed, end=...)`` writes the sources under ``out/landing``, a
``cdp.yml`` describing them and the hidden truth under ``out/ground_truth``.
"""

from __future__ import annotations

from dagster_project.lib.generate.generator import GenerationReport, GeneratorError, generate_world

__all__ = ["GenerationReport", "GeneratorError", "generate_world"]
