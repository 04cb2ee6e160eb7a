"""In-memory stores for fast tests of the logic: each implements a store ``Protocol`` the way its
DynamoDB adapter does, and passes the same contract tests (tests/integration/test_store_contract.py)."""
