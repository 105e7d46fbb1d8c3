"""Testing support shared by the test suite and the benchmark harness.

- `checkpoint_base.testing.targets`: the registry of backend targets (how to open an isolated
  saver of each backend, sync and async), which both the conformance suite and the
  benchmarks iterate over.
- `checkpoint_base.testing.servers`: real PostgreSQL, PgBouncer, Redis and Redis Cluster
  servers for tests, from an env URL, testcontainers, or local binaries.
"""
