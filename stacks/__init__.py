"""The CDK app's constructs: one per concern, composed by one stack per stage (CDK only).

Never imports the runtime package ``booking_durability`` (the stacks describe where it runs),
except its standard-library-only modules of names both sides must agree on
(``booking_durability.metric_names``, ``booking_durability.stack_outputs``):
tests/infrastructure/test_compliance.py holds them to it.
"""
