"""dbt project wiring: vars, environment, manifest, translator and the dbt assets."""
