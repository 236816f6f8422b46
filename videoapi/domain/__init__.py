"""The domain: jobs and their store, submission, idempotency, API keys, fairness, results and their renderings."""
