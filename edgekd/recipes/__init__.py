"""Host recipes: whole jobs built from the layers below (``demo``: the KWS chain end to end, ``wakeword``, ``sed``).

The CLI parses arguments and calls these; bench scripts reuse them.
"""
