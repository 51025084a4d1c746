"""The JSON API: routes, their dependencies, schemas, errors and upload limits, and the intake
that turns an upload into a queued submission."""
