"""emotion-pipeline: streaming multi-camera facial-expression analytics.

Kept import-free on purpose: the training code runs on machines that have
torch but none of the serving stack.
"""

__version__ = "0.1.0"
