"""Indexes for the purges (cohort_service.purges): each reads the oldest rows of a kind first.

- idempotency_record (created_at): keys older than COHORT_IDEMPOTENCY_TTL;
- proposal (decision, create_time): pending proposals older than COHORT_PROPOSAL_TTL;
- proposal (decide_time): decided proposals older than COHORT_IDEMPOTENCY_TTL.

Numbered 0005, after 0004 of the lifecycle work; the runner applies each missing script by
name, so either may be applied first.
"""


def up(migrator, db):
    migrator.add_index("idempotency_record", ("created_at",)).run()
    migrator.add_index("proposal", ("decision", "create_time")).run()
    migrator.add_index("proposal", ("decide_time",)).run()
