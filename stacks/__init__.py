"""The CDK app's constructs: one per concern, composed by one stack per stage (CDK only).

Never imports the runtime package ``booking_durability``: the stacks describe where it runs.
"""
