"""taskgrouper: which tasks should share a network, and how to train them."""
__version__ = "0.1.0"
