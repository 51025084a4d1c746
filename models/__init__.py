"""Architecture zoo and checkpoint intake.

``catalog`` (the zoo as data) and ``inspection`` (static checks of an upload) need only the
standard library; ``registry`` builds the networks, ``loading`` turns an uploaded file into a
model that takes [0, 1] pixels.
"""
